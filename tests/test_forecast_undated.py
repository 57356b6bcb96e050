"""Series without dates (issue 30): integer steps, a stated or inferred season, and the
forecaster, backtest and CLI on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.forecasting import DatedSeries, load_series, train_forecaster
from rnnkit.forecasting.data import series_frequency
from rnnkit.forecasting.frequency import FREQUENCIES, STEPS, format_dates, future_dates, to_steps
from rnnkit.forecasting.season import infer_season

BJSALES = Path("/work/shared/data/fpp/bjsales.csv")


def seasonal(n: int, m: int, seed: int = 0) -> np.ndarray:
    """A trend, a sine of period m and noise."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / m) + rng.normal(0, 0.5, n)


def write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the inferred season -------------------------------------------------------------------


@pytest.mark.parametrize("m", [4, 7, 12])
def test_the_season_of_a_seasonal_series_is_found(m):
    assert infer_season(seasonal(240, m)) == m


def test_a_random_walk_has_no_season():
    rng = np.random.default_rng(0)
    found = [infer_season(np.cumsum(rng.normal(size=n)))
             for n in (30, 100, 1000) for _ in range(20)]
    assert found == [1] * 60


def test_a_panel_is_judged_together_and_a_short_series_has_no_season():
    assert infer_season([seasonal(120, 6, seed) for seed in range(3)]) == 6
    assert infer_season(seasonal(5, 2)) == 1


# -- reading a file without dates ----------------------------------------------------------


def test_a_file_without_a_date_column_is_steps_with_the_inferred_season(tmp_path):
    values = seasonal(120, 6)
    path = write(tmp_path, "bpm\n" + "".join(f"{v:.4f}\n" for v in values))
    (s,) = load_series(path)
    assert s.undated and s.dates.tolist() == list(range(120)) and s.season == 6
    assert s.value_column == "bpm" and s.date_column == ""
    assert load_series(path, season=24)[0].season == 24  # a stated season wins


def test_an_integer_ds_is_steps_and_a_year_column_stays_dated(tmp_path):
    rows = "".join(f"a,{5 + i},{i % 3}\n" for i in range(30))
    (s,) = load_series(write(tmp_path, "unique_id,ds,y\n" + rows), season=1)
    assert s.undated and s.dates.tolist() == list(range(5, 35)) and s.date_column == "ds"
    years = "".join(f"{1990 + i},{i}\n" for i in range(12))
    assert not load_series(write(tmp_path, "year,v\n" + years, "y.csv"))[0].undated
    # a column named step is steps even where its numbers read as years
    steps = load_series(write(tmp_path, "step,v\n" + years, "st.csv"), season=1)[0]
    assert steps.undated and steps.dates[0] == 1990


def test_a_text_date_column_of_another_name_is_found(tmp_path):
    rows = "".join(f"2020-{m:02d},{m}\n" for m in range(1, 13))
    (s,) = load_series(write(tmp_path, "Period,v\n" + rows))
    assert not s.undated and series_frequency([s]).name == "monthly"


def test_steps_must_go_up_by_one_and_missing_steps_are_refused_or_filled(tmp_path):
    tens = "".join(f"{10 * i},{i}\n" for i in range(12))
    with pytest.raises(DataError, match=r"s.csv: the steps go up by 10 \(median\); number the "
                                        r"rows 0, 1, 2"):
        load_series(write(tmp_path, "ds,y\n" + tens), season=1)
    gap = "ds,y\n0,1\n1,2\n2,3\n4,5\n5,6\n"
    with pytest.raises(DataError, match=r"1 step\(s\) are missing, the first 3 .*"
                                        r"--fill interpolate"):
        load_series(write(tmp_path, gap, "g.csv"), season=1)
    (s,) = load_series(write(tmp_path, gap, "g.csv"), season=1, fill_gaps=True)
    assert s.dates.tolist() == [0, 1, 2, 3, 4, 5] and s.values[3] == 4.0


def test_the_real_bjsales_file_loads_as_undated():
    (s,) = load_series(BJSALES, value="sales")
    assert s.undated and len(s.values) == 150 and s.dates[-1] == 149
    assert s.season == 1  # a trend, no season (the rule of rnnkit.forecasting.season)


# -- the frequency and the season ----------------------------------------------------------


def test_the_season_sets_the_lags_and_m_and_a_stated_one_overrides_the_dates():
    steps = DatedSeries("a", np.arange(200), seasonal(200, 7))
    assert steps.undated and steps.season == 0
    assert series_frequency([steps]) == STEPS.__class__("steps", 1, 0, (7,), ())
    monthly = np.arange("2000-01", "2010-01", dtype="datetime64[M]").astype("datetime64[m]")
    dated = DatedSeries("b", monthly, seasonal(120, 3))
    assert series_frequency([dated]).lags == (12,)  # not set: the frequency's
    freq = series_frequency([DatedSeries("b", monthly, dated.values, season=3)])
    assert (freq.name, freq.lags, freq.season, freq.calendar) == ("monthly", (3,), 3, ("month",))
    assert series_frequency([DatedSeries("b", monthly, dated.values, season=1)]).lags == ()
    with pytest.raises(DataError, match=r"different seasons \[3, 5\].*--season"):
        series_frequency([DatedSeries("a", np.arange(9), np.ones(9), season=3),
                          DatedSeries("b", np.arange(9), np.ones(9), season=5)])


