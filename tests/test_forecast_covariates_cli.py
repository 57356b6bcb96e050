"""Covariates at the entry points (issue 30): `rnnkit forecast` / `backtest` read covariate
columns of the CSV and a forecast's future-known values from `--future FILE.csv`;
`load_series` / `load_future` are the reader; bad input is one line."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.errors import DataError
from rnnkit.forecasting import load_future, load_series

FAST = ["--max-time", "1", "--samples", "20", "--threads", "1"]
COVS = ["--future-covariates", "promo", "--past-covariates", "price",
        "--static-covariates", "region"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def month(t: int, start_year: int = 2000) -> str:
    return f"{start_year + t // 12}-{t % 12 + 1:02d}-01"


def promo(t: int) -> int:
    return int(t % 3 == 0)


def panel(name="p.csv", rows=48, start_year=2000, edit=None):
    """Two monthly series A, B: y = level + season + 5 promo + noise; price past-only,
    region static. ``edit(row)`` may change a row (a list) before it is written."""
    noise = np.random.default_rng(start_year).normal(0, 1, 2 * rows)
    with open(name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["unique_id", "ds", "y", "promo", "price", "region"])
        for sid, base, region in (("A", 100.0, "north"), ("B", 50.0, "south")):
            for t in range(rows):
                y = (base + 10 * math.sin(2 * math.pi * t / 12) + 5 * promo(t)
                     + noise[t + rows * (sid == "B")])
                row = [sid, month(t, start_year), f"{y:.3f}",
                       promo(t), f"{3 + 0.1 * (t % 7):.2f}", region]
                writer.writerow(edit(row) if edit else row)
    return name


def future(name="f.csv", start=48, steps=12, start_year=2000, flip=False, skip=()):
    """The promo of both series at the ``steps`` months from ``start`` (less ``skip``)."""
    with open(name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["unique_id", "ds", "promo"])
        for sid in ("A", "B"):
            for t in range(start, start + steps):
                if t not in skip:
                    writer.writerow([sid, month(t, start_year), 1 - promo(t) if flip else promo(t)])
    return name


def read(path):
    return list(csv.reader(open(path)))


def one_line_error(capsys, argv):
    code = main([*argv, *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, (argv, err)
    return err[0]


def test_forecast_trains_with_covariates_and_reads_the_horizon_from_future(capsys):
    assert main(["forecast", panel(), *COVS, "--future", future(), "--name", "r", *FAST]) == 0
    run = Path("runs/r")
    rows = read(run / "forecast.csv")
    assert rows[0][:3] == ["unique_id", "ds", "y"] and len(rows) == 1 + 2 * 12
    assert rows[1][1] == "2004-01-01"
    meta = json.loads((run / "forecaster.json").read_text())
    assert (meta["future_covariates"], meta["past_covariates"], meta["static_covariates"]) == (
        ["promo"], ["price"], ["region"])

    # the run re-forecasts from new context and future rows; the future values are read
    panel("new.csv", rows=36, start_year=2010)
    future("f1.csv", start=36, steps=3, start_year=2010)
    future("f2.csv", start=36, steps=3, start_year=2010, flip=True)
    for out, fut in (("o1.csv", "f1.csv"), ("o2.csv", "f2.csv")):
        assert main(["forecast", str(run), "--context", "new.csv", "--future", fut,
                     "--horizon", "3", "--output", out, *FAST]) == 0
    o1, o2 = read("o1.csv"), read("o2.csv")
    assert [r[1] for r in o1[1:4]] == ["2013-01-01", "2013-02-01", "2013-03-01"]
    assert [r[1] for r in o1[1:]] == [r[1] for r in o2[1:]]
    assert [r[2] for r in o1[1:]] != [r[2] for r in o2[1:]]  # promo flipped: another forecast


def test_a_horizon_date_missing_from_future_is_one_line_and_writes_nothing(capsys):
    err = one_line_error(capsys, ["forecast", panel(), *COVS, "--future",
                                  future(skip=(50, 51))])
    assert "f.csv" in err and "series 'A'" in err and "2004-03-01, 2004-04-01" in err
    assert not Path("runs").exists()
    err = one_line_error(capsys, ["forecast", panel(), *COVS])
    assert "--future FILE.csv" in err and "['promo']" in err
    err = one_line_error(capsys, ["forecast", panel(), "--future", future()])
    assert "this forecaster has none" in err
    assert not Path("runs").exists()


def test_nan_in_a_covariate_is_one_line_naming_file_column_and_lines(capsys):
    def hole(row):
        return [*row[:4], "NaN" if row[0] == "B" and row[1] == month(5) else row[4], row[5]]

    err = one_line_error(capsys, ["forecast", panel(edit=hole), *COVS, "--future", future()])
    assert "p.csv" in err and "'price'" in err and "line(s) 55" in err and "--fill" in err
    # --fill interpolate fills a covariate's gap as it fills the target's
    s = load_series("p.csv", past=["price"], fill_gaps=True)
    assert s[1].covariates.past["price"][5] == pytest.approx((3.4 + 3.6) / 2)


def test_a_static_column_that_varies_within_a_series_is_one_line(capsys):
    def moves(row):
        return [*row[:5], "east" if row[1] == month(30) and row[0] == "B" else row[5]]

    err = one_line_error(capsys, ["forecast", panel(edit=moves), *COVS, "--future", future()])
    assert "static covariate 'region' varies within series 'B'" in err
    assert "'south' at line 50, 'east' at line 80" in err


def test_covariate_columns_that_are_not_there_or_taken_are_one_line(capsys):
    err = one_line_error(capsys, ["forecast", panel(), "--future-covariates", "promo,nope"])
    assert "no column 'nope'" in err
    err = one_line_error(capsys, ["forecast", panel(), "--past-covariates", "ds"])
    assert "'ds' is the date column" in err
    err = one_line_error(capsys, ["forecast", panel(), "--future-covariates", "promo",
                                  "--past-covariates", "promo"])
    assert "future and a past covariate" in err


def test_backtest_passes_the_covariates_of_every_row(capsys, monkeypatch):
    import rnnkit.cli.forecast as cli

    seen = []

    def spy(series, horizon, **kw):
        seen.append(kw["covariates"])
        return real(series, horizon, **kw)

    real = cli.backtest
    monkeypatch.setattr(cli, "backtest", spy)
    assert main(["backtest", panel(), *COVS, "--windows", "2", "--horizon", "3",
                 "--output", "bt.json", *FAST]) == 0
    (covs,) = seen
    assert [len(c.future["promo"]) for c in covs] == [48, 48]
    assert [c.static["region"] for c in covs] == ["north", "south"]
    assert json.loads(Path("bt.json").read_text())["methods"]["deepar"]["mase"] > 0


def test_load_future_lines_up_by_date_and_steps(tmp_path):
    s = load_series(panel(), future=["promo"], static=["region"])
    with open("shuffled.csv", "w", newline="") as f:  # rows in any order, extra rows ignored
        writer = csv.writer(f)
        writer.writerow(["ds", "promo", "unique_id"])
        for t in (50, 49, 48, 47, 60):
            for sid in ("B", "A"):
                writer.writerow([month(t), 7 * t if sid == "A" else t, sid])
    covs = load_future("shuffled.csv", s, 3, ["promo"])
    np.testing.assert_array_equal(covs[0].future["promo"][-4:], [promo(47), 336, 343, 350])
    np.testing.assert_array_equal(covs[1].future["promo"][-3:], [48, 49, 50])
    assert covs[1].static == {"region": "south"}
    # a series without dates: the --future file's rows are the steps after the context
    Path("u.csv").write_text("y,x\n" + "".join(f"{t % 5},{t % 2}\n" for t in range(30)))
    Path("uf.csv").write_text("x\n1\n0\n")
    (u,) = load_series("u.csv", future=["x"])
    np.testing.assert_array_equal(load_future("uf.csv", [u], 2, ["x"])[0].future["x"][-3:],
                                  [1, 1, 0])
    with pytest.raises(DataError, match=r"uf.csv: no future covariate values for the series "
                                        r"at 32"):
        load_future("uf.csv", [u], 3, ["x"])


# ---------------------------------------------------------------- the DataFrame API

# the network alone: a forecast mixed with Theta (test_theta.py) reads no covariate
TINY = dict(max_time=None, max_steps=4, num_samples=20, hidden_size=8, combine="")
EXOG = dict(futr_exog_list=["promo"], hist_exog_list=["price"], stat_exog_list=["region"])


def read_frame(path):
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(path)
    return df.assign(ds=pd.to_datetime(df["ds"]))


def csv_forecasts(h, seed):
    """The CSV path's forecasts of p.csv with f.csv's future promo, at ``seed``."""
    from rnnkit.forecasting import train_forecaster
    from rnnkit.forecasting.data import series_covariates

    series = load_series("p.csv", future=["promo"], past=["price"], static=["region"])
    forecaster, _ = train_forecaster(series, h, seed=seed, covariates=series_covariates(series),
                                     **{k: v for k, v in TINY.items() if k != "num_samples"})
    covs = load_future("f.csv", series, h, ["promo"])
    return [forecaster.forecast(s.values, s.dates, h, 20, series=s.name, seed=seed,
                                covariates=c) for s, c in zip(series, covs)]


def test_the_frame_with_covariates_gives_the_csv_paths_numbers():
    from rnnkit.forecasting.frame import RNNForecast

    panel(), future()
    rf = RNNForecast(h=4, seed=3, **TINY, **EXOG).fit(read_frame("p.csv"))
    got = rf.predict(level=[80], futr_df=read_frame("f.csv"))
    for fc, (_, rows) in zip(csv_forecasts(4, 3), got.groupby("unique_id", sort=False)):
        np.testing.assert_array_equal(rows["DeepAR"], fc.mean)
        np.testing.assert_array_equal(rows["DeepAR-hi-80"], fc.quantiles[2])
    assert rf.forecaster_.config.future_covariates == ("promo",)
    flipped = read_frame(future("g.csv", flip=True))
    assert not np.array_equal(rf.predict(futr_df=flipped)["DeepAR"], got["DeepAR"])


def test_frame_cross_validation_passes_the_covariates_to_backtest():
    from rnnkit.forecasting import backtest
    from rnnkit.forecasting.data import series_covariates
    from rnnkit.forecasting.frame import RNNForecast

    cv = RNNForecast(seed=1, **TINY, **EXOG).cross_validation(read_frame(panel()), h=3,
                                                              n_windows=2)
    series = load_series("p.csv", future=["promo"], past=["price"], static=["region"])
    got = []
    backtest(series, 3, windows=2, seed=1, covariates=series_covariates(series),
             on_forecast=lambda s, t, fc: got.append(fc.mean), **TINY)
    np.testing.assert_array_equal(cv["DeepAR"], np.concatenate(got))


def test_frame_covariate_refusals_are_one_line():
    from rnnkit.forecasting.frame import RNNForecast

    df = read_frame(panel())
    rf = RNNForecast(h=3, **TINY, **EXOG).fit(df)
    cases = [
        (lambda: rf.predict(), r"predict needs futr_df= with the future values of \['promo'\]"),
        (lambda: rf.predict(futr_df=read_frame(future(skip=(49,)))),
         r"futr_df has no row for series 'A' at 2004-02-01"),
        (lambda: RNNForecast(h=3, **TINY, **EXOG).fit(df.assign(
            price=df["price"].where(df.index != 7))),
         r"series 'A': covariate 'price' is missing or not finite at rows \[7\]"),
        (lambda: RNNForecast(h=3, **TINY, **EXOG).fit(df.assign(
            region=df["region"].where(df.index != 60, "east"))),
         r"series 'B': static covariate 'region' varies: 'south' at row 48, 'east' at row 60"),
        (lambda: RNNForecast(h=3, futr_exog_list=["nope"], **TINY).fit(df),
         r"futr_exog_list: the DataFrame has no column 'nope'"),
    ]
    for call, message in cases:
        with pytest.raises(DataError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    # static_df instead of a column of df
    pd = pytest.importorskip("pandas")
    static = pd.DataFrame({"unique_id": ["B", "A"], "region": ["south", "north"]})
    again = RNNForecast(h=3, stat_exog_list=["region"], **TINY).fit(
        df.drop(columns="region"), static_df=static)
    assert again.forecaster_.config.static_levels == {"region": ["north", "south"]}


def test_an_integer_ds_round_trips_as_steps():
    pd = pytest.importorskip("pandas")
    from rnnkit.forecasting import train_forecaster
    from rnnkit.forecasting.frame import RNNForecast

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 40), "ds": np.tile(np.arange(40), 2),
                       "y": np.tile(np.sin(np.arange(40)), 2) + rng.normal(0, 0.1, 80)})
    got = RNNForecast(h=3, seed=2, **TINY).fit(df).predict()
    assert got["ds"].dtype == df["ds"].dtype and list(got["ds"]) == [40, 41, 42] * 2
    df.to_csv("steps.csv", index=False)
    series = load_series("steps.csv")
    assert series[0].undated
    forecaster, _ = train_forecaster(series, 3, seed=2, max_time=None, max_steps=4, hidden_size=8,
                                     combine="")
    fc = forecaster.forecast(series[1].values, series[1].dates, 3, 20, series="b", seed=2)
    np.testing.assert_array_equal(got["DeepAR"][3:], fc.mean)
    cv = RNNForecast(**TINY).cross_validation(df, h=3, n_windows=2)
    assert cv["cutoff"].dtype == df["ds"].dtype and sorted(cv["cutoff"].unique()) == [33, 36]
    assert (cv["ds"] > cv["cutoff"]).all()


def test_the_library_names_a_series_of_steps_missing_future_values_by_step():
    from rnnkit.forecasting import Covariates, DatedSeries, train_forecaster

    x = np.random.default_rng(0).integers(0, 2, 40).astype(float)
    s = DatedSeries("u", np.arange(40), np.sin(np.arange(40)) + x, season=1)
    fc, _ = train_forecaster([s], 3, max_time=None, max_steps=2, hidden_size=4,
                             covariates=[Covariates(future={"x": x})])
    with pytest.raises(DataError, match=r"series 'u' has no values for the horizon's 41, 42;"):
        fc.forecast(s.values, s.dates, 3, covariates=Covariates(future={"x": np.r_[x, 1.0]}))


def test_the_library_trains_on_the_covariates_the_series_carry():
    """load_series(future=...) puts them on the series; train_forecaster and backtest read
    them from there, so loading covariates and forgetting covariates= cannot drop them."""
    from rnnkit.forecasting import backtest, train_forecaster

    series = load_series(panel(), future=["promo"])
    forecaster, _ = train_forecaster(series, horizon=6, max_steps=2, max_time=None)
    assert forecaster.config.future_covariates == ("promo",)
    result = backtest(series, horizon=6, windows=1, max_steps=2, max_time=None,
                      num_samples=5)
    assert result["fits"] and result["methods"]["deepar"]["mase"] > 0


def test_an_ablate_series_study_trains_with_the_covariates_named(tmp_path, monkeypatch):
    import rnnkit.forecasting
    from rnnkit.cli import ablate
    from rnnkit.cli.settings import AblateSettings

    s = ablate.resolve_study(AblateSettings(files=[panel()], quick=True, steps=2, horizon=6,
                                            windows=1, future_covariates=["promo"],
                                            season=12), set())
    job = ablate.plan_series(s, tmp_path / "study", 1)[0].jobs[0]
    assert job["settings"]["future_covariates"] == ["promo"] and job["settings"]["season"] == 12
    seen, real = {}, rnnkit.forecasting.backtest

    def spy(series, *args, **kwargs):
        seen["covariates"] = series[0].covariates
        return real(series, *args, **kwargs)

    monkeypatch.setattr(rnnkit.forecasting, "backtest", spy)
    ablate.run_series(job)
    assert seen["covariates"] is not None and "promo" in seen["covariates"].future
