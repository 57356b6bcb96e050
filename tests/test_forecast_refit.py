"""config.refit: after the validation rows chose the steps, the temperature and the shares,
the network is trained anew on every row for the best check's steps (fit.refit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.forecasting import DatedSeries, train_forecaster
from rnnkit.forecasting.covariates import step_inputs
from rnnkit.forecasting.fit import refit, replay, trained_rates


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def wave(rows: int, seed: int, name: str) -> DatedSeries:
    """A weekly sine on a random walk, daily."""
    t = np.arange(rows)
    walk = np.cumsum(np.random.default_rng(seed).standard_normal(rows))
    dates = np.datetime64("2020-01-01", "D") + np.arange(rows)
    return DatedSeries(name, dates, 50 + 10 * np.sin(2 * np.pi * t / 7) + walk)


# two layers, so dropout draws from torch's generator; the network alone
SMALL = {"hidden_size": 8, "num_layers": 2, "batch_size": 16, "combine": ""}


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k != "temperature"}


def test_trained_rates_are_the_rates_each_check_recorded_for_the_steps_before_it():
    history = [{"step": 4, "lr": 0.03}, {"step": 8, "lr": 0.015}, {"step": 12, "lr": 0.0075}]
    assert trained_rates(history, 10, 0.03) == [0.03] * 4 + [0.015] * 4 + [0.0075] * 2
    assert trained_rates(history, 3, 0.03) == [0.03] * 3
    assert trained_rates(history, 14, 0.03) == [0.03] * 4 + [0.015] * 4 + [0.0075] * 6
    assert trained_rates([], 2, 0.01) == [0.01, 0.01]


def test_replay_sets_each_steps_learning_rate():
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=0.5)
    scheduler = replay([0.5, 0.25, 0.125], 0.5)(optimizer)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == [0.5, 0.25, 0.125, 0.125]
    with pytest.raises(ValueError, match="at least one"):
        replay([], 0.5)


def test_a_refit_is_the_model_trained_on_every_row_as_if_nothing_were_held_out():
    series = [wave(70, 1, "a"), wave(80, 2, "b")]
    options = dict(max_steps=30, eval_every=10, ensemble=1, **SMALL)  # no halving: lr 3e-3
    validated, report = train_forecaster(series, 5, max_time=None, seed=1, **options)
    assert report.best_step == 30 and validated.config.validation > 0
    refitted, refit_report = train_forecaster(series, 5, max_time=None, seed=1, refit=True,
                                              **options)
    assert refit_report.refit.startswith("refitted on every row for 30 steps")
    # the same model, from the same seed, with no rows held out
    whole, _ = train_forecaster(series, 5, max_time=None, seed=1, **{**options, "validation": 0})
    for k, v in weights(whole.model).items():
        torch.testing.assert_close(refitted.model.state_dict()[k], v, rtol=0, atol=0)
    assert any(not torch.equal(v, refitted.model.state_dict()[k])
               for k, v in weights(validated.model).items())
    # what the validation rows chose stays as they chose it
    def checks(r):  # the validation checks, without their wall times
        return [{k: v for k, v in h.items() if k != "time"} for h in r.history]

    assert (refit_report.steps, refit_report.best_step, checks(refit_report)) == (
        report.steps, report.best_step, checks(report))
    assert float(refitted.model.temperature) == float(validated.model.temperature)


def test_every_member_of_an_ensemble_is_refitted_and_the_shares_are_kept():
    series = [wave(90, 3, "a")]
    options = dict(max_steps=20, eval_every=10, ensemble=2, hidden_size=8, num_layers=2,
                   batch_size=16)
    validated, report = train_forecaster(series, 5, max_time=None, seed=1, **options)
    refitted, refit_report = train_forecaster(series, 5, max_time=None, seed=1, refit=True,
                                              **options)
    assert refit_report.refit.count("refitted on every row") == 2, refit_report.refit
    assert refit_report.combine == report.combine
    assert refitted.config.combine_weights == validated.config.combine_weights
    for a, b in zip(validated.model.members, refitted.model.members):
        assert any(not torch.equal(v, b.state_dict()[k]) for k, v in weights(a).items())


def test_a_refit_the_budget_cannot_hold_leaves_the_validated_model():
    series = [wave(90, 0, "a")]
    forecaster, report = train_forecaster(series, 5, max_time=None, seed=1, max_steps=20,
                                          eval_every=10, **SMALL)
    before = weights(forecaster.model)
    values = [series[0].values / forecaster.config.unit]
    calendars = [step_inputs(forecaster.config, series[0].dates, None, series="a")]
    said = refit(forecaster.model, values, calendars, report, seed=1, max_time=0.0)
    assert said.startswith("not refitted: 20 steps would take"), said
    for k, v in weights(forecaster.model).items():
        assert torch.equal(v, before[k])
    # without validation rows there is nothing to refit on
    flat, flat_report = train_forecaster(series, 5, max_time=None, seed=1, max_steps=5,
                                         validation=0, refit=True, **SMALL)
    assert flat_report.refit == ""
