"""The Theta forecast (forecasting.theta) and combining forecasts (forecasting.combination)."""

from pathlib import Path

import numpy as np
import pytest

from rnnkit.forecasting.baselines import seasonal_naive
from rnnkit.forecasting.combination import (
    STATISTICAL_SPLITS,
    combine,
    combined_paths,
    mix_forecasts,
    mixture,
    pool,
    statistical_forecasts,
    statistical_split,
)
from rnnkit.forecasting.metrics import crps_by_step
from rnnkit.forecasting.model import Forecast
from rnnkit.forecasting.theta import (
    ALPHAS,
    interval_spread,
    is_seasonal,
    rolling_origins,
    seasonal_indices,
    ses,
    theta,
    theta_point_spread,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def ses_reference(y, alpha):
    """SES written out step by step: level, sum of squared one-step errors."""
    level, sse = y[0], 0.0
    for v in y[1:]:
        sse += (v - level) ** 2
        level = alpha * v + (1 - alpha) * level
    return level, sse


def test_ses_fits_the_alpha_with_the_least_squared_error():
    y = np.cumsum(np.random.default_rng(0).normal(size=60)) + 10
    alpha, level, sigma = ses(y)
    sses = [ses_reference(y, a)[1] for a in ALPHAS]
    assert alpha == pytest.approx(ALPHAS[int(np.argmin(sses))])
    ref_level, ref_sse = ses_reference(y, alpha)
    assert level == pytest.approx(ref_level)
    assert sigma == pytest.approx(np.sqrt(ref_sse / 59))


def test_nonseasonal_forecast_is_ses_with_half_the_trend_slope():
    # Hyndman & Billah (2003): f_h = l_T + b/2 ((h - 1) + (1 - (1 - alpha)^T) / alpha)
    rng = np.random.default_rng(1)
    y = 5 + 0.3 * np.arange(40) + rng.normal(size=40)
    f = theta(y, 6, 1)
    alpha, level, sigma = ses(y)
    b = np.polyfit(np.arange(40), y, 1)[0]
    h = np.arange(1, 7)
    np.testing.assert_allclose(f.mean, level + b / 2 * ((h - 1) + (1 - (1 - alpha) ** 40) / alpha))
    # SES's interval: sigma^2 (1 + alpha^2 (h - 1)), sampled
    spread = f.samples.std(0) / (sigma * np.sqrt(1 + alpha ** 2 * (h - 1)))
    np.testing.assert_allclose(spread, 1, atol=0.08)


def test_seasonality_test_and_indices():
    rng = np.random.default_rng(2)
    t = np.arange(96)
    pattern = 1 + 0.3 * np.sin(2 * np.pi * np.arange(12) / 12)
    y = (100 + t) * pattern[t % 12]
    assert is_seasonal(y, 12)
    assert not is_seasonal(rng.normal(size=96), 12)
    assert not is_seasonal(y[:30], 12)  # fewer than 3 seasons
    np.testing.assert_allclose(seasonal_indices(y, 12, True), pattern / pattern.mean(), atol=0.01)
    add = 5 * np.sin(2 * np.pi * t / 4)
    np.testing.assert_allclose(seasonal_indices(add, 4, False), add[:4], atol=1e-9)


def test_seasonal_forecast_repeats_the_season():
    t = np.arange(60)
    y = -10 + 3 * np.tile([1.0, -1.0, 2.0, -2.0], 15) + 0.01 * t
    f = theta(y, 8, 4)  # values <= 0: the additive decomposition
    assert np.isfinite(f.samples).all()
    # the drift is half the trend's slope: 0.005 a step
    np.testing.assert_allclose(f.mean[4:] - f.mean[:4], 0.01 / 2 * 4, atol=0.002)
    np.testing.assert_allclose(f.mean[:4] - f.mean[:4].mean(), [3, -3, 6, -6], atol=0.1)


def test_short_series_and_bad_horizon():
    np.testing.assert_allclose(theta(np.array([1.0, 2.0]), 3).mean, 2.0)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        theta(np.arange(10.0), 0)


@pytest.mark.skipif(not (SHARED / "fpp" / "oil.csv").exists(), reason="needs ../shared/data")
def test_matches_statsforecast_theta_on_real_series():
    # statsforecast 2.1.1's Theta(season_length=m).forecast(y, h)["mean"]
    import csv

    def column(path, name):
        with open(path) as f:
            return np.array([float(r[name]) for r in csv.DictReader(f)])

    oil = column(SHARED / "fpp" / "oil.csv", "oil")
    np.testing.assert_allclose(theta(oil, 6, 1).mean,
                               [545.68, 548.92, 552.16, 555.39, 558.63, 561.86], rtol=1e-4)
    air = column(SHARED / "airpassengers.csv", "passengers")
    np.testing.assert_allclose(theta(air, 6, 12).mean,
                               [440.97, 429.25, 490.69, 476.66, 480.63, 546.46], rtol=3e-3)


def forecast(samples):
    samples = np.asarray(samples, float)
    return Forecast(np.arange(samples.shape[1]), samples, samples.mean(0),
                    np.quantile(samples, (0.1, 0.5, 0.9), axis=0), (0.1, 0.5, 0.9))


def test_quantile_averaging_averages_quantiles():
    rng = np.random.default_rng(3)
    a = forecast(rng.normal(0, 1, (401, 3)))
    b = forecast(rng.normal(10, 3, (401, 3)))
    c = combine(a, b, 0.7, "quantiles")
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(c.quantile(q), 0.7 * a.quantile(q) + 0.3 * b.quantile(q))
    np.testing.assert_allclose(combine(a, b, 1.0, "quantiles").quantile(0.5), a.quantile(0.5))
    np.testing.assert_allclose(combine(a, b, 0.0, "quantiles").quantile(0.5), b.quantile(0.5))


def test_mixture_pools_paths():
    a = forecast(np.zeros((200, 2)))
    b = forecast(np.ones((50, 2)))  # another number of samples: resampled to a's
    c = combine(a, b, 0.25, "mixture")
    assert c.samples.shape == (200, 2)
    assert (c.samples == 0).sum(0).tolist() == [50, 50]


def test_combine_errors():
    a, b = forecast(np.zeros((10, 2))), forecast(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="horizons differ: 2 and 3"):
        combine(a, b, 0.5)
    with pytest.raises(ValueError, match="weight must be in"):
        combine(a, a, 1.5)
    with pytest.raises(ValueError, match="how must be one of"):
        combine(a, a, 0.5, "mean")


# --- the forecaster's mixture (ForecastConfig.combine, fit.choose_weights) ---

def monthly(values, name="s"):
    from rnnkit.forecasting import DatedSeries

    dates = (np.datetime64("2000-01", "M") + np.arange(len(values))).astype("datetime64[m]")
    return DatedSeries(name, dates, np.asarray(values, np.float64))


TINY = {"hidden_size": 8, "num_layers": 1}


@pytest.fixture(scope="module")
def trained():
    from rnnkit.forecasting import train_forecaster

    rng = np.random.default_rng(0)
    t = np.arange(120)
    s = monthly(50 + 0.2 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 120))
    fc, report = train_forecaster([s], 6, max_time=None, max_steps=20, seed=0, **TINY)
    return s, fc, report


