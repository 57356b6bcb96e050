"""Combining two probabilistic forecasts of the same series and horizon.

M4's lesson (Makridakis et al. 2020): combinations beat the single methods they combine,
and the simple statistical forecasts are hard to beat on short series. Two ways to pool
sample paths ``[S, H]``:

- ``"quantiles"`` (quantile averaging, Vincentization; Lichtendahl et al. 2013): each
  quantile of the result is the weighted mean of the two forecasts' quantiles, so the
  median is the weighted mean of the medians and the interval the weighted mean of the
  intervals. The result's rows are the sorted quantiles step by step, not paths.
- ``"mixture"`` (linear pooling): a share ``weight`` of the first forecast's paths and the
  rest from the second; wider than either where they disagree.
"""

from __future__ import annotations

import numpy as np

from rnnkit.forecasting.forecast import Forecast

__all__ = ["combine", "pool", "widened_pool", "HOWS"]

HOWS = ("quantiles", "mixture")


def _quantile_rows(samples: np.ndarray, s: int) -> np.ndarray:
    """``[s, H]``: the samples' quantiles at the midpoints ``(i + 0.5) / s``, ascending."""
    if len(samples) == s:
        return np.sort(samples, axis=0)
    return np.quantile(samples, (np.arange(s) + 0.5) / s, axis=0)


def pool(a: np.ndarray, b: np.ndarray, weight: float, how: str = "mixture") -> np.ndarray:
    """``[S, H]``: ``weight`` of the samples ``a [S, H]`` and ``1 - weight`` of ``b [S', H]``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if how not in HOWS:
        raise ValueError(f"how must be one of {HOWS}, got {how!r}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the forecasts' horizons differ: {a.shape[1]} and {b.shape[1]} steps")
    s = len(a)
    if how == "quantiles":
        return weight * _quantile_rows(a, s) + (1 - weight) * _quantile_rows(b, s)
    k = int(round(weight * s))
    return np.concatenate([a[:k], _quantile_rows(b, s - k)])


def widened_pool(a: np.ndarray, b: np.ndarray, weight: float, b_point: np.ndarray,
                 spread: float) -> np.ndarray:
    """``[S, H]``: the mixture ``pool(a, b, weight)`` with ``b``'s paths widened about its
    point forecast ``b_point [H]`` (to ``b_point + spread (b - b_point)``), then shifted
    step by step to the median of the mixture of ``a`` and ``b`` as given: the interval
    widens, the point forecast (the median) stays."""
    if spread <= 0:
        raise ValueError(f"spread must be > 0, got {spread}")
    mixed = pool(a, b, weight)
    if spread == 1.0 or weight == 1.0:
        return mixed
    wide = pool(a, b_point + spread * (b - b_point), weight)
    return wide - np.median(wide, 0) + np.median(mixed, 0)


def combine(a: Forecast, b: Forecast, weight: float, how: str = "mixture") -> Forecast:
    """``weight`` of forecast ``a`` and ``1 - weight`` of ``b`` (same horizon), with ``a``'s
    dates, number of samples and quantile levels."""
    samples = pool(a.samples, b.samples, weight, how)
    return Forecast(a.dates, samples, samples.mean(0), np.quantile(samples, a.levels, axis=0),
                    a.levels)
