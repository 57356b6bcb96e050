"""Forecast accuracy: point errors, MASE, sMAPE, CRPS from sample paths, interval coverage.

Every ``*_by_step`` function returns one number per horizon step ``[H]``; ``evaluate``
adds the overall values (the mean over steps). Inputs are numpy arrays: actuals ``y [H]``,
a point forecast ``f [H]``, sample paths ``samples [S, H]``.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.data.errors import DataError

__all__ = ["seasonal_naive_scale", "abs_errors", "squared_errors", "smape_by_step",
           "crps_by_step", "coverage_by_step", "coverage_note", "evaluate"]


def seasonal_naive_scale(insample: np.ndarray, m: int = 1) -> float:
    """MASE's denominator (Hyndman & Koehler 2006): the in-sample MAE of the seasonal-naive
    forecast, ``mean_t |y_t - y_{t-m}|`` over ``t = m .. T-1``. ``m`` falls back to 1 when the
    series is not longer than one season."""
    insample = np.asarray(insample, dtype=np.float64)
    if m >= len(insample):
        m = 1
    if len(insample) < 2:
        raise DataError(f"MASE needs at least 2 in-sample values, got {len(insample)}")
    scale = float(np.mean(np.abs(insample[m:] - insample[:-m])))
    if scale == 0:
        raise DataError("MASE is undefined: the in-sample series is constant at its season")
    return scale


def abs_errors(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(y, np.float64) - np.asarray(f, np.float64))


def squared_errors(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    return (np.asarray(y, np.float64) - np.asarray(f, np.float64)) ** 2


def smape_by_step(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``200 |y - f| / (|y| + |f|)`` in percent (0 where both are 0)."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    denom = np.abs(y) + np.abs(f)
    return np.where(denom > 0, 200 * np.abs(y - f) / np.where(denom > 0, denom, 1), 0.0)


def crps_by_step(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples [S, H]`` at ``y [H]``, energy form
    (Gneiting & Raftery 2007): ``mean_s |X_s - y| - 0.5 mean_{s,s'} |X_s - X_s'|``.

    The pair term uses the sorted samples: ``sum_{s,s'} |x_s - x_s'| = 2 sum_i (2i - S - 1)
    x_(i)`` (1-based ranks), so the cost is O(S log S) per step.
    """
    x = np.sort(np.asarray(samples, np.float64), axis=0)
    s = x.shape[0]
    first = np.abs(x - np.asarray(y, np.float64)).mean(0)
    weights = (2 * np.arange(1, s + 1) - s - 1)[:, None]
    pairs = 2 * (weights * x).sum(0) / s**2
    return first - 0.5 * pairs


def coverage_by_step(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1.0 where ``lower <= y <= upper``, else 0.0, ``[H]``."""
    y = np.asarray(y, np.float64)
    return ((np.asarray(lower) <= y) & (y <= np.asarray(upper))).astype(np.float64)


def coverage_note(coverage: float, count: int, level: float = 0.8) -> str | None:
    """A warning when ``level`` intervals covered a share ``coverage`` of ``count`` held-out
    values that intervals of that level would rarely give: outside ``level`` +- 2.58
    binomial standard errors (99% if errors were independent; the errors of one forecast
    path are correlated, so real spreads are wider and this only flags clear misses).
    None when the coverage is plausible."""
    if count < 1:
        return None
    spread = 2.58 * math.sqrt(level * (1 - level) / count)
    low, high = level - spread, level + spread
    if low <= coverage <= high:
        return None
    what = "too narrow" if coverage < low else "too wide"
    return (f"the {level:.0%} intervals covered {coverage:.2f} of {count} held-out values, "
            f"outside the {max(low, 0):.2f}-{min(high, 1):.2f} that {level:.0%} intervals "
            f"give 99% of the time: they are {what} on this data")


def evaluate(y: np.ndarray, point: np.ndarray, insample: np.ndarray, m: int = 1,
             samples: np.ndarray | None = None, coverage: float = 0.8) -> dict:
    """Every metric of one forecast, by step (lists ``[H]``) and overall (means over steps).

    Returns ``{"mae", "rmse", "mase", "smape", "crps", "scaled_crps", "coverage"}`` (the
    last four ``None`` without samples: CRPS and the ``coverage`` interval, the central
    one of the sample paths' quantiles) and ``"by_step": {name: [H]}``. ``scaled_crps``
    is CRPS divided by MASE's scale, so it compares across series like MASE.
    """
    y = np.asarray(y, np.float64)
    point = np.asarray(point, np.float64)
    if y.shape != point.shape or y.ndim != 1:
        raise ValueError(f"y and the point forecast must both be [H], got {y.shape}, "
                         f"{point.shape}")
    scale = seasonal_naive_scale(insample, m)
    by_step = {"mae": abs_errors(y, point), "se": squared_errors(y, point),
               "smape": smape_by_step(y, point)}
    by_step["mase"] = by_step["mae"] / scale
    if samples is not None:
        samples = np.asarray(samples, np.float64)
        if samples.ndim != 2 or samples.shape[1] != len(y):
            raise ValueError(f"samples must be [S, {len(y)}], got {samples.shape}")
        by_step["crps"] = crps_by_step(samples, y)
        by_step["scaled_crps"] = by_step["crps"] / scale
        tail = (1 - coverage) / 2
        lo, hi = np.quantile(samples, [tail, 1 - tail], axis=0)
        by_step["coverage"] = coverage_by_step(lo, hi, y)
    out = {name: float(v.mean()) for name, v in by_step.items() if name != "se"}
    out["rmse"] = float(np.sqrt(by_step["se"].mean()))
    for name in ("crps", "scaled_crps", "coverage"):
        out.setdefault(name, None)
    out["by_step"] = {k: v.tolist() for k, v in by_step.items()}
    return out
