"""The damped trend method, a statistical forecast a network's forecast can be mixed with.

Gardner & McKenzie (1985)'s damped trend is one of the three methods of M4's "Comb"
benchmark, and among the most accurate simple methods on M3 and M4. In the
error-correction form of ETS(A,Ad,N) (Hyndman et al. 2008, Tables 2.1 and 6.1):

    f_t = l_{t-1} + phi b_{t-1},   e_t = y_t - f_t
    l_t = f_t + alpha e_t
    b_t = phi b_{t-1} + beta e_t
    f_{T+h} = l_T + (phi + phi^2 + ... + phi^h) b_T
    Var(e_{T+h}) = sigma^2 (1 + sum_{j=1}^{h-1} (alpha + beta (phi + ... + phi^j))^2)

``alpha``, ``beta = alpha * beta_share`` and ``phi`` are fitted by least squares of the
one-step errors on the grid ``SMOOTHING`` x ``TREND_SHARE`` x ``DAMPING`` (phi at most 0.98,
as ETS bounds it, so the trend levels off); the initial level is the first value, the
initial slope that of a line through the first ten values (Hyndman et al. 2008, Sec. 2.6.1).
``sigma`` is the RMS of the one-step errors. A seasonal series is first adjusted as the Theta
method's is (``theta.deseasonalized_forecast``, M4's protocol for its benchmarks).

In place of Theta in the forecaster's mixture (``ForecastConfig.statistical``), its
forecasts alone were more accurate on the development panel's validation split, but the
forecaster's were not: on the short prison series its errors at rolling origins are larger
than Theta's, so the mixture gave it less weight and wider intervals
(docs/forecast-panel.md, "The damped trend in place of Theta"). Theta stays the default.
"""

from __future__ import annotations

import numpy as np

from rnnkit.forecasting.forecast import Forecast
from rnnkit.forecasting.theta import deseasonalized_forecast, gaussian_paths

__all__ = ["damped_trend", "damped_trend_point_spread", "fit_damped_trend", "SMOOTHING",
           "TREND_SHARE", "DAMPING"]

SMOOTHING = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])  # alpha
TREND_SHARE = np.array([0.01, 0.05, 0.1, 0.2])  # beta / alpha
DAMPING = np.array([0.8, 0.9, 0.95, 0.98])  # phi
INITIAL_SLOPE_ROWS = 10


def fit_damped_trend(values: np.ndarray) -> dict[str, float]:
    """The least-squares fit on the grid of ``values [T]`` (T >= 2): ``alpha``, ``beta``,
    ``phi``, the last ``level`` and ``slope``, and ``sigma``, the RMS of the one-step
    errors."""
    y = np.asarray(values, np.float64)
    alpha, share, phi = (g.ravel() for g in np.meshgrid(SMOOTHING, TREND_SHARE, DAMPING,
                                                         indexing="ij"))
    beta = alpha * share
    k = min(len(y), INITIAL_SLOPE_ROWS)
    level = np.full(len(alpha), y[0])
    slope = np.full(len(alpha), np.polyfit(np.arange(k), y[:k], 1)[0])
    sse = np.zeros(len(alpha))
    for v in y[1:]:  # every grid point at once
        f = level + phi * slope
        err = v - f
        sse += err ** 2
        level = f + alpha * err
        slope = phi * slope + beta * err
    i = int(np.argmin(sse))
    return {"alpha": float(alpha[i]), "beta": float(beta[i]), "phi": float(phi[i]),
            "level": float(level[i]), "slope": float(slope[i]),
            "sigma": float(np.sqrt(sse[i] / max(1, len(y) - 1)))}


def _nonseasonal(y: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    fit = fit_damped_trend(y)
    h = np.arange(1, horizon + 1)
    damped = np.cumsum(fit["phi"] ** h)  # phi + ... + phi^h
    point = fit["level"] + damped * fit["slope"]
    c = fit["alpha"] + fit["beta"] * damped[:-1]  # c_j, j = 1 .. H-1
    return point, fit["sigma"] * np.sqrt(1 + np.r_[0.0, np.cumsum(c ** 2)])


def damped_trend_point_spread(values: np.ndarray, horizon: int, m: int = 1
                              ) -> tuple[np.ndarray, np.ndarray]:
    """The damped trend's point forecast ``[H]`` and the standard deviation of its Gaussian
    interval ``[H]``, ``horizon`` steps after ``values [T]`` (T >= 3) with season ``m``
    (1: none)."""
    return deseasonalized_forecast(_nonseasonal, values, horizon, m)


def damped_trend(values: np.ndarray, horizon: int, m: int = 1, spread: float = 1.0,
                 **kwargs) -> Forecast:
    """The damped trend forecast ``horizon`` steps after ``values [T]`` with season ``m``
    (1: none), as sample paths, its interval's standard deviation times ``spread``
    (``kwargs`` go to ``gaussian_forecast``). Fewer than 3 values get the Naive forecast."""
    return gaussian_paths(damped_trend_point_spread, values, horizon, m, spread, **kwargs)