def test_mixture_takes_each_share_of_paths_and_quantile_rows():
    rng = np.random.default_rng(6)
    a, b, c = rng.normal(0, 1, (300, 2)), rng.normal(5, 1, (90, 2)), np.full((40, 2), 9.0)
    m = mixture([a, b, c], [0.5, 0.3, 0.2])
    assert m.shape == (300, 2)
    np.testing.assert_array_equal(m[:150], a[:150])  # the first's own paths
    np.testing.assert_allclose(m[150:240], np.sort(b, axis=0))  # 90 rows of 90 samples
    assert (m[240:] == 9.0).all()
    # two forecasts: pool's mixture
    np.testing.assert_array_equal(mixture([a, b], [0.25, 0.75]), pool(a, b, 0.25))
    with pytest.raises(ValueError, match="sum to 1"):
        mixture([a, b], [0.5, 0.6])
    with pytest.raises(ValueError, match="2 forecasts and 3 weights"):
        mixture([a, b], [0.5, 0.25, 0.25])


def test_combined_paths_widens_theta_and_keeps_the_mixtures_median():
    rng = np.random.default_rng(5)
    t = np.arange(60)
    y = 30 + 0.3 * t + 4 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 60)
    net = rng.normal(50, 2, (400, 6))
    w = (0.4, 0.4, 0.2)
    stat = theta(y, 6, 12, num_samples=400, seed=1)
    sn = seasonal_naive(y, 6, 12, num_samples=400, seed=2)
    plain = mixture([net, stat.samples, sn.samples], w)
    np.testing.assert_allclose(combined_paths(net, y, 6, 12, w, 1.0, seed=1), plain)
    wide = combined_paths(net, y, 6, 12, w, 3.0, seed=1)
    np.testing.assert_allclose(np.median(wide, 0), np.median(plain, 0))
    width = lambda x: np.subtract(*np.quantile(x, [0.9, 0.1], axis=0))  # noqa: E731
    assert (width(wide) > 1.2 * width(plain)).all()
    # shifted, not reshaped: the mixture with Theta's paths widened, less a constant per step
    moved = mixture([net, stat.mean + 3.0 * (stat.samples - stat.mean), sn.samples], w)
    np.testing.assert_allclose(np.diff(wide, axis=0), np.diff(moved, axis=0), atol=1e-9)
    assert combined_paths(net, y, 6, 12, (1.0, 0.0, 0.0), 3.0) is net  # the network alone
    short = combined_paths(net, y[:10], 6, 12, (0.0, 0.0, 1.0))  # 10 rows, m = 12: naive
    np.testing.assert_allclose(np.median(short, 0), y[9], atol=2.0)
    with pytest.raises(ValueError, match="theta_spread must be > 0"):
        combined_paths(net, y, 6, 12, w, -1.0)


