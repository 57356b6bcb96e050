"""The forecaster's training loop (issue 30, "one training loop"): the forecasts it trains at
a fixed step budget and seed, held to numbers recorded from the loop of
``forecasting/fit.py`` before it went through ``rnnkit.train.Trainer``."""

from __future__ import annotations

import logging
import math
import os
import signal

import numpy as np
import pytest
import torch

from rnnkit.forecasting import DatedSeries, train_forecaster
from rnnkit.forecasting.fit import INTERRUPTED, NON_FINITE, WindowBatches, forecast_config
from rnnkit.forecasting.model import DeepAR
from rnnkit.forecasting.windows import WindowSampler
from rnnkit.train import TrainConfig


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
# the network alone, as recorded (before the combination with Theta, test_theta.py)
SMALL = {"hidden_size": 8, "num_layers": 2, "batch_size": 16, "combine": ""}

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
        [wave(70, 1, "a"), wave(80, 2, "b")],
        dict(max_steps=30, eval_every=10, ensemble=1, **SMALL),  # one model, as recorded
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


def test_non_finite_steps_are_counted_said_and_stop_the_run(monkeypatch, caplog):
    # the forecaster's own loop skipped them silently and without limit: 60 steps, "max_steps"
    nll = DeepAR.nll
    monkeypatch.setattr(DeepAR, "nll", lambda self, w: nll(self, w) * math.nan)
    series = [wave(90, 0, "a")]
    with caplog.at_level(logging.WARNING, logger="rnnkit.train"):
        forecaster, report = train_forecaster(series, 5, max_time=None, max_steps=60, **SMALL)
    limit = TrainConfig().max_nonfinite_steps
    assert (report.stop_reason, report.steps, report.skipped_steps) == (NON_FINITE, limit, limit)
    assert f"{limit} steps in a row had non-finite gradients" in caplog.text
    assert "step 1 skipped: the gradient norm is nan" in caplog.text
    out = forecaster.forecast(series[0].values, series[0].dates, 5, num_samples=4)
    assert np.isfinite(out.mean).all()  # no NaN step reached the weights


def test_ctrl_c_finishes_the_step_it_interrupts():
    # SIGINT, as a terminal sends it: the Trainer's handler lets step 3 end, then stops
    nll, calls = DeepAR.nll, []

    def ctrl_c_in_step_3(self, w):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return nll(self, w)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DeepAR, "nll", ctrl_c_in_step_3)
        _, report = train_forecaster([wave(90, 0, "a")], 5, max_time=None, max_steps=60,
                                     **SMALL)
    assert (report.stop_reason, report.steps) == (INTERRUPTED, 3)


def test_window_batches_resume_the_same_draws():
    series = wave(90, 0, "a")
    cfg = forecast_config([series], 5)
    sampler = WindowSampler([series.values], [np.zeros((90, 0))], [80], cfg, seed=4)
    source = WindowBatches(sampler, batch_size=8)
    source.next_batch(0)
    saved = source.state_dict()
    first = source.next_batch(0).windows.values
    source.load_state_dict(saved)
    again = source.next_batch(0)
    assert torch.equal(again.windows.values, first) and again.fresh
    assert again.mask.shape == (1, 1)  # DeepAR.nll scores the windows with one number
    every = list(source.iter_epoch(0))
    assert sum(len(b.windows.values) for b in every) == len(sampler)
