"""The learning-rate schedule: linear warm-up, then constant or cosine decay over the run's
budget, in steps or in seconds, whichever runs out first.

A time budget (the CLI's default) makes the schedule depend on the clock; the trainer passes
the steps and seconds it has used (both in its checkpoints), so a resumed run continues the
same curve, and a step budget alone gives the same learning rates on every machine.
A run resumed with another budget does not jump back up the curve of the new budget: it
anneals from the learning rate it had reached to the end of the new budget (``continued``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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
    # Set by continued(): the (step, seconds) the curve restarts from, and its factor there.
    start_step: int = 0
    start_seconds: float = 0.0
    start_factor: float = 1.0

    def factor(self, step: int, seconds: float = 0.0) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        start = max(self.start_step, self.warmup_steps)
        steps_left = max(self.max_steps - start, 1) if self.max_steps else 0
        time_left = max(self.max_time - self.start_seconds, 1e-9) if self.max_time else 0.0
        p = budget_progress(step - start, seconds - self.start_seconds, steps_left, time_left)
        top = self.start_factor - self.min_lr_ratio
        return self.min_lr_ratio + top * 0.5 * (1 + math.cos(math.pi * p))

    def continued(self, step: int, seconds: float, max_steps: int, max_time: float
                  ) -> LRSchedule:
        """This schedule with the budget ``max_steps``/``max_time`` from ``(step, seconds)``
        on: a cosine from the factor reached there down to ``min_lr_ratio`` at the new
        budget's end, so a longer budget never raises the learning rate. Before the end of
        the warm-up (or for ``constant``) nothing has decayed yet: the new budget's curve."""
        if self.kind == "constant" or step < self.warmup_steps:
            return replace(self, max_steps=max_steps, max_time=max_time)
        return replace(self, max_steps=max_steps, max_time=max_time, start_step=step,
                       start_seconds=seconds, start_factor=self.factor(step, seconds))
