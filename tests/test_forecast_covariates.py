"""Covariates of the forecaster (issue 30): future-known, past-only and static inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rnnkit.data.errors import DataError
from rnnkit.forecasting import DatedSeries, Forecaster, train_forecaster
from rnnkit.forecasting.backtest import backtest
from rnnkit.forecasting.covariates import Covariates, covariate_width, step_inputs
from rnnkit.forecasting.fit import _windows

# the network alone: a forecast mixed with Theta (test_theta.py) reads no covariate
TINY = {"hidden_size": 8, "num_layers": 1, "combine": ""}


def monthly(values, name="s", start="2000-01") -> DatedSeries:
    dates = (np.datetime64(start, "M") + np.arange(len(values))).astype("datetime64[m]")
    return DatedSeries(name, dates, np.asarray(values, np.float64))


def seasonal(n=60, seed=3, name="s") -> DatedSeries:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return monthly(10 + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, n), name)


def test_without_covariates_the_numbers_are_unchanged():
    # the forecast of this tiny model before covariates existed (commit a6bf557): the input
    # width, the parameters drawn and the RNG consumed must not move
    s = seasonal()
    fc, report = train_forecaster([s], 4, max_time=None, max_steps=6, seed=1, **TINY)
    assert fc.model.rnn.input_size == len(fc.config.lags) + 2 * len(fc.config.calendar)
    f = fc.forecast(s.values, s.dates, 4, num_samples=20, seed=2)
    before = [10.522427892684936, 12.373897218704224, 12.714918994903565, 12.576924705505371]
    np.testing.assert_allclose(f.mean, before, rtol=1e-6)
    assert report.best_score == pytest.approx(0.03880162508800791, rel=1e-6)


def panel_with_covariates(n=60):
    rng = np.random.default_rng(0)
    series = [seasonal(n, seed=k, name=f"s{k}") for k in range(2)]
    covs = [Covariates(future={"promo": rng.integers(0, 2, n).astype(float)},
                       past={"price": rng.normal(5, 1, n)},
                       static={"size": float(k + 1), "region": "north" if k else "south"})
            for k in range(2)]
    return series, covs


def test_covariates_widen_the_input_and_survive_save_load(tmp_path):
    series, covs = panel_with_covariates()
    fc, _ = train_forecaster(series, 4, max_time=None, max_steps=4, seed=0, covariates=covs,
                             ensemble=1, **TINY)  # one model: its rnn
    cfg = fc.config
    assert (cfg.future_covariates, cfg.past_covariates, cfg.static_covariates) == (
        ("promo",), ("price",), ("size", "region"))
    assert cfg.static_levels == {"region": ["north", "south"]}
    # promo, price, observed, size, two one-hot columns, promo and price centred
    assert covariate_width(cfg) == 8
    assert fc.model.rnn.input_size == len(cfg.lags) + 2 * len(cfg.calendar) + 8 + 4
    mean, std = cfg.covariate_stats["price"]
    prices = np.concatenate([c.past["price"] for c in covs])
    assert (mean, std) == pytest.approx((prices.mean(), prices.std()))
    s, c = series[1], covs[1]
    extended = dataclasses.replace(c, future={"promo": np.r_[c.future["promo"], 1, 0, 1, 1]})
    a = fc.forecast(s.values, s.dates, 4, 30, series="s1", covariates=extended)
    fc.save(tmp_path / "f.pt")
    loaded = Forecaster.load(tmp_path / "f.pt")
    assert loaded.config == cfg
    b = loaded.forecast(s.values, s.dates, 4, 30, series="s1", covariates=extended)
    np.testing.assert_array_equal(a.samples, b.samples)
    other = dataclasses.replace(extended, static={"size": 2.0, "region": "south"})
    assert not np.array_equal(a.samples, fc.forecast(s.values, s.dates, 4, 30, series="s1",
                                                     covariates=other).samples)


def test_past_only_covariates_never_read_the_horizon():
    series, covs = panel_with_covariates()
    fc, _ = train_forecaster(series, 4, max_time=None, max_steps=4, seed=0, covariates=covs,
                             **TINY)
    s, c = series[0], covs[0]
    n = len(s.values)
    future = {"promo": np.r_[c.future["promo"], 0, 1, 0, 1]}

    def forecast(past):
        cov = Covariates(future, {"price": past}, c.static)
        return fc.forecast(s.values, s.dates, 4, 30, series="s0", covariates=cov).samples

    base = forecast(np.r_[c.past["price"], 5, 5, 5, 5])
    np.testing.assert_array_equal(base, forecast(np.r_[c.past["price"], -50, 80, 1e6, 0]))
    np.testing.assert_array_equal(base, forecast(c.past["price"]))  # not needed at all
    changed = c.past["price"].copy()
    changed[n - 1] += 3  # the context's last value is read (by the first horizon step)
    assert not np.array_equal(base, forecast(changed))
    # training windows see the same: past-only columns (as read and centred) and the
    # observed flag are 0 after the step that reads the context's last row
    cfg = fc.config
    rows = np.arange(2 * n, dtype=np.float32).reshape(n, 2)  # promo, price: 0, 1; 2, 3; ...
    inputs = step_inputs(cfg, s.dates, c)
    inputs[:, -6:-4] = rows  # after the calendar, before observed, size, one-hots
    sampler, _ = _windows(cfg, [x.values for x in series], [inputs] * 2, 0)
    w = sampler.sample(8)
    c_len, cal = cfg.context_length, 2 * len(cfg.calendar)
    assert w.calendar.shape[-1] == cal + covariate_width(cfg)
    price, flag, price_centred = cal + 1, cal + 2, cal + 7
    assert (w.calendar[:, : c_len + 1, flag] == 1).all()
    assert (w.calendar[:, c_len + 1:, [price, flag, price_centred]] == 0).all()
    assert (w.calendar[:, c_len + 1:, cal] != 0).all()  # promo is known ahead
    # centred: minus the mean over the context steps (row steps are 2 apart)
    promo_centred = w.calendar[:, :, cal + 6]
    assert torch.allclose(promo_centred[:, 0], torch.tensor(-(c_len - 1.0)))
    assert torch.allclose(w.calendar[:, c_len, price_centred], torch.tensor(c_len + 1.0))


def test_future_covariates_must_cover_the_horizon():
    series, covs = panel_with_covariates()
    fc, _ = train_forecaster(series, 4, max_time=None, max_steps=2, seed=0, covariates=covs,
                             **TINY)
    s, c = series[0], covs[0]
    short = dataclasses.replace(c, future={"promo": np.r_[c.future["promo"], 1, 0]})
    with pytest.raises(DataError, match=r"future covariate 'promo' of series 's0' has no "
                                        r"values for the horizon's 2005-03-01, 2005-04-01; "
                                        r"give them \(rnnkit forecast: --future"):
        fc.forecast(s.values, s.dates, 4, 10, series="s0", covariates=short)
    gap = dataclasses.replace(c, future={"promo": np.r_[c.future["promo"], 1, np.nan, 0, 1]})
    with pytest.raises(DataError, match=r"horizon's 2005-02-01;"):
        fc.forecast(s.values, s.dates, 4, 10, series="s0", covariates=gap)
    with pytest.raises(DataError, match=r"trained with the future covariates \['promo'\]"):
        fc.forecast(s.values, s.dates, 4, 10, series="s0")
    extra = dataclasses.replace(c, future={**c.future, "temp": np.zeros(70)})
    with pytest.raises(DataError, match=r"future covariates \['temp'\] were not trained on"):
        fc.forecast(s.values, s.dates, 4, 10, series="s0", covariates=extra)
    unseen = dataclasses.replace(c, future={"promo": np.zeros(64)}, static={"size": 1.0,
                                                                           "region": "east"})
    with pytest.raises(DataError, match=r"'region' of series 's0' is 'east', not one of"):
        fc.forecast(s.values, s.dates, 4, 10, series="s0", covariates=unseen)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.future.__setitem__("promo", np.r_[np.nan, c.future["promo"][1:]]),
     r"covariate 'promo' of series 's0' is missing or infinite at 2000-01-01; fill"),
    (lambda c: c.past.__setitem__("price", np.r_[c.past["price"][:-1], np.inf]),
     r"covariate 'price' of series 's0' is missing or infinite at 2004-12-01"),
    (lambda c: c.past.__setitem__("price", c.past["price"][:-1]),
     r"past covariate 'price' of series 's0' has \(59,\) values for 60 rows"),
    (lambda c: c.future.pop("promo"), r"series 's0' and 's0' differ|differ in their future"),
])
def test_bad_covariates_are_one_data_error(change, message):
    series, covs = panel_with_covariates()
    change(covs[0])
    with pytest.raises(DataError, match=message):
        train_forecaster(series, 4, max_time=None, max_steps=1, covariates=covs, **TINY)


def test_constant_covariates_are_refused():
    series, covs = panel_with_covariates()
    for c in covs:
        c.future["promo"] = np.ones(60)
    with pytest.raises(DataError, match=r"future covariate 'promo' is 1 on every training "
                                        r"row: it says nothing"):
        train_forecaster(series, 4, max_time=None, max_steps=1, covariates=covs, **TINY)
    series, covs = panel_with_covariates()
    for c in covs:
        c.static["region"] = "west"
    with pytest.raises(DataError, match=r"static covariate 'region' is 'west' for every "
                                        r"series: it cannot tell them apart"):
        train_forecaster(series, 4, max_time=None, max_steps=1, covariates=covs, **TINY)
    series, covs = panel_with_covariates()
    covs[0].past["promo"] = covs[0].past.pop("price")
    covs[1].past["promo"] = covs[1].past.pop("price")
    with pytest.raises(DataError, match=r"covariate 'promo' is both future and past"):
        train_forecaster(series, 4, max_time=None, max_steps=1, covariates=covs, **TINY)


def test_a_covariate_that_determines_the_target_is_learned():
    # y_t = 5 x_t with x known ahead and random: the target's past says nothing of it
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    n, h = 160, 8
    x = rng.normal(0, 1, n + h)
    s = monthly(5 * x[:n])
    truth = 5 * x[n:]
    budget = {"max_time": None, "max_steps": 150, "seed": 0, **TINY}
    plain, _ = train_forecaster([s], h, **budget)
    with_x, _ = train_forecaster([s], h, covariates=[Covariates(future={"x": x[:n]})], **budget)
    err_plain = np.abs(plain.forecast(s.values, s.dates, h, 50).quantile(0.5) - truth).mean()
    fc = with_x.forecast(s.values, s.dates, h, 50, covariates=Covariates(future={"x": x}))
    err_x = np.abs(fc.quantile(0.5) - truth).mean()
    assert err_x < 0.2 * err_plain, (err_x, err_plain)


def test_backtest_with_covariates_reads_each_origins_rows():
    series, covs = panel_with_covariates(72)
    seen = []
    result = backtest(series, 4, windows=2, max_time=None, max_steps=2, num_samples=10,
                      covariates=covs, on_forecast=lambda s, t, f: seen.append(len(t.values)),
                      ensemble=1, **TINY)
    assert seen == [64, 64, 68, 68]
    assert result["fits"][0]["steps"] == 2 and "deepar" in result["methods"]


def test_a_covariate_changing_only_in_the_validation_rows_is_refused():
    # seatbelts' law is 1 only in its last 23 rows: a backtest origin near the end held all
    # of them out for early stopping, and the model forecast from a weight it never trained
    s = seasonal(60)
    law = np.r_[np.zeros(57), np.ones(3)]
    with pytest.raises(DataError, match=r"future covariate 'law' is 0 on every row the "
                                        r"training windows read: it changes only in the last "
                                        r"\d+ rows of each series, held out for early stopping"):
        train_forecaster([s], 4, max_time=None, max_steps=1,
                         covariates=[Covariates(future={"law": law})], **TINY)
    law = np.r_[np.zeros(40), np.ones(20)]
    train_forecaster([s], 4, max_time=None, max_steps=1,
                     covariates=[Covariates(future={"law": law})], **TINY)
