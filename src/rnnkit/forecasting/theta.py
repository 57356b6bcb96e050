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

That interval ignores the uncertainty of the fit and of the drift, and undercovers: on the
development panel's validation split Theta's 80% intervals covered 70% of the held-out
values. ``interval_spread`` measures the factor it needs on the training rows themselves:
the standardized errors of Theta's forecasts from rolling origins within them (the last H
rows, then one row earlier, and so on), pooled over a panel's series, as split conformal
prediction does with held-out errors (Vovk et al. 2005; Stankeviciute et al. 2021 for
multi-step forecasts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

from rnnkit.forecasting.baselines import gaussian_forecast, naive
from rnnkit.forecasting.forecast import Forecast

__all__ = ["theta", "theta_point_spread", "deseasonalized_forecast", "gaussian_paths",
           "interval_spread", "rolling_origins", "is_seasonal", "seasonal_indices",
           "seasonal_adjustment", "ses",
           "SPREAD_ORIGINS", "PointSpread"]

ALPHAS = np.linspace(0.01, 0.99, 99)  # the grid SES's alpha is fitted on
Z90 = 1.645  # the one-sided 95% point: a two-sided 90% test of the autocorrelation
# rolling origins per series interval_spread scores (chosen on the validation split,
# docs/forecast-panel.md "Theta's interval")
SPREAD_ORIGINS = 16
# a statistical forecast: (values [T], horizon, season m) -> (point [H], standard deviation [H])
PointSpread = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


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


def seasonal_adjustment(values: np.ndarray, m: int, rows: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """M4's seasonal adjustment of ``values [T]`` (season ``m``; 1: none), as
    ``(factor [rows], offset [rows])`` for rows ``0 .. rows - 1`` (past ``T`` the season
    repeats): the adjusted series is ``(y - offset) / factor``. Where ``is_seasonal``, the
    factors are the indices of a classical multiplicative decomposition (offset 0), or, where
    a value is <= 0, the offsets those of an additive one (factor 1); else 1 and 0."""
    y = np.asarray(values, np.float64)
    factor, offset = np.ones(rows), np.zeros(rows)
    if not is_seasonal(y, m):
        return factor, offset
    multiplicative = bool((y > 0).all())
    at = seasonal_indices(y, m, multiplicative)[np.arange(rows) % m]
    return (at, offset) if multiplicative else (factor, at)


def deseasonalized_forecast(method: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
                            values: np.ndarray, horizon: int, m: int = 1
                            ) -> tuple[np.ndarray, np.ndarray]:
    """M4's protocol for a nonseasonal method on a series of season ``m`` (1: none): adjust
    ``values [T]`` (``seasonal_adjustment``), forecast the adjusted series with
    ``method(adjusted [T], horizon) -> (point [H], sd [H])``, and put the season back on the
    point forecast (and its factor on the standard deviation, if multiplicative)."""
    y = np.asarray(values, np.float64)
    n = len(y)
    factor, offset = seasonal_adjustment(y, m, n + horizon)
    point, spread = method((y - offset[:n]) / factor[:n], horizon)
    return point * factor[n:] + offset[n:], spread * factor[n:]


def _theta_nonseasonal(y: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    alpha, level, sigma = ses(y)
    slope = np.polyfit(np.arange(len(y)), y, 1)[0]
    h = np.arange(1, horizon + 1)
    point = level + slope / 2 * ((h - 1) + (1 - (1 - alpha) ** len(y)) / alpha)
    return point, sigma * np.sqrt(1 + alpha ** 2 * (h - 1))


def theta_point_spread(values: np.ndarray, horizon: int, m: int = 1
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Theta's point forecast ``[H]`` and the standard deviation of its Gaussian interval
    ``[H]``, ``horizon`` steps after ``values [T]`` (T >= 3) with season ``m`` (1: none)."""
    return deseasonalized_forecast(_theta_nonseasonal, values, horizon, m)


def gaussian_paths(point_spread: PointSpread, values: np.ndarray, horizon: int, m: int = 1,
                   spread: float = 1.0, **kwargs) -> Forecast:
    """Sample paths of the statistical forecast ``point_spread`` ``horizon`` steps after
    ``values [T]`` with season ``m`` (1: none), Gaussian, its standard deviation times
    ``spread`` (``kwargs`` go to ``gaussian_forecast``). Fewer than 3 values get the Naive
    forecast."""
    y = np.asarray(values, np.float64)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if spread <= 0:
        raise ValueError(f"spread must be > 0, got {spread}")
    if len(y) < 3:
        return naive(y, horizon, **kwargs)
    point, sd = point_spread(y, horizon, m)
    return gaussian_forecast(point, spread * sd, **kwargs)


def theta(values: np.ndarray, horizon: int, m: int = 1, spread: float = 1.0,
          **kwargs) -> Forecast:
    """The Theta forecast ``horizon`` steps after ``values [T]`` with season ``m`` (1: none),
    as sample paths, its interval's standard deviation times ``spread`` (``kwargs`` go to
    ``gaussian_forecast``). A series of fewer than 3 values gets the Naive forecast."""
    return gaussian_paths(theta_point_spread, values, horizon, m, spread, **kwargs)


def rolling_origins(length: int, horizon: int, m: int = 1,
                    origins: int = SPREAD_ORIGINS) -> range:
    """The forecast origins within a series of ``length`` rows whose next ``horizon`` rows
    are inside it: the last ``origins`` (T - H, T - H - 1, ...), each keeping at least
    max(2m, 8, H) rows before it to fit on (empty when there is no room)."""
    first = length - horizon - origins + 1
    return range(max(first, 2 * m, 8, horizon), length - horizon + 1)


def interval_spread(series: Sequence[np.ndarray], horizon: int, m: int = 1,
                    origins: int = SPREAD_ORIGINS, coverage: float = 0.8,
                    point_spread: PointSpread = theta_point_spread) -> float:
    """The factor on a statistical forecast's interval (Theta's, ``theta``'s ``spread``, or
    the one ``point_spread(values, horizon, m) -> (point [H], sd [H])`` gives) under which
    its central ``coverage`` intervals cover that share of the errors at rolling origins: from each
    series ``[T_i]``, up to ``origins`` forecasts of ``horizon`` steps (from the origins
    T - H, T - H - 1, ..., each keeping at least max(2m, 8, H) rows to fit on), every
    error divided by its step's standard deviation; the factor is the ``coverage`` quantile
    of their absolute values, pooled over the series, over the Gaussian's. 1.0 when no
    series has room for an origin or every error is 0."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    z = []
    for values in series:
        y = np.asarray(values, np.float64)
        for o in rolling_origins(len(y), horizon, m, origins):
            point, sd = point_spread(y[:o], horizon, m)
            with np.errstate(divide="ignore", invalid="ignore"):
                z.append(np.abs(y[o: o + horizon] - point) / sd)
    errors = np.concatenate(z) if z else np.zeros(0)
    errors = errors[np.isfinite(errors)]
    q = float(np.quantile(errors, coverage)) if len(errors) else 0.0
    if q == 0.0:
        return 1.0
    gaussian = NormalDist().inv_cdf((1 + coverage) / 2)  # the quantile of |N(0, 1)|
    return q / gaussian