def test_the_forecast_mixes_at_the_chosen_shares(trained):
    s, fc, _ = trained
    cfg = fc.config
    assert cfg.season == 12
    assert cfg.theta_spread == interval_spread([s.values], 6, 12) and cfg.theta_spread != 1.0
    chosen = cfg.combine_weights
    cfg.combine_weights = (1.0, 0.0, 0.0)
    net = fc.forecast(s.values, s.dates, 6, num_samples=40, seed=3)
    for w in ((0.5, 0.5, 0.0), (0.0, 1.0, 0.0), (1 / 3, 1 / 3, 1 / 3)):
        cfg.combine_weights = w  # the statistical forecasts of the whole context given
        got = fc.forecast(s.values, s.dates, 6, num_samples=40, seed=3)
        np.testing.assert_allclose(got.samples, combined_paths(
            net.samples, s.values, 6, 12, w, cfg.theta_spread, seed=3))
    cfg.combine = ""  # off: the network alone whatever the shares
    np.testing.assert_allclose(fc.forecast(s.values, s.dates, 6, num_samples=40, seed=3).samples,
                               net.samples)
    cfg.combine, cfg.combine_weights = "validation", chosen


def test_choose_weights_takes_the_candidate_with_the_best_validation_crps(trained, monkeypatch):
    from rnnkit.forecasting.combination import statistical_split
    from rnnkit.forecasting.fit import (
        COMBINE_WEIGHTS,
        NO_VALIDATION_NETWORK,
        NO_VALIDATION_WEIGHTS,
        _shares,
        _windows,
        choose_weights,
    )

    s, fc, report = trained
    assert tuple(report.combine["weights"]) in COMBINE_WEIGHTS
    assert tuple(report.combine["weights"]) == fc.config.combine_weights
    scores = report.combine["scores"]
    best = min(scores, key=scores.get)
    assert best == "/".join(f"{w:.2g}" for w in fc.config.combine_weights)
    model, cfg = fc.model, fc.config
    values = [s.values / cfg.unit]
    _, val = _windows(cfg, values, [np.zeros((120, 0))], 0)
    actual = val.values[:, -cfg.horizon:]

    def paths(truth):  # a network whose every path is the truth, or far off it
        def sample_paths(context, calendar, series, horizon, num_samples, context_spread=False):
            return (truth if truth is not None else actual * 0 - 1e3).unsqueeze(1).expand(
                -1, num_samples, -1).clone()
        return sample_paths

    monkeypatch.setattr(model, "sample_paths", paths(actual))
    assert choose_weights(model, values, val)["weights"] == list(COMBINE_WEIGHTS[0])
    assert COMBINE_WEIGHTS[0][0] == max(w[0] for w in COMBINE_WEIGHTS)
    monkeypatch.setattr(model, "sample_paths", paths(None))
    assert choose_weights(model, values, val)["weights"][0] == 0.0
    # no validation windows: the network's third, the rest split by statistical_split
    split, scores, origins = statistical_split(values, 6, 12, cfg.theta_spread)
    record = choose_weights(model, values, None)
    assert record["weights"] == [NO_VALIDATION_NETWORK, *(
        (1 - NO_VALIDATION_NETWORK) * w for w in split)]
    assert origins == 16 and record["scores"] == {f"statistical {k}": v
                                                  for k, v in scores.items()}
    assert f"split {_shares(split)} between Theta and SeasonalNaive" in record["why"]
    assert cfg.combine_weights == tuple(record["weights"])
    short = [values[0][:20]]  # no room for a rolling origin: even shares
    assert choose_weights(model, short, None) == {
        "weights": list(NO_VALIDATION_WEIGHTS), "why": "default: no validation windows",
        "statistical": "theta", "theta_spread": cfg.theta_spread}
    cfg.combine = ""
    assert choose_weights(model, values, val) == {}
    cfg.combine, cfg.combine_weights = "validation", tuple(report.combine["weights"])