def test_steps_continue_and_print_as_numbers():
    assert future_dates(np.int64(9), STEPS, 3).tolist() == [10, 11, 12]
    # the model handles steps as minutes: what it returns reads back as the steps
    as_dates = np.arange(10, 13).astype("datetime64[m]")
    assert to_steps(as_dates).tolist() == [10, 11, 12]
    assert format_dates(as_dates, "step") == ["10", "11", "12"]
    assert format_dates(np.array([3, 4])) == ["3", "4"]
    assert "steps" in FREQUENCIES  # a saved forecaster's config names it


def test_a_forecaster_trains_on_integer_steps_with_the_season_as_its_lag():
    s = DatedSeries("a", np.arange(200), seasonal(200, 7))
    forecaster, _ = train_forecaster([s], 7, max_time=0.3, max_steps=5)
    cfg = forecaster.config
    assert (cfg.freq, cfg.lags, cfg.calendar) == ("steps", (1, 7), ())
    fc = forecaster.forecast(s.values, s.dates, 7, num_samples=20)
    assert to_steps(fc.dates).tolist() == list(range(200, 207))


# -- rnnkit forecast and backtest ----------------------------------------------------------

FAST = ["--max-time", "0.5", "--samples", "20", "--threads", "1"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    return tmp_path


def heartrate(name: str = "heartrate.csv", n: int = 90, m: int = 6, header: str = "bpm",
              start: int | None = None) -> str:
    """One column of values (a season of m), or ``header`` = ``ds,bpm`` with steps from
    ``start``."""
    values = 60 + seasonal(n, m)
    steps = [f"{start + i}," if start is not None else "" for i in range(n)]
    Path(name).write_text(header + "\n" + "".join(f"{s}{v:.3f}\n" for s, v in zip(steps, values)))
    return name


def rows_of(path: str | Path) -> list[list[str]]:
    return [line.split(",") for line in Path(path).read_text().splitlines()]


def test_forecast_a_file_without_dates_then_new_data(in_tmp, capsys):
    from rnnkit.cli import main
    from rnnkit.forecasting import Forecaster

    assert main(["forecast", heartrate(), *FAST]) == 0
    err = capsys.readouterr().err
    assert "no dates: read its rows as steps 0..89; season 6 (inferred" in err
    run = Path("runs/forecast-heartrate")
    rows = rows_of(run / "forecast.csv")
    assert rows[0] == ["step", "bpm", "bpm_q0.1", "bpm_q0.5", "bpm_q0.9"]
    assert [r[0] for r in rows[1:]] == [str(s) for s in range(90, 96)]  # H = one season
    assert (run / "forecast.png").is_file()
    assert Forecaster.load(run / "forecaster.pt").config.lags == (1, 6)

    heartrate("new.csv", n=40)
    assert main(["forecast", str(run), "--context", "new.csv", "--horizon", "3",
                 "--output", "new-fc.csv", *FAST]) == 0
    assert [r[0] for r in rows_of("new-fc.csv")[1:]] == ["40", "41", "42"]
    assert main(["forecast", str(run), "--season", "4", *FAST]) == 1
    assert "--season is for training" in capsys.readouterr().err


def test_an_integer_ds_is_written_back_under_its_name(in_tmp):
    from rnnkit.cli import main

    path = heartrate("ds.csv", header="ds,bpm", start=100)
    assert main(["forecast", path, "--season", "1", "--horizon", "2", *FAST]) == 0
    rows = rows_of("runs/forecast-ds/forecast.csv")
    assert [rows[0][0], rows[1][0], rows[2][0]] == ["ds", "190", "191"]


def test_a_stated_season_overrides_the_dates_and_sets_the_backtest_m(in_tmp, capsys):
    from rnnkit.cli import main
    from rnnkit.forecasting import Forecaster

    months = np.arange("2000-01", "2008-01", dtype="datetime64[M]")
    Path("m.csv").write_text("month,v\n" + "".join(
        f"{d}-01,{v:.3f}\n" for d, v in zip(months, seasonal(96, 3))))
    assert main(["forecast", "m.csv", "--season", "3", "--horizon", "3", *FAST]) == 0
    assert Forecaster.load("runs/forecast-m/forecaster.pt").config.lags == (1, 3)
    assert main(["backtest", heartrate(), "--windows", "1", "--horizon", "3", *FAST]) == 0
    assert json.loads(Path("backtest-heartrate.json").read_text())["season"] == 6
    assert main(["backtest", "m.csv", "--season", "1", "--windows", "1", "--horizon", "3",
                 *FAST]) == 0
    summary = json.loads(Path("backtest-m.json").read_text())
    assert summary["season"] == 1  # not the monthly 12
    assert summary["methods"]["naive"]["mae"] == summary["methods"]["seasonal_naive"]["mae"]


def test_an_ablate_study_of_an_undated_file_uses_its_season(in_tmp):
    from rnnkit.cli import ablate
    from rnnkit.cli.settings import AblateSettings

    path = heartrate(n=240, m=6)
    s = ablate.resolve_study(AblateSettings(files=[path], quick=True), set())
    base = ablate.plan_series(s, Path("study"), 1)[1]
    assert 6 in base.lags  # infer_frequency alone gave the steps' frequency, no season
