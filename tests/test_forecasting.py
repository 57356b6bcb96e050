"""rnnkit.forecasting: dates, features, windows, the DeepAR model, metrics, baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rnnkit.data.errors import DataError
from rnnkit.forecasting import (
    DatedSeries,
    Forecaster,
    default_config,
    infer_frequency,
    load_series,
    naive,
    parse_dates,
    seasonal_naive,
    train_forecaster,
)
from rnnkit.forecasting.backtest import backtest
from rnnkit.forecasting.features import calendar_features, lagged, window_scale
from rnnkit.forecasting.frequency import FREQUENCIES, check_dates, future_dates
from rnnkit.forecasting.metrics import (
    coverage_by_step,
    crps_by_step,
    evaluate,
    seasonal_naive_scale,
)
from rnnkit.forecasting.model import DeepAR, DeepAREnsemble
from rnnkit.forecasting.windows import WindowSampler
from rnnkit.stats import t_quantile


def dated(values, start="2020-01-01", step="D") -> DatedSeries:
    dates = np.datetime64(start, "m") + np.arange(len(values)) * np.timedelta64(1, step)
    return DatedSeries("s", dates.astype("datetime64[m]"), np.asarray(values, np.float64))


# -- dates -------------------------------------------------------------------------------


def test_parse_and_infer_frequencies():
    cases = {
        "half-hourly": ["2010-01-01 00:00", "2010-01-01 00:30", "2010-01-01 01:00"],
        "hourly": ["2010/01/01 00:00", "2010/01/01 01:00", "2010/01/01 02:00"],
        "daily": ["2012/01/01", "2012/01/02", "2012/01/03"],
        "weekly": ["19580329", "19580405", "19580412"],
        "monthly": ["Jan 1 2000", "Feb 1 2000", "Mar 1 2000"],
        "quarterly": ["1956-01-01", "1956-04-01", "1956-07-01"],
        "yearly": ["1821", "1822", "1823"],
    }
    for name, texts in cases.items():
        assert infer_frequency(parse_dates(texts)).name == name
    assert FREQUENCIES["hourly"].lags == (24, 168) and FREQUENCIES["daily"].lags == (7, 365)
    assert FREQUENCIES["monthly"].season == 12 and FREQUENCIES["yearly"].season == 1


def test_future_dates_continue_the_calendar():
    monthly = future_dates(np.datetime64("2020-11-30", "m"), FREQUENCIES["monthly"], 3)
    assert [str(d)[:10] for d in monthly] == ["2020-12-30", "2021-01-30", "2021-02-28"]
    hourly = future_dates(np.datetime64("2010-12-31T23:00", "m"), FREQUENCIES["hourly"], 2)
    assert [str(d) for d in hourly] == ["2011-01-01T00:00", "2011-01-01T01:00"]
    quarterly = future_dates(np.datetime64("2008-07-01", "m"), FREQUENCIES["quarterly"], 2)
    assert [str(d)[:10] for d in quarterly] == ["2008-10-01", "2009-01-01"]


def test_bad_dates_name_the_rows():
    with pytest.raises(DataError, match=r"duplicate date: row 2 .* row 1"):
        check_dates(parse_dates(["2020-01-01", "2020-01-02", "2020-01-02"]))
    with pytest.raises(DataError, match=r"unsorted dates: row 1 \(2019-12-31.*row 0"):
        check_dates(parse_dates(["2020-01-01", "2019-12-31", "2020-01-02"]))
    with pytest.raises(DataError, match=r"row 1: cannot read the date 'soon'"):
        parse_dates(["2020-01-01", "soon"])
    with pytest.raises(DataError, match="cannot infer the frequency"):
        infer_frequency(parse_dates(["2020-01-01", "2020-01-04", "2020-01-07"]))


def test_load_series_long_format_and_gaps(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("symbol,date,price\nA,2020-01-01,1\nB,2020-01-01,5\nA,2020-02-01,2\n"
                    "B,2020-02-01,\nA,2020-03-01,3\nB,2020-03-01,7\n")
    with pytest.raises(DataError, match=r"'price' has 1 empty .* line\(s\) 5"):
        load_series(path, by="symbol")
    a, b = load_series(path, by="symbol", fill_gaps=True)
    assert (a.name, b.name) == ("A", "B")
    np.testing.assert_allclose(b.values, [5, 6, 7])
    assert infer_frequency(a.dates).name == "monthly"


# -- features ------------------------------------------------------------------------------


def test_lags_equal_a_hand_computation():
    z = torch.tensor([[10.0, 11, 12, 13, 14, 15]])
    out = lagged(z, [1, 3], start=3)  # steps t = 3, 4, 5
    assert out.tolist() == [[[12, 10], [13, 11], [14, 12]]]
    with pytest.raises(ValueError, match=r"lags must be in \[1, 2\]"):
        lagged(z, [1, 3], start=2)


def test_calendar_features_equal_a_hand_computation():
    # 2024-03-04 was a Monday; 18:30 is 18.5 hours into the day; 4 March is day 63 (0-based)
    dates = parse_dates(["2024-03-04 18:30", "2024-03-05 19:30"])
    got = calendar_features(dates, ["hour", "weekday", "yearday", "month"])
    v = np.array([[18.5, 0, 31 + 29 + 3, 2], [19.5, 1, 31 + 29 + 4, 2]])
    periods = np.array([24, 7, 365.25, 12])
    angle = 2 * np.pi * v / periods
    want = np.stack([np.sin(angle), np.cos(angle)], axis=2).reshape(2, 8)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert calendar_features(dates, []).shape == (2, 0)


def test_window_scale_by_method():
    ctx = torch.tensor([[1.0, -3.0, 2.0]])
    loc, scale = window_scale(ctx, "mean_abs")
    assert loc.item() == 0 and scale.item() == pytest.approx(2.0, abs=1e-5)
    loc, scale = window_scale(ctx, "standard")
    assert loc.item() == pytest.approx(0.0) and scale.item() == pytest.approx(
        float(np.std([1, -3, 2])), abs=1e-5)
    assert window_scale(ctx, "none")[1].item() == 1
    with pytest.raises(ValueError, match="scaling must be one of"):
        window_scale(ctx, "log")


# -- windows and defaults ------------------------------------------------------------------


def test_windows_never_read_past_the_training_rows():
    n, end = 200, 150
    cfg = default_config([end], FREQUENCIES["daily"], 7)
    values = np.arange(n, dtype=np.float64)  # each value is its row number
    cal = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)
    sampler = WindowSampler([values], [cal], [end], cfg, seed=1)
    seen = set()
    for _ in range(50):
        w = sampler.sample(64)
        assert w.values.max().item() < end and w.calendar.max().item() < end
        # calendar rows are the scored rows: the window's values after the lag prefix
        assert torch.equal(w.values[:, cfg.max_lag:], w.calendar[:, :, 0])
        seen.update(w.values[:, -1].tolist())
    assert max(seen) == end - 1  # the last training row is used


@pytest.mark.parametrize("freq,rows", [("hourly", 96), ("half-hourly", 192), ("daily", 28),
                                       ("weekly", 208), ("monthly", 48), ("quarterly", 16),
                                       ("yearly", 60)])
def test_defaults_accept_four_seasons(freq, rows):
    f = FREQUENCIES[freq]
    h = 2 * f.season if f.minutes and f.minutes <= 60 else (10 if freq == "yearly" else f.season)
    cfg = default_config([rows - h], f, h)  # the rows left once the test rows are held out
    assert cfg.context_length >= 1 and 1 in cfg.lags
    assert cfg.window_length + cfg.validation <= rows - h


def test_a_100_row_series_trains_and_forecasts():
    rng = np.random.default_rng(0)
    s = dated(10 + np.sin(np.arange(100) * 2 * np.pi / 12) + 0.1 * rng.standard_normal(100),
              step="D")
    fc, report = train_forecaster([s], 7, max_time=None, max_steps=5)
    assert report.steps == 5
    out = fc.forecast(s.values, s.dates, 7, num_samples=10)
    assert out.samples.shape == (10, 7) and np.isfinite(out.samples).all()


# -- the model -----------------------------------------------------------------------------


def test_without_validation_rows_a_time_budget_stops_at_default_steps():
    """Too short for validation rows: nothing to stop early on, so training takes
    config.default_steps even when the time budget would allow thousands."""
    s = dated(10 + np.sin(np.arange(28) * 2 * np.pi / 7))  # 4 seasons
    fc, report = train_forecaster([s], 7, max_time=60, default_steps=12, hidden_size=4,
                                  num_layers=1)
    assert fc.config.validation == 0
    assert report.steps == 12 and report.stop_reason == "max_steps"


@pytest.fixture(scope="module")
def sine():
    """A noisy sine of period 16 on daily dates (SeasonalNaive's m = 7 misses it), and a
    model trained on it for a few seconds."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    t = np.arange(320)
    s = dated(20 + 5 * np.sin(2 * np.pi * t / 16) + 0.2 * rng.standard_normal(len(t)))
    train = s.head(313)
    fc, _ = train_forecaster([train], 7, max_time=None, max_steps=250, hidden_size=24,
                             num_layers=1, likelihood="gaussian", eval_every=50)
    return s, train, fc


def test_trained_model_beats_seasonal_naive(sine):
    s, train, fc = sine
    out = fc.forecast(train.values, train.dates, 7, num_samples=100)
    y = s.values[-7:]
    ours = evaluate(y, np.median(out.samples, 0), train.values, 7, out.samples)
    snaive = seasonal_naive(train.values, 7, 7)
    theirs = evaluate(y, snaive.mean, train.values, 7, snaive.samples)
    assert ours["mase"] < 0.5 * theirs["mase"] and ours["crps"] < 0.5 * theirs["crps"]


def test_quantiles_are_ordered_and_dates_continue(sine):
    s, train, fc = sine
    out = fc.forecast(train.values, train.dates, 10, num_samples=50, levels=(0.1, 0.5, 0.9))
    assert out.quantiles.shape == (3, 10) and out.samples.shape == (50, 10)
    assert (np.diff(out.quantiles, axis=0) >= 0).all()
    lo, hi = out.interval(0.8)
    assert (lo <= hi).all()
    np.testing.assert_array_equal(out.dates[:7], s.dates[313:])


def test_forecast_uses_only_its_context(sine):
    s, train, fc = sine
    cfg = fc.config
    keep = cfg.max_lag + cfg.context_length
    combine, cfg.combine = cfg.combine, ""  # the network alone
    a = fc.forecast(train.values, train.dates, 7, num_samples=20, seed=3)
    # rows before the last max_lag + C of the context do not matter to the network
    older = train.values.copy()
    older[:-keep] = -1e3
    b = fc.forecast(older, train.dates, 7, num_samples=20, seed=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    # the context's own rows do
    changed = train.values.copy()
    changed[-1] += 5
    c = fc.forecast(changed, train.dates, 7, num_samples=20, seed=3)
    assert not np.allclose(a.samples, c.samples)
    cfg.combine = combine  # the statistical forecasts mixed in read the whole context
    assert cfg.combine and cfg.combine_weights[0] < 1
    assert not np.allclose(fc.forecast(train.values, train.dates, 7, 20, seed=3).samples,
                           fc.forecast(older, train.dates, 7, 20, seed=3).samples)
    # and a shorter context is fine as long as it exceeds the largest lag
    short = fc.forecast(train.values[-(cfg.max_lag + 1):], train.dates[-(cfg.max_lag + 1):], 3)
    assert short.samples.shape[1] == 3


def test_t_quantile_matches_the_exact_quantiles():
    # Student-t 0.9-quantiles (scipy.stats.t.ppf), and the Normal's as df grows
    exact = {2.01: 1.8814925, 2.5: 1.7302509, 3.0: 1.6377444, 4.0: 1.5332063,
             10.0: 1.3721836, 30.0: 1.3104150, 1e6: 1.2815516}
    got = t_quantile(0.9, torch.tensor(list(exact), dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), list(exact.values()), rtol=2e-3)
    np.testing.assert_allclose(t_quantile(0.5, torch.tensor([2.5, 9.0])).numpy(), 0, atol=1e-7)


def test_context_spread_is_the_factor_the_context_asks_for():
    """The 0.8-quantile over the context's steps of |z - mu| / (sigma q_0.9), for both heads,
    on hand-made predictions."""
    cfg = default_config([200], FREQUENCIES["daily"], 7, hidden_size=4, num_layers=1,
                         likelihood="gaussian")
    model = DeepAR(cfg)
    T = 10
    z = torch.zeros(2, cfg.max_lag + T)
    z[:, cfg.max_lag:] = torch.tensor([[float(k) for k in range(T)], [0.5] * T])
    params = torch.zeros(2, T, 2)  # mu 0, log_var log 4: sigma 2
    params[..., 1] = float(np.log(4.0))
    want = np.quantile(np.abs(z[:, cfg.max_lag:].numpy()) / (2 * 1.2815516), 0.8, axis=1)
    np.testing.assert_allclose(model.context_spread(z, params).numpy(), want, rtol=1e-5)
    model_t = DeepAR(dataclasses.replace(cfg, likelihood="student_t"))
    params_t = torch.zeros(2, T, 3)  # mu 0, sigma softplus(0) + 1e-4, df 2 + softplus(3)
    params_t[..., 2] = 3.0
    sigma = float(np.log(2.0)) + 1e-4
    q = float(t_quantile(0.9, torch.tensor(2 + float(np.log1p(np.exp(3.0))))))
    want = np.quantile(np.abs(z[:, cfg.max_lag:].numpy()) / (sigma * q), 0.8, axis=1)
    np.testing.assert_allclose(model_t.context_spread(z, params_t).numpy(), want, rtol=1e-4)


def test_context_spread_floors_the_temperature(sine):
    """With context_spread, each row samples at max(temperature, its factor): one step ahead
    the draws' deviations from the location grow by exactly factor / temperature when the
    factor is larger, and nothing changes when the temperature is."""
    s, train, fc = sine
    model, cfg = fc.model, fc.config
    keep = cfg.max_lag + cfg.context_length
    v = train.values[-keep:].copy()
    v[-cfg.context_length // 2:] += 3 * np.random.default_rng(1).standard_normal(
        cfg.context_length // 2)  # a context noisier than the training data
    values = torch.tensor(v, dtype=torch.float32).unsqueeze(0)
    cal = torch.from_numpy(calendar_features(np.concatenate(
        [train.dates[-keep:][cfg.max_lag:], future_dates(train.dates[-1], fc.freq, 1)]),
        cfg.calendar)).unsqueeze(0)
    loc, scale = model.scale(values, cfg.context_length)
    z = (values - loc) / scale
    with torch.no_grad():
        factor = float(model.context_spread(z, model.params(model.inputs(z, cal[:, :-1],
                                                                         None))[0]))
    saved = float(model.temperature)
    try:
        model.temperature.fill_(1.0)
        assert factor > 2.0  # the noisy context asks for a wider spread

        def paths(on):
            torch.manual_seed(0)
            return model.sample_paths(values, cal, None, 1, 64, context_spread=on)[0, :, 0]

        off, on = paths(False), paths(True)
        # on = m + k (off - m) for the step's location m and k = factor: on - k off is m (1 - k)
        torch.testing.assert_close(on - factor * off, (on - factor * off).mean().expand(64),
                                   rtol=0, atol=1e-3 * float(on.abs().max()))
        assert on.std() > 2 * off.std()
        model.temperature.fill_(10 * factor)
        torch.testing.assert_close(paths(True), paths(False))
        # the floor stops at the widest temperature calibration may choose
        model.config = dataclasses.replace(cfg, temperatures=(1.0, factor / 2))
        model.temperature.fill_(1.0)
        off, on = paths(False), paths(True)
        torch.testing.assert_close(on - factor / 2 * off,
                                   (on - factor / 2 * off).mean().expand(64),
                                   rtol=0, atol=1e-3 * float(on.abs().max()))
    finally:
        model.temperature.fill_(saved)
        model.config = cfg
    # the forecaster uses the config's setting
    fc_off = Forecaster(model, fc.series_names)
    fc_off.config = dataclasses.replace(cfg, context_spread=False)
    a = fc.forecast(v, train.dates[-keep:], 3, num_samples=50, seed=2)
    b = fc_off.forecast(v, train.dates[-keep:], 3, num_samples=50, seed=2)
    assert a.samples.std(0).mean() > b.samples.std(0).mean()


def test_forecast_refuses_bad_input(sine):
    s, train, fc = sine
    lag = fc.config.max_lag
    with pytest.raises(DataError, match=f"needs more than its largest lag, {lag}"):
        fc.forecast(train.values[-lag:], train.dates[-lag:], 7)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        fc.forecast(train.values, train.dates, 0)
    with pytest.raises(DataError, match="unsorted dates"):
        fc.forecast(train.values, train.dates[::-1], 7)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        default_config([100], FREQUENCIES["daily"], 0)
    with pytest.raises(DataError, match="duplicate date"):
        DatedSeries("x", parse_dates(["2020-01-01", "2020-01-01"]), np.zeros(2))


def test_save_and_load_give_the_same_forecast(sine, tmp_path):
    s, train, fc = sine
    fc.save(tmp_path / "m.pt")
    again = Forecaster.load(tmp_path / "m.pt")
    a = fc.forecast(train.values, train.dates, 5, num_samples=8)
    b = again.forecast(train.values, train.dates, 5, num_samples=8)
    np.testing.assert_array_equal(a.samples, b.samples)


def test_student_t_and_embeddings_train():
    rng = np.random.default_rng(1)
    a = dated(5 + rng.standard_normal(80), step="D")
    b = DatedSeries("t", a.dates, 100 + 3 * rng.standard_normal(80))
    fc, report = train_forecaster([a, b], 7, max_time=None, max_steps=3)
    assert fc.config.likelihood == "student_t" and fc.model.embedding is not None
    out = fc.forecast(b.values, b.dates, 7, num_samples=30, series="t")
    assert np.isfinite(out.samples).all()
    with pytest.raises(DataError, match="unknown series 'u'"):
        fc.forecast(b.values, b.dates, 7, series="u")


# -- metrics and baselines -----------------------------------------------------------------


def test_metrics_equal_their_formulas():
    insample = np.array([1.0, 3, 2, 5, 4, 6])
    y, f = np.array([5.0, 7.0]), np.array([4.0, 9.0])
    scale = np.mean(np.abs(insample[2:] - insample[:-2]))  # m = 2: |2-1|,|5-3|,|4-2|,|6-5|
    assert seasonal_naive_scale(insample, 2) == pytest.approx(1.5) == pytest.approx(scale)
    samples = np.array([[4.0, 6], [6.0, 10], [5.0, 8], [3.0, 11]])
    out = evaluate(y, f, insample, 2, samples)
    assert out["mae"] == pytest.approx(1.5)
    assert out["rmse"] == pytest.approx(np.sqrt((1 + 4) / 2))
    assert out["mase"] == pytest.approx(1.5 / 1.5)
    assert out["smape"] == pytest.approx(np.mean([200 * 1 / 9, 200 * 2 / 16]))
    brute = [np.mean(np.abs(samples[:, h] - y[h]))
             - 0.5 * np.mean(np.abs(samples[:, h, None] - samples[None, :, h]))
             for h in range(2)]
    np.testing.assert_allclose(crps_by_step(samples, y), brute)
    assert out["crps"] == pytest.approx(np.mean(brute))
    assert out["scaled_crps"] == pytest.approx(np.mean(brute) / 1.5)
    lo, hi = np.quantile(samples, [0.1, 0.9], axis=0)
    assert out["by_step"]["coverage"] == coverage_by_step(lo, hi, y).tolist()
    # a point mass: CRPS is the absolute error
    assert crps_by_step(np.full((5, 1), 2.0), np.array([3.5]))[0] == pytest.approx(1.5)


def test_baselines():
    v = np.array([1.0, 2, 3, 4, 5, 6, 7])
    nv = naive(v, 3)
    np.testing.assert_array_equal(nv.mean, [7, 7, 7])
    sn = seasonal_naive(v, 5, 3)
    np.testing.assert_array_equal(sn.mean, [5, 6, 7, 5, 6])
    # sigma = RMS of y_t - y_{t-3} = 3, widened by sqrt(k + 1), k = floor((h - 1) / 3)
    sd = sn.samples.std(0)
    np.testing.assert_allclose(sd, 3 * np.sqrt([1, 1, 1, 2, 2]), rtol=0.1)
    with pytest.raises(DataError, match="needs more than 12 values"):
        seasonal_naive(v, 3, 12)


def test_backtest_reports_every_method():
    rng = np.random.default_rng(2)
    s = dated(10 + np.sin(np.arange(120) * 2 * np.pi / 7) + 0.1 * rng.standard_normal(120))
    out = backtest(s, 7, windows=2, max_time=None, max_steps=3, num_samples=20)
    assert set(out["methods"]) == {"deepar", "naive", "seasonal_naive"}
    assert len(out["windows"]) == 2 and out["windows"][0]["origin"] < out["windows"][1]["origin"]
    assert len(out["methods"]["deepar"]["by_step"]["mase"]) == 7


def test_open_loop_feeds_predictions_not_the_true_horizon():
    """objective="open_loop": the context and the first horizon step equal teacher forcing
    (every lag of step C is a known value); later steps read the model's own locations, so
    no true horizon value reaches an input, while the loss still scores them."""
    freq = FREQUENCIES["daily"]
    cfg = default_config([200], freq, 5, lags=(1, 2), calendar=("weekday",),
                         context_length=8, hidden_size=6, num_layers=1, skip="naive")
    sampler = WindowSampler([np.sin(np.arange(200.0))], [np.random.rand(200, 2)], [200], cfg)
    w = sampler.sample(4)
    torch.manual_seed(0)
    tf = DeepAR(cfg)
    ol = DeepAR(dataclasses.replace(cfg, objective="open_loop"))
    ol.load_state_dict(tf.state_dict())
    loc, scale = tf.scale(w.values, cfg.context_length)
    z = (w.values - loc) / scale
    forced, _ = tf.params(tf.inputs(z, w.calendar, w.series))
    opened = ol.open_loop_params(z, w)
    c = cfg.context_length
    assert opened.shape == forced.shape
    torch.testing.assert_close(opened[:, : c + 1], forced[:, : c + 1])
    assert not torch.allclose(opened[:, c + 1:], forced[:, c + 1:])
    changed = z.clone()
    changed[:, cfg.max_lag + c:] += 5.0  # the true horizon only
    torch.testing.assert_close(ol.open_loop_params(changed, w), opened)
    # the locations fed back carry gradient (BPTT through the fed predictions)
    ol.nll(w).backward()
    assert all(p.grad is not None for p in ol.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="objective must be one of"):
        DeepAR(dataclasses.replace(cfg, objective="teacher"))


def test_ensemble_pools_its_members_paths(tmp_path):
    """ensemble=K trains K members from seeds seed..seed+K-1; a forecast's S paths are the
    members' own paths (member k draws its share of S, in order), at the ensemble's one
    temperature, and a saved ensemble forecasts the same after loading."""
    rng = np.random.default_rng(4)
    s = dated(10 + np.sin(np.arange(150) * 2 * np.pi / 7) + 0.2 * rng.standard_normal(150))
    fc, report = train_forecaster([s], 7, max_time=None, max_steps=4, ensemble=3,
                                  hidden_size=8, num_layers=1)
    ens = fc.model
    assert isinstance(ens, DeepAREnsemble) and len(ens.members) == 3
    assert report.steps == 12 and {h["member"] for h in report.history} <= {0, 1, 2}
    # members start from different seeds, so they differ
    w0, w1 = (m.rnn.weight_hh_l0 for m in ens.members[:2])
    assert not torch.equal(w0, w1)
    # a member trained alone from seed 1 is member 1
    alone, _ = train_forecaster([s], 7, max_time=None, max_steps=4, seed=1,
                                hidden_size=8, num_layers=1, calibrate="")
    torch.testing.assert_close(alone.model.rnn.weight_hh_l0, w1)
    ens.temperature.fill_(2.0)
    cfg = fc.config
    keep = cfg.max_lag + cfg.context_length
    values = torch.tensor(s.values[-keep:], dtype=torch.float32).unsqueeze(0)
    cal = torch.from_numpy(calendar_features(
        np.concatenate([s.dates[-keep:][cfg.max_lag:],
                        future_dates(s.dates[-1], FREQUENCIES["daily"], 7)]),
        cfg.calendar)).unsqueeze(0)
    torch.manual_seed(5)
    pooled = ens.sample_paths(values, cal, None, 7, 8)  # shares 3, 3, 2
    torch.manual_seed(5)
    own = []
    for member, share in zip(ens.members, (3, 3, 2)):
        assert float(member.temperature) == 2.0
        own.append(member.sample_paths(values, cal, None, 7, share))
    torch.testing.assert_close(pooled, torch.cat(own, 1))
    fc.save(tmp_path / "e.pt")
    again = Forecaster.load(tmp_path / "e.pt")
    assert isinstance(again.model, DeepAREnsemble) and float(again.model.temperature) == 2.0
    a = fc.forecast(s.values, s.dates, 7, num_samples=9)
    b = again.forecast(s.values, s.dates, 7, num_samples=9)
    np.testing.assert_array_equal(a.samples, b.samples)
    with pytest.raises(ValueError, match="ensemble must be >= 1, got 0"):
        train_forecaster([s], 7, max_time=None, max_steps=1, ensemble=0)