def test_choose_weights_scores_theta_with_the_factor_of_the_rows_before_validation(
        trained, monkeypatch):
    import rnnkit.forecasting.fit as fit

    s, fc, _ = trained
    cfg = fc.config
    values = [s.values / cfg.unit]
    _, val = fit._windows(cfg, values, [np.zeros((120, 0))], 0)
    actual = val.values[:, -cfg.horizon:]
    monkeypatch.setattr(fc.model, "sample_paths", lambda *a, **k: actual.unsqueeze(1).expand(
        -1, a[4], -1).clone())
    seen = []
    real = fit.mix_forecasts
    monkeypatch.setattr(fit, "mix_forecasts", lambda *a: seen.append(a[4]) or real(*a))
    saved = cfg.theta_spread, cfg.combine_weights
    cfg.theta_spread = None
    record = fit.choose_weights(fc.model, values, val)
    assert record["theta_spread"] == cfg.theta_spread == interval_spread(values, 6, 12)
    before = interval_spread([values[0][: 120 - cfg.validation]], 6, 12)
    assert seen and set(seen) == {before} and before != cfg.theta_spread
    cfg.theta_spread = 2.0  # given: kept, and used for the validation windows too
    seen.clear()
    assert fit.choose_weights(fc.model, values, val)["theta_spread"] == 2.0
    assert set(seen) == {2.0}
    cfg.theta_spread, cfg.combine_weights = saved


def test_a_forecaster_saved_before_the_combination_loads_as_the_network_alone(trained, tmp_path):
    import torch

    from rnnkit.forecasting import Forecaster

    s, fc, _ = trained
    fc.save(tmp_path / "f.pt")
    saved = torch.load(tmp_path / "f.pt", weights_only=False)
    assert Forecaster.load(tmp_path / "f.pt").config == fc.config
    for key in ("combine", "combine_weights", "season", "theta_spread"):
        del saved["config"][key]
    torch.save(saved, tmp_path / "old.pt")
    old = Forecaster.load(tmp_path / "old.pt")
    assert old.config.combine == "" and old.config.season == 1
    assert old.config.theta_spread is None
    # saved with a share of Theta's alone: the same mixture, SeasonalNaive's share 0
    saved["config"].update(combine="validation", combine_weight=0.25, season=12)
    torch.save(saved, tmp_path / "theta.pt")
    assert Forecaster.load(tmp_path / "theta.pt").config.combine_weights == (0.25, 0.75, 0.0)


def test_config_refuses_bad_combination_settings():
    from rnnkit.forecasting.windows import ForecastConfig

    base = dict(freq="M", horizon=2, context_length=4, lags=(1,), calendar=(), validation=0)
    with pytest.raises(ValueError, match="combine must be one of"):
        ForecastConfig(**base, combine="mean")
    with pytest.raises(ValueError, match="combine_weights must be 3 shares"):
        ForecastConfig(**base, combine_weights=(0.5, 0.6, 0.0))
    with pytest.raises(ValueError, match="combine_weights must be 3 shares"):
        ForecastConfig(**base, combine_weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="season must be >= 1"):
        ForecastConfig(**base, season=0)
    with pytest.raises(ValueError, match="theta_spread must be > 0"):
        ForecastConfig(**base, theta_spread=0.0)


def test_describe_combination_names_the_shares():
    from rnnkit.forecasting.fit import describe_combination

    assert describe_combination({}) == "forecasts: the network's alone"
    got = describe_combination({"weights": [0.5, 0.0, 0.5], "why": "validation CRPS over 3 "
                                "windows", "theta_spread": 1.4})
    assert got == ("forecasts: a mixture of 0.5 network, 0.5 SeasonalNaive (chosen by "
                   "validation CRPS over 3 windows)")
    old = describe_combination({"weight": 0.5, "why": "x", "theta_spread": 1.4})
    assert old == "forecasts: a mixture of 0.5 network, 0.5 Theta (Theta's interval x1.40) " \
        "(chosen by x)"
    damped = describe_combination({"weights": [0.5, 0.5, 0.0], "why": "x",
                                   "statistical": "damped_trend", "theta_spread": 1.4})
    assert damped == ("forecasts: a mixture of 0.5 network, 0.5 DampedTrend (DampedTrend's "
                      "interval x1.40) (chosen by x)")


# --- Theta's interval measured at rolling origins (theta.interval_spread) ---

