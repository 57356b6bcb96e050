"""The DataFrame API (issue 30): rnnkit.forecasting.frame.RNNForecast fits, predicts and
cross-validates long ``unique_id, ds, y`` frames with the numbers of the CSV path."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.forecasting import DatedSeries, backtest


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def monthly(name: str, rows: int, start: str = "2000-01") -> DatedSeries:
    dates = (np.datetime64(start, "M") + np.arange(rows)).astype("datetime64[m]")
    t = np.arange(rows)
    return DatedSeries(name, dates, 10 + 0.5 * t + 3 * np.sin(t))


def test_backtest_hands_each_forecast_to_on_forecast():
    got = []
    series = [monthly("a", 40), monthly("b", 36, "2001-01")]
    backtest(series, 4, windows=2, step=3, max_time=None, max_steps=2, num_samples=5,
             hidden_size=4, on_forecast=lambda s, t, fc: got.append((s.name, len(t.values), fc)))
    assert [(name, rows) for name, rows, _ in got] == [("a", 33), ("b", 29), ("a", 36), ("b", 32)]
    for name, rows, fc in got:
        s = series[0] if name == "a" else series[1]
        assert (fc.dates == s.dates[rows: rows + 4]).all() and fc.samples.shape == (5, 4)


# ---------------------------------------------------------------- the DataFrame API

pd = pytest.importorskip("pandas")

from rnnkit.data.errors import DataError  # noqa: E402
from rnnkit.forecasting import load_series, train_forecaster  # noqa: E402
from rnnkit.forecasting.frame import RNNForecast  # noqa: E402

PRISON = Path("/work/shared/data/fpp/prison.csv")
FAST = dict(max_time=None, max_steps=4, num_samples=20, hidden_size=8)


def frame(*series: DatedSeries) -> "pd.DataFrame":
    """The long frame unique_id, ds, y of ``series``."""
    return pd.DataFrame({
        "unique_id": [s.name for s in series for _ in s.values],
        "ds": pd.to_datetime(np.concatenate([s.dates for s in series])),
        "y": np.concatenate([s.values for s in series])})


@pytest.fixture(scope="module")
def prison() -> "pd.DataFrame":
    """Four series of fpp's prison.csv (quarterly, 32 rows each) as unique_id, ds, y."""
    if not PRISON.exists():
        pytest.skip(f"{PRISON} is not here")
    raw = pd.read_csv(PRISON)
    raw = raw[raw["series"].isin(raw["series"].unique()[:4])]
    out = raw.rename(columns={"series": "unique_id", "date": "ds", "count": "y"})
    return out.assign(ds=pd.to_datetime(out["ds"])).reset_index(drop=True)


