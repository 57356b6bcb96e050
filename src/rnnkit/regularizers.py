"""Recurrent dropout and zoneout: their masks and their train/eval semantics.

- Recurrent dropout (Semeniuta et al. 2016, "Recurrent Dropout without Memory Loss"): drop
  units of the *candidate* update, with one mask per sequence, so the state path itself is
  never dropped. In eval it is the identity.
- Zoneout (Krueger et al. 2017): each unit keeps its previous value with probability p at
  every step in training, ``s_t = m * s_{t-1} + (1 - m) * s_new`` with ``m ~ Bernoulli(p)``;
  in eval it uses the expectation ``p * s_{t-1} + (1 - p) * s_new``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit import workspace


def check_rate(name: str, p: float) -> float:
    """Return ``p`` if it is a probability in [0, 1), else raise a ValueError naming it."""
    if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
    return float(p)


def dropout_mask(
    shape: tuple[int, ...], p: float, training: bool, like: Tensor
) -> Tensor | None:
    """An inverted-dropout mask (entries 0 or 1/(1-p)), or None when it would be all ones."""
    if p == 0.0 or not training:
        return None
    # rand >= p is a Bernoulli(1-p) draw; on CPU it is ~2x faster than bernoulli_.
    keep = workspace.empty(shape, like).uniform_().ge_(p)
    return keep.div_(1.0 - p)


def zoneout_keep(
    shape: tuple[int, ...], p: float, training: bool, like: Tensor
) -> Tensor | None:
    """How much of the previous state each unit keeps: Bernoulli(p) draws in training, the
    constant p in eval (the expectation), None when p is 0. Broadcastable to ``shape``."""
    if p == 0.0:
        return None
    if not training:
        return torch.full((1,) * len(shape), p, device=like.device, dtype=like.dtype)
    return workspace.empty(shape, like).uniform_().lt_(p)  # Bernoulli(p)


def zoneout(previous: Tensor, new: Tensor, keep: Tensor | None) -> Tensor:
    """``keep * previous + (1 - keep) * new`` (identity on ``new`` when keep is None)."""
    if keep is None:
        return new
    return torch.lerp(new, previous, keep)
