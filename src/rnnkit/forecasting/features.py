"""The DeepAR inputs of a step: lagged targets, calendar features, and per-window scaling.

Salinas et al. (2020), Sec. 3.3-3.4: the network sees the previous value and the values one
season back (lags), covariates that describe the time point (here sin/cos of its position in
the day, week and year), and works on values divided by a per-window scale
``nu = mean(|z|) over the context`` so one model fits series of any magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["CALENDAR_PERIODS", "calendar_features", "lagged", "window_scale", "SCALINGS"]

# feature -> period of its cycle; each gives sin(2 pi v / P) and cos(2 pi v / P)
CALENDAR_PERIODS = {"hour": 24.0, "weekday": 7.0, "yearday": 365.25, "month": 12.0}
SCALINGS = ("mean_abs", "standard", "none")


def calendar_features(dates: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``dates [T]`` (datetime64) -> ``[T, 2 * len(names)]`` float32: for each name, the
    columns sin(2 pi v / P), cos(2 pi v / P) with

    - ``hour``: v = hour + minute / 60, P = 24
    - ``weekday``: v = 0 (Monday) .. 6, P = 7
    - ``yearday``: v = day of the year - 1 (0 on 1 January), P = 365.25
    - ``month``: v = month - 1 (0 = January), P = 12
    """
    dates = np.asarray(dates).astype("datetime64[m]")
    cols = []
    for name in names:
        if name not in CALENDAR_PERIODS:
            raise ValueError(f"unknown calendar feature {name!r}; use {list(CALENDAR_PERIODS)}")
        if name == "hour":
            v = (dates - dates.astype("datetime64[D]")).astype(np.int64) / 60.0
        elif name == "weekday":  # 1970-01-01 was a Thursday (3)
            v = (dates.astype("datetime64[D]").astype(np.int64) + 3) % 7
        elif name == "yearday":
            v = (dates.astype("datetime64[D]") - dates.astype("datetime64[Y]")).astype(np.int64)
        else:
            v = dates.astype("datetime64[M]").astype(np.int64) % 12
        angle = 2 * np.pi * np.asarray(v, dtype=np.float64) / CALENDAR_PERIODS[name]
        cols += [np.sin(angle), np.cos(angle)]
    if not cols:
        return np.zeros((len(dates), 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


def lagged(values: Tensor, lags: Sequence[int], start: int) -> Tensor:
    """Lagged targets: ``values [B, L] -> [B, L - start, len(lags)]`` with
    ``out[b, t - start, j] = values[b, t - lags[j]]`` for ``t = start .. L-1``.
    Every lag must be in ``[1, start]`` (no lag reaches before the first value)."""
    if not lags:
        return values.new_zeros(values.shape[0], values.shape[1] - start, 0)
    if min(lags) < 1 or max(lags) > start:
        raise ValueError(f"lags must be in [1, {start}] (start), got {list(lags)}")
    length = values.shape[1]
    return torch.stack([values[:, start - lag: length - lag] for lag in lags], dim=-1)


def window_scale(context: Tensor, scaling: str = "mean_abs", eps: float = 1e-6
                 ) -> tuple[Tensor, Tensor]:
    """``(loc, scale)`` ``[B, 1]`` of each window from its context values ``[B, C]``; the
    model works on ``(z - loc) / scale``.

    - ``mean_abs`` (DeepAR): loc 0, scale = mean |z| + eps.
    - ``standard``: loc = mean z, scale = max(std z, 1e-3 mean |z|) + eps (population std;
      the floor keeps a flat context from blowing up the scaled values).
    - ``none``: loc 0, scale 1.
    """
    if scaling == "mean_abs":
        return context.new_zeros(context.shape[0], 1), context.abs().mean(1, keepdim=True) + eps
    if scaling == "standard":
        loc = context.mean(1, keepdim=True)
        std = context.std(1, keepdim=True, correction=0)
        return loc, torch.maximum(std, 1e-3 * context.abs().mean(1, keepdim=True)) + eps
    if scaling == "none":
        ones = context.new_ones(context.shape[0], 1)
        return ones * 0, ones
    raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
