"""Objectives: turn a batch into per-step losses. The trainer normalizes them (O3).

An objective is any callable

    objective(model, batch, state) -> (per_step_loss [B, T], new_state, extra_metrics)

`extra_metrics` maps names to floats or 0-dim tensors; the trainer logs them every step
(tensors are read with the step's single device sync). An objective may hold its own
optimizer (e.g. a discriminator) and step it inside `__call__`; if it has `state_dict` /
`load_state_dict`, the trainer saves and restores it with checkpoints. Set the class
attribute `loss_is_nll = True` when the per-step loss is a negative log-likelihood in nats,
so the trainer also reports bits per step (bits per character for text).

Objectives call the model through `forward_model`, which passes the batch's reset mask to
models that accept it and emulates it for those that do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..state import accepts_reset, map_state
from .batching import Batch

__all__ = ["Objective", "NextStep", "forward_model", "accepts_reset"]

State = Any  # None, a tensor, or a tuple of tensors


class Objective(Protocol):
    def __call__(
        self, model: nn.Module, batch: Batch, state: State
    ) -> tuple[Tensor, State, dict[str, float | Tensor]]:
        """Returns (per_step_loss [B, T], new_state, extra_metrics)."""
        ...


def _reset_rows(state: State, rows: Tensor) -> State:
    """Zero the state of the rows where `rows` [B] is True.

    The batch dimension is dim 1 of 3-d tensors (torch.nn's [layers, B, H]) and dim 0 of
    2-d ones ([B, H]). Zeros stand in for the model's default state; models with another
    default (a learned h0) should accept `reset` themselves.
    """

    def reset(t: Tensor) -> Tensor:
        shape = [1] * t.dim()
        shape[1 if t.dim() == 3 else 0] = -1
        return t.masked_fill(rows.view(shape), 0.0)

    return map_state(reset, state)


def forward_model(
    model: nn.Module, inputs: Tensor, state: State, batch: Batch
) -> tuple[Tensor, State]:
    """Run `model(inputs, state)` over the batch, honouring its reset flags.

    Args:
        inputs: [B, T, ...] (usually batch.inputs; a multi-step objective may pass its own).
        state: the carried state, None = the model's default.
        batch: supplies `reset` [B, T], `fresh` and `reset_steps`.

    Returns:
        (outputs [B, T, ...], state after the last step).
    """
    if batch.fresh:
        state = None
    if accepts_reset(model):
        return model(inputs, state, reset=batch.reset)
    cuts = [t for t in batch.reset_steps if t > 0 or not batch.fresh]
    if not cuts:
        return model(inputs, state)
    # The model cannot reset rows itself: run it segment by segment, zeroing the rows
    # that start a new document at each segment boundary.
    outputs, bounds = [], [0, *[t for t in cuts if t > 0], inputs.shape[1]]
    for start, end in zip(bounds[:-1], bounds[1:], strict=False):
        if start in batch.reset_steps and not (start == 0 and batch.fresh):
            state = _reset_rows(state, batch.reset[:, start])
        out, state = model(inputs[:, start:end], state)
        outputs.append(out)
    return torch.cat(outputs, dim=1), state


def _auto_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for integer targets, mean squared error for float targets. [B, T]."""
    if not targets.is_floating_point():
        b, t = targets.shape[:2]
        return F.cross_entropy(
            outputs.reshape(b * t, -1), targets.reshape(b * t), reduction="none"
        ).view(b, t)
    if outputs.shape != targets.shape:
        raise ValueError(
            f"outputs {tuple(outputs.shape)} and float targets {tuple(targets.shape)} must have "
            "the same shape for the mean squared error"
        )
    err = (outputs - targets).square()
    return err.flatten(2).mean(dim=2) if err.dim() > 2 else err


class NextStep:
    """Teacher forcing: the model sees the true inputs and predicts the targets step by step.

    Args:
        loss: "auto" (cross-entropy over the last dim of the outputs for integer targets,
            mean squared error over the feature dims for float targets), or a callable
            `loss(outputs [B, T, ...], targets [B, T, ...]) -> per_step [B, T]`.
    """

    def __init__(self, loss: str | Callable[[Tensor, Tensor], Tensor] = "auto") -> None:
        if loss != "auto" and not callable(loss):
            raise ValueError(f"loss must be 'auto' or a callable, got {loss!r}")
        self.loss = _auto_loss if loss == "auto" else loss
        self.loss_is_nll = loss == "auto"  # refined per batch below

    def __call__(
        self, model: nn.Module, batch: Batch, state: State
    ) -> tuple[Tensor, State, dict[str, float | Tensor]]:
        outputs, state = forward_model(model, batch.inputs, state, batch)
        if self.loss is _auto_loss:
            self.loss_is_nll = not batch.targets.is_floating_point()
        return self.loss(outputs, batch.targets), state, {}