def test_predict_equals_the_csv_path_at_the_same_seed(tmp_path):
    df = frame(monthly("a", 40), monthly("b", 34, "2001-03"))
    df["y"] += np.random.default_rng(0).normal(size=len(df))  # full-precision floats
    path = tmp_path / "panel.csv"
    df.assign(ds=df["ds"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    got = RNNForecast(h=4, seed=3, **FAST).fit(df).predict(level=[80])

    series = load_series(path)
    forecaster, _ = train_forecaster(series, 4, max_time=None, max_steps=4, seed=3,
                                     hidden_size=8)
    for s in series:
        fc = forecaster.forecast(s.values, s.dates, 4, 20, series=s.name, seed=3)
        rows = got[got["unique_id"] == s.name]
        assert (rows["ds"].to_numpy().astype("datetime64[m]") == fc.dates).all()
        np.testing.assert_array_equal(rows["DeepAR"], fc.mean)
        np.testing.assert_array_equal(rows["DeepAR-median"], fc.quantiles[1])
        np.testing.assert_array_equal(rows["DeepAR-lo-80"], fc.quantiles[0])
        np.testing.assert_array_equal(rows["DeepAR-hi-80"], fc.quantiles[2])


def test_prison_panel_round_trips(prison, tmp_path):
    rf = RNNForecast(h=4, **FAST).fit(prison)
    out = rf.predict(level=[95, 80])
    ids = list(prison["unique_id"].unique())
    assert list(out.columns) == ["unique_id", "ds", "DeepAR", "DeepAR-median", "DeepAR-lo-95",
                                 "DeepAR-lo-80", "DeepAR-hi-80", "DeepAR-hi-95"]
    assert out["unique_id"].dtype == prison["unique_id"].dtype
    assert out["ds"].dtype == prison["ds"].dtype
    assert all(out[c].dtype == np.float64 for c in out.columns[2:])
    assert list(out["unique_id"]) == [i for i in ids for _ in range(4)]
    expected = pd.date_range("2017-03-01", periods=4, freq="3MS")  # the 4 after 2016-12
    assert all((g["ds"].to_numpy() == expected.to_numpy()).all() for _, g in out.groupby(
        "unique_id"))
    lo95, lo80, med, hi80, hi95 = (out[f"DeepAR-{k}"] for k in ("lo-95", "lo-80", "median",
                                                                 "hi-80", "hi-95"))
    assert ((lo95 <= lo80) & (lo80 <= med) & (med <= hi80) & (hi80 <= hi95)).all()
    assert len(rf.predict(h=2)) == 8 and list(rf.predict(h=2).columns)[2:] == [
        "DeepAR", "DeepAR-median"]


def test_prison_cross_validation_matches_backtest_on_the_csv(prison, tmp_path):
    cv = RNNForecast(**FAST).cross_validation(prison, h=4, n_windows=2, step_size=2,
                                              level=[80])
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "DeepAR", "DeepAR-median",
                                "DeepAR-lo-80", "DeepAR-hi-80"]
    assert len(cv) == 4 * 2 * 4 and cv["cutoff"].dtype == prison["ds"].dtype
    assert sorted(cv["cutoff"].unique()) == list(pd.to_datetime(["2015-06-01", "2015-12-01"]))
    actual = cv.merge(prison, on=["unique_id", "ds"], suffixes=("", "_df"))
    assert len(actual) == len(cv) and (actual["y"] == actual["y_df"]).all()
    assert (cv["ds"] > cv["cutoff"]).all()

    path = tmp_path / "prison4.csv"
    prison.assign(ds=prison["ds"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    got = []
    backtest(load_series(path), 4, windows=2, step=2, max_time=None, max_steps=4,
             num_samples=20, hidden_size=8, on_forecast=lambda s, t, fc: got.append(fc))
    np.testing.assert_array_equal(cv["DeepAR"], np.concatenate([fc.mean for fc in got]))
    np.testing.assert_array_equal(cv["DeepAR-hi-80"],
                                  np.concatenate([fc.quantiles[2] for fc in got]))


def test_rows_within_a_series_in_any_order_give_the_same_forecast():
    df = frame(monthly("a", 40), monthly("b", 40))
    shuffled = df.groupby("unique_id", sort=False, group_keys=False).sample(
        frac=1, random_state=0)
    assert not shuffled["ds"].is_monotonic_increasing
    first = RNNForecast(h=4, **FAST).fit(df).predict(level=[80])
    pd.testing.assert_frame_equal(first, RNNForecast(h=4, **FAST).fit(shuffled).predict(
        level=[80]))


def test_integer_ids_text_dates_and_column_names_are_kept():
    df = frame(monthly("7", 40), monthly("9", 40)).rename(
        columns={"unique_id": "store", "ds": "month", "y": "sales"})
    df["store"] = df["store"].astype(int)
    df["month"] = df["month"].dt.strftime("%Y-%m")
    out = RNNForecast(h=3, **FAST).fit(df, id_col="store", time_col="month",
                                       target_col="sales").predict()
    assert list(out.columns[:2]) == ["store", "month"] and out["store"].dtype == np.int64
    assert list(out["month"][:3]) == ["2003-05", "2003-06", "2003-07"]
    cv = RNNForecast(**FAST).cross_validation(df, h=3, id_col="store", time_col="month",
                                              target_col="sales")
    assert list(cv.columns[:4]) == ["store", "month", "cutoff", "sales"]
    assert cv["cutoff"].iloc[0] == "2003-01"


def test_a_series_too_short_for_the_network_is_forecast_by_the_statistical_ones_alone():
    # shorter than one window of H = 4 (9 rows; windows.too_short's rule for a panel); 5
    # rows are too few for the statistical forecasts too (windows.STATISTICAL_MIN_ROWS)
    panel = frame(monthly("long", 40), monthly("short", 8), monthly("tiny", 5))
    with pytest.warns(UserWarning) as caught:
        rf = RNNForecast(h=4, **FAST).fit(panel)
    said = " ".join(str(w.message) for w in caught)
    assert re.search(r"'short' \(8 rows\) is too short.*Theta and SeasonalNaive alone", said)
    assert re.search(r"'tiny' \(5 rows\) is too short.*left out", said)
    assert rf.report_.statistical_only == {"short": 8} and rf.report_.left_out == {"tiny": 5}
    assert list(dict.fromkeys(rf.predict()["unique_id"])) == ["long", "short"]


def _with(df, **changes):
    df = df.copy()
    for key, fn in changes.items():
        df = fn(df) if key != "rename" else df.rename(columns=fn)
    return df


BAD = {
    "missing column": (dict(rename={"y": "value"}), r"no column 'y' \(columns: \['unique_id', "
                       r"'ds', 'value'\]\); name its columns with .*target_col="),
    "NaN in y": (dict(f=lambda d: d.assign(y=d["y"].where(d.index != 5))),
                 r"series 'a': column 'y' is missing or not finite at rows \[5\]"),
    "date repeated": (dict(f=lambda d: d.assign(ds=d["ds"].where(d.index != 6, d["ds"][5]))),
                      r"series 'a': the date 2000-06-01 is repeated \(rows \[5, 6\]\)"),
    "missing id": (dict(f=lambda d: d.assign(unique_id=d["unique_id"].where(d.index != 45))),
                   r"column 'unique_id' is missing at rows \[45\]; every row needs the id"),
    "missing date": (dict(f=lambda d: d.drop(index=[10, 11])),
                     r"series 'a': 2 monthly date\(s\) are missing, the first 2000-11-01"),
    "uneven dates": (dict(f=lambda d: d.assign(ds=pd.Timestamp("2000-01-01") + pd.to_timedelta(
        24 * d.groupby("unique_id").cumcount() + 12 * (d.index == 5), unit="h"))),
        r"series 'a': the dates are not evenly spaced: 2000-01-06 12:00 \(row 5\) is not a "
        r"whole number of daily steps after 2000-01-05"),
    "text y": (dict(f=lambda d: d.assign(y=d["y"].astype(str))), r"column 'y' holds .*, not "
               r"numbers; convert it with pd.to_numeric"),
    "float ds": (dict(f=lambda d: d.assign(ds=np.arange(len(d)) % 40 + 0.5)),
                 r"column 'ds' holds float64: give integer steps \(a series without dates"),
    "time zone": (dict(f=lambda d: d.assign(ds=d["ds"].dt.tz_localize("UTC"))),
                  r"column 'ds' has a time zone \(UTC\); drop it with"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line(case):
    changes, message = BAD[case]
    df = _with(frame(monthly("a", 40), monthly("b", 40)), **changes)
    with pytest.raises(DataError, match=message) as err:
        RNNForecast(h=4, **FAST).fit(df)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=message):
        RNNForecast(**FAST).cross_validation(df, h=4)


def test_bad_horizon_and_settings_are_one_line():
    df = frame(monthly("a", 20), monthly("b", 20))
    with pytest.raises(DataError, match=r"too short to train a forecaster of 21 steps.*"
                                        r"the statistical forecasts alone need 21 rows"):
        RNNForecast(h=21, **FAST).fit(df)
    for h in (0, -1, 2.5):
        with pytest.raises(DataError, match=rf"h must be an integer >= 1 .*got {h}"):
            RNNForecast(h=h)
        with pytest.raises(DataError, match=rf"h must be an integer >= 1 .*got {h}"):
            RNNForecast(**FAST).cross_validation(df, h=h)
    for bad in ("n_windows", "step_size"):
        with pytest.raises(DataError, match=rf"{bad} must be an integer >= 1, got 0"):
            RNNForecast(**FAST).cross_validation(df, h=4, **{bad: 0})
    rf = RNNForecast(h=4, **FAST).fit(df)
    with pytest.raises(DataError, match=r"h must be an integer >= 1 .*got 0"):
        rf.predict(h=0)
    with pytest.raises(DataError, match=r"level must hold percentages in \(0, 100\)"):
        rf.predict(level=[100])
    with pytest.raises(DataError, match=r"the dates are monthly, not daily as freq= says"):
        RNNForecast(h=4, freq="D", **FAST).fit(df)
    with pytest.raises(DataError, match=r"freq='fortnightly': not a frequency"):
        RNNForecast(h=4, freq="fortnightly", **FAST).fit(df)
    RNNForecast(h=4, freq="MS", **FAST).fit(df)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['hiden_size'\]"):
        RNNForecast(hiden_size=8)
    with pytest.raises(RuntimeError, match=r"call fit\(df\) first"):
        RNNForecast().predict()


def test_import_rnnkit_does_not_import_pandas():
    """In a fresh interpreter: rnnkit and rnnkit.forecasting load without pandas, and the
    frame module without it is an ImportError saying what to install."""
    code = ("import sys, rnnkit, rnnkit.forecasting, rnnkit.forecasting.backtest\n"
            "print('pandas' in sys.modules)\n"
            "sys.modules['pandas'] = None\n"
            "try:\n    import rnnkit.forecasting.frame\n"
            "except ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out == "False\nrnnkit.forecasting.frame needs pandas: pip install 'rnnkit[pandas]'\n"
