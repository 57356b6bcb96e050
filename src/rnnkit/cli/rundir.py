"""Run directories: ``runs/<name>/`` holds everything one training run writes.

Layout (the trainer writes the checkpoints, metrics and plot; the CLI the rest)::

    config.yaml     the resolved settings (pass it back with --config)
    task.json       what the model reads and predicts: the vocabulary or the CSV columns
    metrics.jsonl   one JSON record per logged step and per evaluation
    best.pt last.pt checkpoints (best validation loss, latest)
    plot.png        losses and gradient norm
    samples.txt     text generated at each evaluation (text models)
    forecasts/      open-loop forecasts at each evaluation (forecast models)
    .lock           held by the process that trains in the directory (see :func:`lock`)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from rnnkit.data.errors import DataError

CONFIG = "config.yaml"
TASK = "task.json"


def find_run(run: str, runs_dir: str = "runs") -> Path:
    """A run given as a directory path or as a name under ``runs_dir``."""
    for candidate in (Path(run), Path(runs_dir) / run):
        if (candidate / TASK).is_file():
            return candidate
    raise DataError(f"no run {run!r}: neither {run} nor {Path(runs_dir) / run} holds a "
                    f"{TASK} written by 'rnnkit train'")


def pick_name(runs_dir: str, name: str, fallback: str,
              reuse: str = "continue it with --resume {path}") -> Path:
    """``runs_dir/name``; an explicit name that exists is refused (nothing is overwritten)
    with a hint, ``reuse``, of what to do with it instead ({path} is the directory); a
    default name gets the first free suffix: fallback, fallback-2, fallback-3, ..."""
    root = Path(runs_dir)
    if name:
        path = root / name
        if path.exists():
            raise DataError(f"run directory {path} already exists; choose another --name, "
                            f"or {reuse.format(path=path)}")
        return path
    path, k = root / fallback, 2
    while path.exists():
        path, k = root / f"{fallback}-{k}", k + 1
    return path


def make_new(runs_dir: str, name: str, fallback: str, reuse: str) -> Path:
    """Make and return a new run directory named as ``pick_name`` says. The directory is
    made at once (mkdir fails if it exists), so runs started together get distinct ones: a
    default name taken in between moves on to the next free suffix."""
    while True:
        path = pick_name(runs_dir, name, fallback, reuse)
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue  # taken since pick_name looked: an explicit name is refused next time
        except OSError as err:
            raise DataError(f"cannot make the run directory {path}: {err.strerror or err}"
                            ) from None


@contextlib.contextmanager
def removed_on_error(path: Path, keep: bool = False) -> Iterator[None]:
    """Remove the directory ``path`` (this process's own, made for the block) if the block
    raises, Ctrl-C included: a refused or failed run leaves nothing half-written. ``keep``:
    leave it (it held something before)."""
    try:
        yield
    except BaseException:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
        raise


def create(path: Path, settings: dict[str, Any], task: dict[str, Any]) -> None:
    """Make the directory (it must not exist) and write the config and task files."""
    try:
        path.mkdir(parents=True, exist_ok=False)
        (path / CONFIG).write_text(yaml.safe_dump(settings, sort_keys=False))
        (path / TASK).write_text(json.dumps(task) + "\n")
    except OSError as err:
        raise DataError(f"cannot make the run directory {path}: {err.strerror or err}") from None


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} is missing: the run directory is incomplete ({what})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


def read_settings(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read(path / CONFIG, "its settings")) or {}
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        raise DataError(f"{path / CONFIG}: not a settings file rnnkit wrote: {first}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path / CONFIG}: expected a mapping of settings, got {data!r}")
    return data


def read_task(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read(path / TASK, "what the model reads"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path / TASK}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise DataError(f"{path / TASK}: expected an object with a 'kind', got {data!r}")
    return data


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold ``path/.lock`` while training in ``path``: a second process that tries gets a
    DataError naming the holder. The lock is the kernel's (flock): it ends with the process,
    however it ends, so a crashed run leaves no stale lock."""
    try:
        handle = open(path / ".lock", "a+")  # noqa: SIM115 - held for the whole block
    except OSError as err:
        raise DataError(f"cannot lock the run directory {path}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DataError(f"run directory {path} is in use by {holder}; wait for it to finish "
                            "or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} (rnnkit train)\n")
        handle.flush()
        yield
    finally:
        handle.close()
