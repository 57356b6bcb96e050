"""config.deseasonalize: the network reads and forecasts each series seasonally adjusted
(theta.seasonal_adjustment), and the season is put back on its paths."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rnnkit.forecasting import DatedSeries, Forecaster, train_forecaster
from rnnkit.forecasting.fit import network_adjustment
from rnnkit.forecasting.theta import seasonal_adjustment, seasonal_indices


def weekly(rows: int, seed: int, name: str) -> DatedSeries:
    """Daily values with a multiplicative weekly season on a positive random walk."""
    t = np.arange(rows)
    walk = np.cumsum(np.random.default_rng(seed).standard_normal(rows))
    dates = np.datetime64("2020-01-01", "D") + t
    return DatedSeries(name, dates, (60 + walk) * (1 + 0.3 * np.sin(2 * np.pi * t / 7)))


SMALL = {"hidden_size": 8, "num_layers": 1, "batch_size": 16, "max_steps": 20,
         "eval_every": 10}


def test_seasonal_adjustment_repeats_the_indices_and_is_the_identity_without_a_season():
    y = weekly(140, 0, "a").values
    factor, offset = seasonal_adjustment(y, 7, 150)
    np.testing.assert_allclose(factor[:7], seasonal_indices(y, 7, True))
    np.testing.assert_allclose(factor[140:147], factor[:7])
    assert not offset.any() and factor.std() > 0.1
    below = y - 100  # a value <= 0: additive offsets, factor 1
    factor, offset = seasonal_adjustment(below, 7, 140)
    assert (factor == 1).all()
    np.testing.assert_allclose(offset[:7], seasonal_indices(below, 7, False))
    noise = np.random.default_rng(1).standard_normal(140)
    factor, offset = seasonal_adjustment(noise, 7, 150)
    assert (factor == 1).all() and not offset.any()


def test_the_network_forecasts_the_adjusted_context_and_the_season_goes_back_on_its_paths():
    s = weekly(140, 0, "a")
    forecaster, _ = train_forecaster([s], horizon=7, max_time=None, seed=0, combine="",
                                     deseasonalize=True, **SMALL)
    cfg = forecaster.config
    assert cfg.season == 7 and cfg.deseasonalize
    got = forecaster.forecast(s.values, s.dates, 7, num_samples=20, seed=3).samples
    plain = Forecaster(forecaster.model, forecaster.series_names)
    plain.config = replace(cfg, deseasonalize=False)
    scaled = s.values / cfg.unit
    factor, offset = seasonal_adjustment(scaled, 7, 147)
    adjusted = (scaled - offset[:140]) / factor[:140] * cfg.unit
    paths = plain.forecast(adjusted, s.dates, 7, num_samples=20, seed=3).samples
    np.testing.assert_allclose(got, paths * factor[140:], rtol=1e-9)
    assert not np.allclose(got, paths, rtol=0.05)


def test_the_network_trains_on_series_adjusted_by_the_rows_before_their_validation_rows():
    s = weekly(140, 0, "a")
    forecaster, _ = train_forecaster([s], horizon=7, max_time=None, seed=0, combine="",
                                     deseasonalize=True, **SMALL)
    cfg = forecaster.config
    assert cfg.validation > 0
    ((factor, offset),) = network_adjustment(cfg, [s.values / cfg.unit])
    first = s.values[: 140 - cfg.validation] / cfg.unit
    np.testing.assert_allclose(factor, seasonal_adjustment(first, 7, 140)[0])
    assert network_adjustment(replace(cfg, deseasonalize=False), [s.values]) is None


def test_the_shares_are_scored_on_the_series_as_given_not_as_adjusted():
    # the statistical forecast alone (shares 0/1/0) scores the same with the network's
    # adjustment as without it: its actual values and scales are the series' own
    series = [weekly(140, 0, "a"), weekly(150, 1, "b")]
    options = dict(horizon=7, max_time=None, seed=0, ensemble=1, **SMALL)
    _, with_adjusted = train_forecaster(series, deseasonalize=True, **options)
    _, without = train_forecaster(series, deseasonalize=False, **options)
    scores, plain = with_adjusted.combine["scores"], without.combine["scores"]
    assert scores["0/1/0"] == pytest.approx(plain["0/1/0"], rel=1e-6)  # float32 windows
    assert scores["0.9/0.05/0.05"] != pytest.approx(plain["0.9/0.05/0.05"], rel=1e-6)
