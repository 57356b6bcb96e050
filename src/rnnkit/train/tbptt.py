"""One truncated-BPTT window: burn-in, scored steps, and the state carried onward (O4)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.objectives.base import PENALTY, Objective
from rnnkit.state import detach_state
from rnnkit.train.batching import Batch

__all__ = ["forward_window"]


def forward_window(
    objective: Objective, model: nn.Module, batch: Batch, state: Any
) -> tuple[Tensor, Tensor, Any, dict[str, Any]]:
    """Run the objective over a window and return what the optimizer step needs.

    The window is [burn-in | scored ... carry_at ... scored]. The burn-in steps run under
    no_grad from the carried state; the rest runs with gradient, split at `carry_at` so the
    state at the start of the next window can be carried (detached) without running any
    step twice.

    Args:
        objective: see objectives.Objective.
        batch: a window from a batcher, on the model's device.
        state: the state carried from the previous window (None = the model's default).

    Returns:
        per_step_loss [B, T - burn_in], its mask [B, T - burn_in], the detached state to
        carry, and the objective's extra metrics (of the last segment; ``PENALTY``, a term to
        add to the optimized loss, summed over the segments).
    """
    state = detach_state(state)
    if batch.burn_in:
        with torch.no_grad():
            _, state, _ = objective(model, batch.narrow(0, batch.burn_in), state)
    end = batch.length
    split = batch.carry_at if batch.carry_at is not None else end
    losses, extra, penalties = [], {}, []
    for start, stop in ((batch.burn_in, split), (split, end)):
        if stop > start:
            part = batch if (start, stop) == (0, end) else batch.narrow(start, stop)
            loss, state, extra = objective(model, part, state)
            losses.append(loss)
            if PENALTY in extra:
                penalties.append(extra.pop(PENALTY))
        if stop == split:  # also when the split falls right after the burn-in
            carried = state
    per_step = losses[0] if len(losses) == 1 else torch.cat(losses, dim=1)
    if penalties:
        extra[PENALTY] = sum(penalties)
    return per_step, batch.mask[:, batch.burn_in :], detach_state(carried), extra
