"""The forecaster's training loop (issue 30, "one training loop"): the forecasts it trains at
a fixed step budget and seed, held to numbers recorded from the loop of
``forecasting/fit.py`` before it went through ``rnnkit.train.Trainer``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.forecasting import DatedSeries, train_forecaster


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def dated(values, name: str) -> DatedSeries:
    dates = np.datetime64("2020-01-01", "m") + np.arange(len(values)) * np.timedelta64(1, "D")
    return DatedSeries(name, dates.astype("datetime64[m]"), np.asarray(values, np.float64))


def wave(rows: int, seed: int, name: str) -> DatedSeries:
    """A weekly sine on a random walk."""
    t = np.arange(rows)
    walk = np.cumsum(np.random.default_rng(seed).standard_normal(rows))
    return dated(50 + 10 * np.sin(2 * np.pi * t / 7) + walk, name)


# two layers, so dropout draws from torch's generator: a change in what the loop draws shows
SMALL = {"hidden_size": 8, "num_layers": 2, "batch_size": 16}

# (series, overrides, steps, best_step, stop_reason, learning rates at the checks, forecast
# mean). Recorded from the loop before it went through the Trainer (commit 23e0adb), seed 1,
# horizon 5, 16 sample paths at seed 0.
CASES = {
    # lr 0.03 so that validation stalls: the learning rate halves twice, then early stopping
    "one series": (
        [wave(90, 0, "a")], dict(max_steps=120, eval_every=4, patience=6, lr=0.03, **SMALL),
        76, 52, "early_stopping", [0.03] * 6 + [0.015] * 10 + [0.0075] * 3,
        [51.350990772247314, 58.26035022735596, 66.03591513633728, 69.06314277648926,
         65.24251174926758]),
    "panel": (
        [wave(70, 1, "a"), wave(80, 2, "b")], dict(max_steps=30, eval_every=10, **SMALL),
        30, 30, "max_steps", [0.003] * 3,
        [57.75332450866699, 49.62878465652466, 42.836204051971436, 42.88737630844116,
         49.290369510650635]),
    "ensemble of 2": (
        [wave(90, 3, "a")], dict(max_steps=20, eval_every=10, ensemble=2, **SMALL),
        40, 10, "max_steps", [0.003] * 4,
        [40.32037878036499, 45.33100128173828, 53.157631397247314, 53.48453235626221,
         49.08150887489319]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fixed_step_budget_trains_the_recorded_forecaster(case):
    series, overrides, steps, best_step, stop, lrs, mean = CASES[case]
    forecaster, report = train_forecaster(series, 5, max_time=None, seed=1, **overrides)
    assert (report.steps, report.best_step, report.stop_reason) == (steps, best_step, stop)
    assert [h["lr"] for h in report.history] == lrs
    last = series[-1]
    out = forecaster.forecast(last.values, last.dates, 5, num_samples=16, series=last.name)
    # the same op order and draws give the same bits; the tolerance only spares other CPUs'
    # kernels (a different draw moves the mean by whole units)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-6)
