"""The Theta method, the statistical forecast a network's forecast is combined with.

Theta (Assimakopoulos & Nikolopoulos 2000) won the M3 competition and is M4's benchmark
among the statistical methods. Hyndman & Billah (2003) show it is simple exponential
smoothing (SES) with a drift of half the series' linear-trend slope ``b``:

    f_h = l_T + (b / 2) * ((h - 1) + (1 - (1 - alpha)^T) / alpha)

where ``l_T`` is SES's last level (smoothing ``alpha``, fitted by least squares of the
one-step errors). As in M4's reference implementation, a series whose autocorrelation at
its season ``m`` is significant (90%, Bartlett's variance) is first divided by the seasonal
indices of a classical multiplicative decomposition (subtracted where a value is <= 0),
and they are put back on the forecast. The interval is SES's, Gaussian with variance
``sigma^2 (1 + alpha^2 (h - 1))`` (Hyndman et al. 2008, Table 6.1), ``sigma`` the RMS of
the one-step errors.
"""

from __future__ import annotations

import numpy as np

from rnnkit.forecasting.baselines import gaussian_forecast, naive
from rnnkit.forecasting.forecast import Forecast

__all__ = ["theta", "is_seasonal", "seasonal_indices", "ses"]

ALPHAS = np.linspace(0.01, 0.99, 99)  # the grid SES's alpha is fitted on
Z90 = 1.645  # the one-sided 95% point: a two-sided 90% test of the autocorrelation


def is_seasonal(values: np.ndarray, m: int) -> bool:
    """Whether the autocorrelation at lag ``m`` is beyond the 90% limit
    ``1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / T)``; needs at least 3 seasons of values."""
    y = np.asarray(values, np.float64)
    n = len(y)
    if m < 2 or n < 3 * m:
        return False
    d = y - y.mean()
    denom = float(d @ d)
    if denom == 0:
        return False
    r = np.array([float(d[k:] @ d[:n - k]) / denom for k in range(1, m + 1)])
    limit = Z90 * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / n)
    return bool(abs(r[-1]) > limit)


def seasonal_indices(values: np.ndarray, m: int, multiplicative: bool) -> np.ndarray:
    """``[m]``: the seasonal component of a classical decomposition, position ``i`` being the
    rows ``i, i + m, ...``: the mean ratio (or difference) of the values to their centred
    moving average of order m (2 x m when m is even), normalized to mean 1 (or 0)."""
    y = np.asarray(values, np.float64)
    if m % 2:
        kernel = np.full(m, 1.0 / m)
    else:
        kernel = np.r_[0.5, np.ones(m - 1), 0.5] / m
    trend = np.convolve(y, kernel, mode="valid")
    start = (len(kernel) - 1) // 2
    rows = np.arange(start, start + len(trend))
    detrended = y[rows] / trend if multiplicative else y[rows] - trend
    index = np.array([detrended[rows % m == i].mean() for i in range(m)])
    return index / index.mean() if multiplicative else index - index.mean()


def ses(values: np.ndarray) -> tuple[float, float, float]:
    """Simple exponential smoothing fitted by least squares on ``ALPHAS``, the first value
    as the initial level: ``(alpha, last level, RMS of the one-step errors)``."""
    y = np.asarray(values, np.float64)
    level = np.full(len(ALPHAS), y[0])
    sse = np.zeros(len(ALPHAS))
    for v in y[1:]:
        err = v - level
        sse += err ** 2
        level = level + ALPHAS * err
    best = int(np.argmin(sse))
    return float(ALPHAS[best]), float(level[best]), float(np.sqrt(sse[best] / max(1, len(y) - 1)))


def theta(values: np.ndarray, horizon: int, m: int = 1, **kwargs) -> Forecast:
    """The Theta forecast ``horizon`` steps after ``values [T]`` with season ``m`` (1: none),
    as sample paths (``kwargs`` go to ``gaussian_forecast``). A series of fewer than 3
    values gets the Naive forecast."""
    y = np.asarray(values, np.float64)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if len(y) < 3:
        return naive(y, horizon, **kwargs)
    n = len(y)
    positions = (n + np.arange(horizon)) % m if m > 1 else np.zeros(horizon, int)
    seasonal = is_seasonal(y, m)
    multiplicative = bool(seasonal and (y > 0).all())
    index = seasonal_indices(y, m, multiplicative) if seasonal else np.zeros(1)
    if seasonal:
        at = index[np.arange(n) % m]
        y = y / at if multiplicative else y - at
    alpha, level, sigma = ses(y)
    slope = np.polyfit(np.arange(n), y, 1)[0]
    h = np.arange(1, horizon + 1)
    point = level + slope / 2 * ((h - 1) + (1 - (1 - alpha) ** n) / alpha)
    spread = sigma * np.sqrt(1 + alpha ** 2 * (h - 1))
    if multiplicative:
        point, spread = point * index[positions], spread * index[positions]
    elif seasonal:
        point = point + index[positions]
    return gaussian_forecast(point, spread, **kwargs)