def test_spread_scales_the_interval_about_the_point():
    y = 20 + np.cumsum(np.random.default_rng(2).normal(size=50))
    point, sd = theta_point_spread(y, 5)
    a, b = theta(y, 5, seed=4), theta(y, 5, spread=2.5, seed=4)
    np.testing.assert_allclose(b.samples - point, 2.5 * (a.samples - point))
    np.testing.assert_allclose(a.mean, point)
    with pytest.raises(ValueError, match="spread must be > 0"):
        theta(y, 5, spread=0.0)


def test_interval_spread_makes_the_rolling_origin_intervals_cover_the_share_asked():
    rng = np.random.default_rng(3)
    series = [10 + np.cumsum(rng.normal(size=n)) for n in (40, 60)]
    h, origins = 4, 6
    factor = interval_spread(series, h, origins=origins, coverage=0.8)
    z = []  # the standardized errors, written out from the rule in the docstring
    for y in series:
        for o in range(len(y) - h - origins + 1, len(y) - h + 1):
            point, sd = theta_point_spread(y[:o], h)
            z.append(np.abs(y[o: o + h] - point) / sd)
    z = np.concatenate(z)
    assert len(z) == 2 * origins * h
    inside = np.mean(z <= factor * 1.2815516)
    assert inside == pytest.approx(0.8, abs=1.5 / len(z))
    # the errors of a random walk outgrow SES's interval: the factor widens it
    assert factor > 1


def test_interval_spread_is_one_for_white_noise_and_without_room():
    rng = np.random.default_rng(4)
    noise = [5 + rng.normal(size=300) for _ in range(8)]
    assert interval_spread(noise, 3) == pytest.approx(1.0, abs=0.15)
    assert interval_spread([np.arange(10.0)], 6) == 1.0  # no origin keeps 8 rows and H
    assert interval_spread([np.full(40, 3.0)], 4) == 1.0  # every error 0
    with pytest.raises(ValueError, match="coverage must be in"):
        interval_spread(noise, 3, coverage=1.0)




def test_rolling_origins_keep_the_horizon_inside_and_enough_rows_before():
    assert list(rolling_origins(40, 4, 1, origins=6)) == [31, 32, 33, 34, 35, 36]
    assert list(rolling_origins(30, 8, 4)) == list(range(8, 23))  # max(2m, 8, H) = 8 first
    assert list(rolling_origins(30, 8, 12)) == list(range(24, 23))  # 2m = 24 rows: none
    assert list(rolling_origins(40, 10, 1, origins=3)) == [28, 29, 30]


def test_statistical_split_takes_the_forecast_that_did_best_at_rolling_origins():
    rng = np.random.default_rng(5)
    # a trend: Theta's drift follows it, SeasonalNaive (here naive) lags behind
    trend = [50 + 2.0 * np.arange(40) + rng.normal(size=40) for _ in range(3)]
    split, scores, origins = statistical_split(trend, 6, 1)
    assert split == (1.0, 0.0) and origins == 3 * 16
    assert set(scores) == {"1/0", "0.5/0.5", "0/1"} and min(scores, key=scores.get) == "1/0"
    # each season's position a random walk of its own (y_t = y_{t-4} + noise): SeasonalNaive
    # follows it, Theta's fixed seasonal indices do not
    seasonal_walk = np.zeros(60)
    seasonal_walk[:4] = [100.0, 60.0, 130.0, 40.0]
    for t in range(4, 60):
        seasonal_walk[t] = seasonal_walk[t - 4] + rng.normal(scale=2.0)
    split, scores, _ = statistical_split([seasonal_walk], 8, 4)
    assert split == (0.0, 1.0), scores


def test_statistical_split_scores_are_the_pooled_scaled_crps():
    rng = np.random.default_rng(6)
    series = [20 + np.cumsum(rng.normal(size=n)) for n in (14, 15)]
    h, spread = 4, 1.3
    expected = np.zeros(3)
    for y in series:  # origins 8-10 (first series) and 8-11 (second): 8 rows before, H after
        for o in range(8, len(y) - h + 1):
            stat, base = statistical_forecasts(y[:o], h, 1, 50, 0)
            for j, (a, b) in enumerate(STATISTICAL_SPLITS):
                mixed = mix_forecasts(stat.samples, stat, base, (0.0, a, b), spread)
                expected[j] += crps_by_step(mixed, y[o: o + h]).mean() / np.abs(y[:o]).mean()
    split, scores, origins = statistical_split(series, h, 1, spread)
    assert origins == 7
    np.testing.assert_allclose(list(scores.values()), expected / 7)
    assert split == STATISTICAL_SPLITS[int(np.argmin(expected))]
    assert statistical_split([np.arange(10.0)], 4, 1) == ((0.5, 0.5), {}, 0)  # no room
