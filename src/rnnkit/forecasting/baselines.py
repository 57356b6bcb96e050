"""The forecasts every forecaster is judged against: Naive and SeasonalNaive.

Their intervals follow Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*
(3rd ed., Sec. 5.5): Gaussian around the point forecast with the in-sample residuals' RMS
``sigma`` widened by ``sqrt(h)`` (Naive) or ``sqrt(k + 1)``, ``k = floor((h - 1) / m)``
(SeasonalNaive). They are returned as sample paths so every method is scored the same way.
"""

from __future__ import annotations

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.forecasting.forecast import Forecast

__all__ = ["naive", "seasonal_naive", "gaussian_forecast"]


def gaussian_forecast(point: np.ndarray, sigma: np.ndarray, num_samples: int = 1000,
                      seed: int = 0, dates: np.ndarray | None = None,
                      levels: tuple[float, ...] = (0.1, 0.5, 0.9)) -> Forecast:
    """Sample paths ``[S, H]`` of independent N(point_h, sigma_h^2) steps (e.g. a model that
    reports only a mean and an interval: sigma = interval width / (2 z))."""
    point, sigma = np.asarray(point, np.float64), np.asarray(sigma, np.float64)
    rng = np.random.default_rng(seed)
    samples = point + sigma * rng.standard_normal((num_samples, len(point)))
    dates = np.arange(len(point)) if dates is None else dates
    return Forecast(dates, samples, point, np.quantile(samples, levels, axis=0), tuple(levels))


def _check(values: np.ndarray, horizon: int, m: int) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if m < 1:
        raise ValueError(f"the season m must be >= 1, got {m}")
    if len(values) <= m:
        raise DataError(f"a seasonal-naive forecast with m={m} needs more than {m} values, "
                        f"got {len(values)}")
    return values


def naive(values: np.ndarray, horizon: int, **kwargs) -> Forecast:
    """Every step repeats the last value ``[H]``; sigma_h = sigma * sqrt(h)."""
    return seasonal_naive(values, horizon, 1, **kwargs)


def seasonal_naive(values: np.ndarray, horizon: int, m: int, **kwargs) -> Forecast:
    """Step h repeats the value one season before it: ``y_{T + h - m (k + 1)}``,
    ``k = floor((h - 1) / m)``; sigma_h = sigma * sqrt(k + 1), sigma the RMS of the in-sample
    residuals ``y_t - y_{t-m}``. ``kwargs`` go to ``gaussian_forecast``."""
    values = _check(values, horizon, m)
    h = np.arange(1, horizon + 1)
    k = (h - 1) // m
    point = values[len(values) - m + (h - 1) % m]
    sigma = np.sqrt(np.mean((values[m:] - values[:-m]) ** 2)) * np.sqrt(k + 1)
    return gaussian_forecast(point, sigma, **kwargs)
