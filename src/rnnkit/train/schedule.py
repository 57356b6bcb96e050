"""The learning-rate schedule: linear warm-up, then constant or cosine decay over the run's
budget, in steps or in seconds, whichever runs out first.

A time budget (the CLI's default) makes the schedule depend on the clock; the trainer passes
the steps and seconds it has used (both in its checkpoints), so a resumed run continues the
same curve, and a step budget alone gives the same learning rates on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LR_SCHEDULES", "LRSchedule", "budget_progress"]

LR_SCHEDULES = ("constant", "cosine")


def budget_progress(step: int, seconds: float, max_steps: int, max_time: float) -> float:
    """The share of the budget spent, in [0, 1]: the larger of the step and time shares
    (a budget of 0 is no limit and counts for nothing)."""
    parts = [0.0]
    if max_steps:
        parts.append(step / max_steps)
    if max_time:
        parts.append(seconds / max_time)
    return min(max(parts), 1.0)


@dataclass(frozen=True)
class LRSchedule:
    """``lr(step, seconds) = lr * factor``: ``(step + 1) / warmup_steps`` during warm-up; then
    1 (``constant``), or ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * p)) / 2``
    (``cosine``, Loshchilov & Hutter 2017 without restarts) where ``p`` is the share of the
    budget spent after the warm-up."""

    kind: str = "constant"  # "constant" or "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    max_steps: int = 0  # 0: no step budget
    max_time: float = 0.0  # seconds; 0: no time budget

    def factor(self, step: int, seconds: float = 0.0) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        after = max(self.max_steps - self.warmup_steps, 1) if self.max_steps else 0
        p = budget_progress(step - self.warmup_steps, seconds, after, self.max_time)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))
