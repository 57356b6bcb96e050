"""Gradient-norm monitoring and clipping (O2): none, a fixed norm, or AutoClip.

AutoClip (Seetharaman, Wichern, Pardo, Le Roux 2020, "AutoClip: Adaptive Gradient Clipping
for Source Separation Networks") clips every step at the p-th percentile of all gradient
norms observed so far, the current one included; p = 10 is the paper's recommendation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["GradClipper", "CLIP_MODES"]

CLIP_MODES = ("none", "norm", "auto")


def _percentile(sorted_values: list[float], p: float) -> float:
    """numpy.percentile's default (linear) interpolation on an already sorted list."""
    rank = (len(sorted_values) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)


class GradClipper:
    """Measures the global L2 norm of the gradients and clips it.

    Args:
        mode: "none" (only measure), "norm" (clip at `max_norm`), "auto" (clip at the
            `percentile`-th percentile of the norms seen so far).
        max_norm: the threshold of mode "norm".
        percentile: p in [0, 100] for mode "auto".

    Call `norm(params)` after backward, read it on the host, then `clip(params, norm)`.
    The history holds the finite norms of every step; it is saved with checkpoints.
    """

    def __init__(self, mode: str = "auto", max_norm: float = 1.0, percentile: float = 10.0):
        if mode not in CLIP_MODES:
            raise ValueError(f"clip mode must be one of {CLIP_MODES}, got {mode!r}")
        if not max_norm > 0:
            raise ValueError(f"clip_max_norm must be > 0, got {max_norm}")
        if not 0 <= percentile <= 100:
            raise ValueError(f"clip_percentile must be in [0, 100], got {percentile}")
        self.mode, self.max_norm, self.percentile = mode, max_norm, percentile
        self.history: list[float] = []  # in step order, for plots and checkpoints
        self._sorted: list[float] = []  # the same values sorted, for the percentile

    @staticmethod
    def norm(params: Iterable[Tensor]) -> Tensor:
        """Global L2 norm of all gradients (a 0-dim tensor on the parameters' device)."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.nn.utils.get_total_norm(grads, norm_type=2.0)

    def threshold(self, norm: float) -> float | None:
        """Record a finite norm and return the clipping threshold for this step."""
        if not math.isfinite(norm):
            return None  # a skipped step: it must not move the percentile
        self.history.append(norm)
        bisect.insort(self._sorted, norm)
        if self.mode == "norm":
            return self.max_norm
        if self.mode == "auto":
            return _percentile(self._sorted, self.percentile)
        return None

    @staticmethod
    def clip(params: Iterable[Tensor], norm: Tensor, threshold: float | None) -> None:
        """Scale the gradients so their global norm is at most `threshold`."""
        if threshold is None:
            return
        torch.nn.utils.clip_grads_with_norm_(params, threshold, norm)

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "history": torch.tensor(self.history, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = state["history"].tolist()
        self._sorted = sorted(self.history)
