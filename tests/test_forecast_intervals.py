"""Forecast intervals that cannot be right (issue 33): series too short to train on, horizons
longer than the data allows, and intervals over lead times past the trained horizon."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from rnnkit.data.errors import DataError
from rnnkit.forecasting import DatedSeries, train_forecaster
from rnnkit.forecasting.windows import max_horizon, min_length, too_short

TINY = {"hidden_size": 8, "num_layers": 1}


def dated(values, name="s", start="2020-01-01") -> DatedSeries:
    dates = np.datetime64(start, "m") + np.arange(len(values)) * np.timedelta64(1, "D")
    return DatedSeries(name, dates.astype("datetime64[m]"), np.asarray(values, np.float64))


def walk(rows: int, seed: int = 0, name: str = "walk") -> DatedSeries:
    return dated(100 + np.cumsum(np.random.default_rng(seed).standard_normal(rows)), name)


def test_min_length_is_two_horizons_a_context_and_a_lag():
    assert [min_length(h) for h in (1, 7, 12, 20)] == [4, 22, 37, 53]
    # the longest horizon is the largest one whose minimum fits
    for rows in (3, 4, 21, 22, 365):
        h = max_horizon(rows)
        assert (h == 0 or min_length(h) <= rows) and min_length(h + 1) > rows
    assert too_short([("a", 21)], 7) == {"a": 21}
    # in a panel a series needs one window of its own (15 rows at H = 7): c is kept
    assert too_short([("a", 3), ("b", 22), ("c", 21)], 7) == {"a": 3}
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        min_length(0)


def test_a_three_row_series_is_refused_naming_it():
    # it trained 400 steps and gave an 80% interval 0.0007 wide
    with pytest.raises(DataError, match=r"series 'tiny' \(3 rows\) is too short .* at least "
                                        r"4 rows .*no horizon fits"):
        train_forecaster([dated([1.0, 2.0, 3.0], "tiny")], 1, max_time=None, max_steps=1)


def test_a_horizon_longer_than_the_data_allows_is_refused_with_the_longest():
    # --horizon 10000 on 365 daily rows was accepted, its interval narrowing with lead time
    with pytest.raises(DataError, match=r"'walk' \(365 rows\) is too short .* 10000 steps.* "
                                        r"at least 20013 rows.*--horizon 176 or less"):
        train_forecaster([walk(365)], 10000, max_time=None, max_steps=1)


def test_a_short_series_of_a_panel_is_left_out_and_named():
    panel = [walk(80, 0, "a"), dated([1.0, 2.0, 3.0], "short"), walk(80, 1, "b")]
    with pytest.warns(UserWarning, match=r"'short' \(3 rows\).*left out, the other 2"):
        fc, report = train_forecaster(panel, 5, max_time=None, max_steps=2, **TINY)
    assert report.left_out == {"short": 3}
    assert fc.series_names == ["a", "b"]
    out = fc.forecast(panel[2].values, panel[2].dates, 5, num_samples=4, series="b")
    assert out.samples.shape == (4, 5)


def seasonal(rows: int, name: str, seed: int = 0) -> DatedSeries:
    t = np.arange(rows)
    noise = np.random.default_rng(seed).standard_normal(rows)
    return dated(50 + 10 * np.sin(2 * np.pi * t / 12) + 0.2 * t + noise, name)


def test_series_too_short_for_the_network_get_the_statistical_forecasts_alone(tmp_path):
    from rnnkit.forecasting import Forecaster
    from rnnkit.forecasting.combination import statistical_paths, statistical_split
    from rnnkit.forecasting.theta import interval_spread

    # at H = 14 a window is 27 rows: together they offer 4 + 6 < 15, too few for the network
    short = [seasonal(30, "x", 1), seasonal(32, "y", 2)]
    h, m = 14, 7
    short = [dataclasses.replace(s, season=m) for s in short]
    with pytest.warns(UserWarning, match="no network trained"):
        fc, report = train_forecaster(short, h, max_time=None, max_steps=1, **TINY)
    assert fc.model is None and report.statistical_only == {"x": 30, "y": 32}
    values = [s.values for s in short]
    spread = interval_spread(values, h, m)
    split, _, origins = statistical_split(values, h, m, spread)
    assert origins > 0  # chosen at rolling origins, not the default
    assert fc.config.theta_spread == spread and fc.config.statistical_only_weights == split
    out = fc.forecast(short[1].values, short[1].dates, h, num_samples=50, series="y", seed=3)
    expected = statistical_paths(short[1].values, h, m, split, spread, 50, 3)
    np.testing.assert_allclose(out.samples, expected)
    assert out.dates[0] == short[1].dates[-1] + np.timedelta64(1, "D")
    fc.save(tmp_path / "f.pt")
    again = Forecaster.load(tmp_path / "f.pt")
    assert again.model is None and again.statistical_series == ["x", "y"]
    np.testing.assert_allclose(again.forecast(short[1].values, short[1].dates, h,
                                              num_samples=50, series="y", seed=3).samples,
                               expected)
    with pytest.raises(DataError, match=r"series 'y' has 10 rows; the statistical forecasts "
                                        r"alone forecast 14 steps from at least 14"):
        fc.forecast(short[1].values[:10], short[1].dates[:10], h, series="y")


def test_a_panel_forecasts_its_short_member_without_the_network():
    from rnnkit.forecasting.combination import statistical_paths

    panel = [walk(80, 0, "a"), walk(20, 2, "short"), walk(80, 1, "b")]  # one window: 21 rows
    with pytest.warns(UserWarning, match=r"'short' \(20 rows\).*Theta and SeasonalNaive alone"):
        fc, report = train_forecaster(panel, 10, max_time=None, max_steps=2, **TINY)
    assert fc.series_names == ["a", "b"] and fc.statistical_series == ["short"]
    cfg = fc.config
    out = fc.forecast(panel[1].values, panel[1].dates, 10, num_samples=20, series="short")
    np.testing.assert_allclose(out.samples, statistical_paths(
        panel[1].values, 10, cfg.season, cfg.statistical_only_weights, cfg.theta_spread, 20, 0))
    net = fc.forecast(panel[2].values, panel[2].dates, 10, num_samples=20, series="b")
    assert not np.allclose(net.samples, statistical_paths(
        panel[2].values, 10, cfg.season, cfg.statistical_only_weights, cfg.theta_spread, 20, 0))


def test_a_context_too_short_names_its_series():
    s = walk(80)
    fc, _ = train_forecaster([s], 5, max_time=None, max_steps=1, **TINY)
    with pytest.raises(DataError, match=r"series 'walk' has 1 rows; .*largest lag"):
        fc.forecast(s.values[:1], s.dates[:1], 5, num_samples=4, series="walk")


@pytest.fixture(scope="module")
def walk_model():
    torch.manual_seed(0)
    s = walk(300)
    # the network alone: the combination with Theta (test_theta.py) widens the interval
    fc, _ = train_forecaster([s], 5, max_time=None, max_steps=150, combine="", **TINY)
    return s, fc


def test_a_forecast_past_the_trained_horizon_warns(walk_model):
    s, fc = walk_model
    with pytest.warns(UserWarning, match="trained on horizons of 5: steps 6 on are extrapolated"):
        fc.forecast(s.values, s.dates, 6, num_samples=4)


def forecast_widths(walk_model, horizon: int = 40) -> np.ndarray:
    s, fc = walk_model
    with pytest.warns(UserWarning, match="extrapolated"):
        out = fc.forecast(s.values, s.dates, horizon, num_samples=400)
    lo, hi = out.interval(0.8)
    return hi - lo


def test_the_interval_of_a_random_walk_does_not_narrow_past_the_trained_horizon(walk_model):
    """Forecast 8x the trained horizon: the 80% interval at the last step is at least as
    wide as at the first and at the trained horizon."""
    width = forecast_widths(walk_model)
    assert width[-1] >= width[0] and width[-1] >= 0.9 * width[4]


@pytest.mark.xfail(strict=True, reason=(
    "the width stops growing about 2 trained horizons out (2.5x at lead 40, not 6.3x): the "
    "model learns a pull toward the context mean from the context steps' loss, whose "
    "'standard' scaling reads the context's own later values (least squares on the "
    "horizon steps alone puts lag 1 at 0.97, on all steps at 0.86; loss_on='horizon' "
    "gives 4.2x); changing that default needs the validation panels"))
def test_the_interval_of_a_random_walk_grows_like_sqrt_lead(walk_model):
    width = forecast_widths(walk_model)
    assert width[-1] / width[0] >= 0.5 * np.sqrt(40)


@pytest.mark.parametrize("ensemble", [1, 2])
def test_the_time_budget_covers_the_calibration_after_training(ensemble):
    # a wide grid of temperatures over many validation windows makes the calibration after
    # training cost a third of the budget: before, it ran on top of max_time (a budget of
    # 1.5x), so the budget is sized from this machine's cost of a run of one step
    grid = tuple(1.0 + 0.05 * k for k in range(60))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a loaded 2-core machine time nothing reliably
    try:
        start = time.monotonic()
        train_forecaster([walk(600)], 24, max_time=None, max_steps=1, seed=0,
                         ensemble=ensemble, temperatures=grid, **TINY)
        max_time = max(2.0, 2 * (time.monotonic() - start))
        start = time.monotonic()
        _, report = train_forecaster([walk(600)], 24, max_time=max_time, seed=0,
                                     ensemble=ensemble, temperatures=grid, **TINY)
        wall = time.monotonic() - start
    finally:
        torch.set_num_threads(threads)
    assert report.best_score is not None  # it validated and calibrated
    assert wall <= max_time * 1.25, (wall, max_time)


class _Temperature(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("temperature", torch.tensor(1.0))


@pytest.mark.parametrize("by, covers, chosen", [
    ("coverage", (0.70, 0.79, 0.85, 0.95), 1.25),  # closest to 80%, from below
    ("at_least", (0.70, 0.79, 0.85, 0.95), 1.5),  # the narrowest that reaches 80%
    ("at_least", (0.50, 0.60, 0.70, 0.65), 1.5),  # none does: the one that covers most
    ("crps", (0.70, 0.79, 0.85, 0.95), 1.25),
])
def test_calibrate_chooses_the_temperature_its_rule_asks_for(monkeypatch, by, covers, chosen):
    from rnnkit.forecasting import fit

    grid = (1.0, 1.25, 1.5, 2.0)
    crps = dict(zip(grid, (0.9, 0.8, 0.85, 1.0)))
    cover = dict(zip(grid, covers))
    monkeypatch.setattr(fit, "validation_score", lambda m, val, seed=0, coverage=True: (
        crps[float(m.temperature)], cover[float(m.temperature)]))
    model = _Temperature()
    assert fit.calibrate(model, None, by=by, grid=grid) == crps[chosen]
    assert float(model.temperature) == chosen
