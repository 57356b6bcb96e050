"""Checkpoints: atomic writes and loading that never executes code from the file.

A checkpoint is a dict of tensors and plain containers (model, optimizer, scheduler, clip
history, RNG states, carried hidden states, data position). It is written to a temporary
file in the same directory, flushed to disk with fsync, then renamed over the target, so a
crash leaves either the old or the new checkpoint, never half of one. It is read with
`torch.load(weights_only=True)`, whose unpickler only rebuilds tensors and containers: a
file that asks for anything else (e.g. a pickle that would run a shell command) is refused.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "model_weights",
           "FORMAT_VERSION"]

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt, unsafe or of another format."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write `payload` to `path` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # persist the rename itself
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    versioned: bool = True) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with weights_only=True. With
    ``versioned=False`` a payload without ``format_version`` is accepted too (files written
    with plain `torch.save` before their writer used `save_checkpoint`).

    Raises:
        CheckpointError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message suggests weights_only=False, the one thing not to do here.
        lines = [ln.strip() for ln in str(e).splitlines()]
        reason = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0])
        raise CheckpointError(
            f"refused to load checkpoint {path}: it holds objects other than tensors and "
            f"plain containers, so loading it could run code (weights_only=True). The file is "
            f"corrupt, not an rnnkit checkpoint, or has been tampered with ({reason})"
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt "
            f"({type(e).__name__}: {e})"
        ) from e
    if not isinstance(payload, dict) or ("format_version" not in payload and versioned):
        raise CheckpointError(f"{path} is not an rnnkit checkpoint (no format_version)")
    if payload.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {payload['format_version']}, "
            f"this rnnkit reads {FORMAT_VERSION}"
        )
    return payload


def model_weights(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The state_dict to use the model with: the averaged weights when the run averaged them
    (``TrainConfig.ema_decay``; they are what was evaluated), else the trained ones."""
    return checkpoint.get("averaged_model") or checkpoint["model"]
