"""The damped trend method (forecasting.damped) and its place in the forecaster's mixture."""

import numpy as np
import pytest

from rnnkit.forecasting.combination import combined_paths, statistical_forecasts
from rnnkit.forecasting.damped import (
    DAMPING,
    SMOOTHING,
    TREND_SHARE,
    damped_trend,
    damped_trend_point_spread,
    fit_damped_trend,
)
from rnnkit.forecasting.theta import interval_spread, theta, theta_point_spread
from rnnkit.forecasting.windows import ForecastConfig


def damped_reference(y, alpha, beta, phi):
    """ETS(A,Ad,N) written out step by step (Hyndman et al. 2008, Table 2.1): the last
    level and slope and the sum of squared one-step errors."""
    k = min(len(y), 10)
    level, slope = y[0], np.polyfit(np.arange(k), y[:k], 1)[0]
    sse = 0.0
    for v in y[1:]:
        f = level + phi * slope
        sse += (v - f) ** 2
        level, slope = f + alpha * (v - f), phi * slope + beta * (v - f)
    return level, slope, sse


def test_fit_is_the_least_squares_grid_point():
    rng = np.random.default_rng(0)
    y = 10 + np.cumsum(0.5 + rng.normal(size=50))
    fit = fit_damped_trend(y)
    grid = [(a, a * b, p) for a in SMOOTHING for b in TREND_SHARE for p in DAMPING]
    sses = [damped_reference(y, *g)[2] for g in grid]
    best = grid[int(np.argmin(sses))]
    assert (fit["alpha"], fit["beta"], fit["phi"]) == pytest.approx(best)
    level, slope, sse = damped_reference(y, *best)
    assert (fit["level"], fit["slope"]) == pytest.approx((level, slope))
    assert fit["sigma"] == pytest.approx(np.sqrt(sse / 49))


def test_forecast_and_interval_follow_the_equations():
    rng = np.random.default_rng(1)
    y = 5 + 0.3 * np.arange(40) + rng.normal(size=40)
    fit = fit_damped_trend(y)
    a, b, phi = fit["alpha"], fit["beta"], fit["phi"]
    point, sd = damped_trend_point_spread(y, 6, 1)
    sums = [sum(phi ** j for j in range(1, h + 1)) for h in range(1, 7)]  # phi + ... + phi^h
    np.testing.assert_allclose(point, [fit["level"] + s * fit["slope"] for s in sums])
    var = [1 + sum((a + b * sums[j - 1]) ** 2 for j in range(1, h)) for h in range(1, 7)]
    np.testing.assert_allclose(sd, fit["sigma"] * np.sqrt(var))
    f = damped_trend(y, 6, 1, spread=2.0, num_samples=4000)
    np.testing.assert_allclose(f.samples.std(0) / (2 * sd), 1, atol=0.06)


def test_a_trend_is_continued_and_levels_off():
    y = 3.0 + 2.0 * np.arange(30)  # no noise: the fit follows the line
    point, _ = damped_trend_point_spread(y, 40, 1)
    steps = np.diff(point)
    phi = fit_damped_trend(y)["phi"]
    assert phi == DAMPING.max()  # the least damping fits a straight line best
    assert point[0] - y[-1] > 1.5  # the trend goes on (SES would stay flat) ...
    np.testing.assert_allclose(steps[1:] / steps[:-1], phi)  # ... each step phi x the last
    # Theta's drift is half the slope and never levels off
    assert np.diff(theta(y, 40, 1).mean)[-1] == pytest.approx(1.0, rel=0.05)


def test_seasonal_series_gets_its_season_back():
    t = np.arange(60)
    y = 50 + 0.2 * t + 10 * np.tile([1.0, -1.0, 2.0, -2.0], 15)
    point, _ = damped_trend_point_spread(y, 8, 4)
    seasonal = point - np.convolve(point, np.ones(4) / 4, "same")
    np.testing.assert_allclose(seasonal[2:6], [20, -20, 10, -10], atol=3.0)


def test_short_series_and_bad_input():
    np.testing.assert_allclose(damped_trend(np.array([1.0, 2.0]), 3).mean, 2.0)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        damped_trend(np.arange(10.0), 0)
    with pytest.raises(ValueError, match="method must be one of .*got 'ets'"):
        statistical_forecasts(np.arange(10.0), 2, 1, 10, method="ets")
    with pytest.raises(ValueError, match="statistical must be one of .*got 'holt'"):
        ForecastConfig("monthly", 2, 4, (1,), (), 4, statistical="holt")


def test_the_mixture_and_the_interval_factor_use_the_method_asked_for():
    rng = np.random.default_rng(2)
    y = 20 + np.cumsum(1 + rng.normal(size=80))
    network = np.zeros((400, 6))
    for method, point_spread in (("damped_trend", damped_trend_point_spread),
                                 ("theta", theta_point_spread)):
        alone = combined_paths(network, y, 6, 1, (0.0, 1.0, 0.0), seed=3, method=method)
        stat, _ = statistical_forecasts(y, 6, 1, 400, 3, method)
        np.testing.assert_allclose(stat.mean, point_spread(y, 6, 1)[0])
        np.testing.assert_allclose(np.sort(alone, 0), np.sort(stat.samples, 0))
    assert not np.allclose(damped_trend_point_spread(y, 6, 1)[0], theta(y, 6, 1).mean, atol=0.3)
    theta_default = combined_paths(network, y, 6, 1, (0.0, 1.0, 0.0), seed=3)
    np.testing.assert_allclose(np.sort(theta_default, 0),
                               np.sort(statistical_forecasts(y, 6, 1, 400, 3)[0].samples, 0))
    assert interval_spread([y], 6, 1, point_spread=damped_trend_point_spread) != \
        interval_spread([y], 6, 1)
