"""`rnnkit forecast`, `backtest` and `ablate` lose nothing (issue 33): a corrupt forecaster is
one line, a series too short for the model is left out before training, reruns and runs
started together get their own directories, a refused run leaves none, Ctrl-C keeps the
best weights, a backtest reports every window, and the start line says the real budget."""

import csv
import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import ablate, main, rundir
from rnnkit.cli import forecast as forecast_cli
from rnnkit.cli.settings import AblateSettings
from rnnkit.data.errors import DataError
from rnnkit.forecasting import DatedSeries, Forecaster, backtest, default_config, train_forecaster
from rnnkit.forecasting.fit import INTERRUPTED, FitReport, describe_budget, forecast_config
from rnnkit.forecasting.frequency import FREQUENCIES
from rnnkit.forecasting.model import DeepAR, build_model

FAST = ["--max-time", "0.5", "--samples", "10", "--threads", "1", "--horizon", "4"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def panel(name="p.csv", lengths=(("A", 60), ("B", 60))):
    """A long-format monthly CSV (date, id, v): one series per (id, rows)."""
    with open(name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "id", "v"])
        for sid, rows in lengths:
            for t in range(rows):
                writer.writerow([f"{2000 + t // 12}-{t % 12 + 1:02d}-01", sid,
                                 f"{10 + t + 3 * np.sin(t):.3f}"])
    return name


def monthly_series(name="s", rows=60):
    dates = (np.datetime64("2000-01", "M") + np.arange(rows)).astype("datetime64[m]")
    return DatedSeries(name, dates, 10 + np.arange(rows) + 3 * np.sin(np.arange(rows)))


def untrained(series, horizon, max_time=None, seed=0, **overrides):
    """train_forecaster without the training: the CLI's bookkeeping, fast."""
    cfg = forecast_config(series, horizon, **overrides)
    torch.manual_seed(seed)
    return (Forecaster(build_model(cfg, len(series)), [s.name for s in series]),
            FitReport(0, 0, None, "max_steps", 0.0))


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(forecast_cli, "train_forecaster", untrained)


def one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---------------------------------------------------------------- 1. a corrupt forecaster


def saved_run(run=Path("runs/r")):
    run.mkdir(parents=True)
    untrained([monthly_series()], 4)[0].save(run / "forecaster.pt")
    (run / "forecaster.json").write_text(json.dumps(
        {"target": "", "date_column": "", "id_column": "", "fill": "none",
         "file": "/data/m.csv", "horizon": 4}))
    return run


def test_a_truncated_forecaster_is_one_line_naming_the_file(capsys):
    run = saved_run()
    data = (run / "forecaster.pt").read_bytes()
    (run / "forecaster.pt").write_bytes(data[: len(data) // 2])
    assert main(["forecast", str(run)]) == 1
    err = one_line(capsys)
    assert "runs/r/forecaster.pt" in err and "truncated or corrupt" in err
    assert err.endswith("train a new one with: rnnkit forecast /data/m.csv")
    (run / "forecaster.json").write_text("{not json")
    assert main(["forecast", str(run)]) == 1
    assert "runs/r/forecaster.json: not the JSON rnnkit forecast writes" in one_line(capsys)


def test_a_forecaster_saved_before_format_versions_still_loads():
    forecaster = untrained([monthly_series()], 4)[0]
    cfg = forecaster.config
    torch.save({"config": asdict(cfg), "series_names": ["s"], "num_series": 1,
                "model": forecaster.model.state_dict()}, "old.pt")
    loaded = Forecaster.load("old.pt")
    assert loaded.config == cfg and loaded.series_names == ["s"]


# ---------------------------------------------------------------- 2. a short series in a panel


def test_a_series_too_short_is_named_before_training_and_the_others_forecast(capsys):
    assert main(["forecast", panel(lengths=(("A", 60), ("S", 3), ("B", 60))),
                 "--id-column", "id", *FAST]) == 0
    err = capsys.readouterr().err
    assert re.search(r"note: series 'S' \(3 rows\) is too short.*left out", err)
    assert err.index("'S' (3 rows)") < err.index("training a forecaster")
    run = Path("runs/forecast-p")
    assert [r[0] for r in csv.reader(open(run / "forecast.csv"))][1:] == ["A"] * 4 + ["B"] * 4
    assert json.loads((run / "forecaster.json").read_text())["left_out"] == {"S": 3}


def test_series_too_short_for_the_network_are_forecast_by_the_statistical_ones(capsys):
    # S: 8 rows, too short for a network of 4 steps in a panel (9 rows) and alone (13), long
    # enough for Theta and SeasonalNaive (windows.STATISTICAL_MIN_ROWS); T: 3 rows, for none
    lengths = (("A", 60), ("S", 8), ("T", 3), ("B", 60))
    assert main(["forecast", panel(lengths=lengths), "--id-column", "id", *FAST]) == 0
    err = capsys.readouterr().err
    assert re.search(r"note: series 'S' \(8 rows\) is too short.*Theta and SeasonalNaive "
                     r"alone, the other 2 trained", err)
    assert re.search(r"note: series 'T' \(3 rows\) is too short.*left out", err)
    run = Path("runs/forecast-p")
    ids = [r[0] for r in csv.reader(open(run / "forecast.csv"))][1:]
    assert ids == ["A"] * 4 + ["S"] * 4 + ["B"] * 4  # the file's order
    meta = json.loads((run / "forecaster.json").read_text())
    assert meta["left_out"] == {"T": 3} and meta["statistical_only"] == {"S": 8}
    # with --combine off the network forecasts alone: S is left out too
    assert main(["forecast", panel("q.csv", lengths=lengths), "--id-column", "id",
                 "--combine", "off", *FAST]) == 0
    assert [r[0] for r in csv.reader(open("runs/forecast-q/forecast.csv"))][1:] == (
        ["A"] * 4 + ["B"] * 4)


def test_a_file_too_short_for_the_network_is_forecast_without_one(capsys):
    lengths = (("A", 8), ("B", 8))
    assert main(["forecast", panel(lengths=lengths), "--id-column", "id", *FAST]) == 0
    err = capsys.readouterr().err
    assert "no network trained" in err and "training a forecaster" not in err
    first = Path("runs/forecast-p/forecast.csv").read_text()
    assert [r[0] for r in csv.reader(first.splitlines())][1:] == ["A"] * 4 + ["B"] * 4
    # the saved forecaster forecasts again, the same numbers
    assert main(["forecast", "runs/forecast-p", "--samples", "10", "--horizon", "4"]) == 0
    assert Path("runs/forecast-p/forecast.csv").read_text() == first


def test_every_series_too_short_is_refused_up_front(capsys):
    assert main(["forecast", panel(lengths=(("A", 5), ("B", 3))), "--id-column", "id",
                 *FAST]) == 1
    assert "too short" in one_line(capsys)
    assert not Path("runs").exists()


def test_a_context_too_short_for_a_trained_run_is_named(no_training, capsys):
    assert main(["forecast", panel(), "--id-column", "id", *FAST]) == 0
    panel("new.csv", lengths=(("A", 2), ("B", 40)))
    capsys.readouterr()
    assert main(["forecast", "runs/forecast-p", "--context", "new.csv", "--output",
                 "new-fc.csv", *FAST]) == 0
    assert "note: not forecast: series 'A' has 2 rows" in capsys.readouterr().err
    assert {r[0] for r in list(csv.reader(open("new-fc.csv")))[1:]} == {"B"}


# ---------------------------------------------------------------- 3. reruns, races, refusals


def test_a_rerun_gets_its_own_directory_and_a_taken_name_points_to_forecast(no_training,
                                                                              capsys):
    assert main(["forecast", panel(), "--id-column", "id", *FAST]) == 0
    assert main(["forecast", panel(), "--id-column", "id", *FAST]) == 0
    assert Path("runs/forecast-p-2/forecaster.pt").is_file()
    capsys.readouterr()
    assert main(["forecast", panel(), "--id-column", "id", "--name", "forecast-p", *FAST]) == 1
    err = one_line(capsys)
    assert "--resume" not in err and "rnnkit forecast runs/forecast-p" in err


def test_runs_started_together_get_distinct_directories(no_training, monkeypatch):
    pick = rundir.pick_name

    def another_process_wins(*args, **kwargs):  # it makes the name this one picked first
        path = pick(*args, **kwargs)
        if path.name == "forecast-p":
            path.mkdir(parents=True)
        return path

    monkeypatch.setattr(rundir, "pick_name", another_process_wins)
    assert main(["forecast", panel(), "--id-column", "id", *FAST]) == 0
    assert Path("runs/forecast-p-2/forecast.csv").is_file()
    assert list(Path("runs/forecast-p").iterdir()) == []  # the other process's, untouched


def test_a_refused_forecast_leaves_no_run_directory(no_training, monkeypatch, capsys):
    assert main(["forecast", panel(), "--id-column", "id", "--output", "no/such/f.csv",
                 *FAST]) == 1
    assert "the directory no/such does not exist" in one_line(capsys)
    assert not Path("runs").exists()

    def fails(*args, **kwargs):
        raise DataError("training failed")

    monkeypatch.setattr(forecast_cli, "train_forecaster", fails)
    assert main(["forecast", panel(), "--id-column", "id", *FAST]) == 1
    assert list(Path("runs").iterdir()) == []


def test_make_new_refuses_an_explicit_name_with_the_hint_given(tmp_path):
    made = rundir.make_new(str(tmp_path), "", "x", reuse="use it")
    assert made == tmp_path / "x" and made.is_dir()
    assert rundir.make_new(str(tmp_path), "", "x", reuse="use it") == tmp_path / "x-2"
    with pytest.raises(DataError, match=r"already exists; choose another --name, or use it$"):
        rundir.make_new(str(tmp_path), "x", "x", reuse="use it")


# ---------------------------------------------------------------- 4. Ctrl-C


def interrupt_at_check(k):
    checks = []

    def on_check(record):
        checks.append(record)
        if len(checks) == k:
            raise KeyboardInterrupt

    return on_check


def test_ctrl_c_in_training_keeps_the_best_weights_and_reports_it():
    series = [monthly_series(rows=120)]
    forecaster, report = train_forecaster(series, 4, max_time=None, max_steps=10_000,
                                          on_check=interrupt_at_check(2))
    assert report.stop_reason == INTERRUPTED
    eval_every = forecaster.config.eval_every
    assert report.steps == 2 * eval_every and report.best_step in (eval_every, 2 * eval_every)
    assert np.isfinite(forecaster.forecast(series[0].values, series[0].dates, 4, 5).mean).all()


def test_ctrl_c_in_an_ensemble_keeps_the_members_trained_so_far(tmp_path):
    series = [monthly_series(rows=120)]
    forecaster, report = train_forecaster(series, 4, max_time=None, max_steps=10_000,
                                          on_check=interrupt_at_check(1), ensemble=3)
    assert report.stop_reason == INTERRUPTED
    assert forecaster.config.ensemble == 1 and isinstance(forecaster.model, DeepAR)
    forecaster.save(tmp_path / "f.pt")
    assert Forecaster.load(tmp_path / "f.pt").config.ensemble == 1


def test_ctrl_c_during_rnnkit_forecast_saves_and_forecasts(monkeypatch, capsys):
    nll, calls = DeepAR.nll, []

    def interrupted_at_step_5(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return nll(self, *args, **kwargs)

    monkeypatch.setattr(DeepAR, "nll", interrupted_at_step_5)
    # a budget that cannot end before step 5 on a loaded machine (the interrupt ends it), and
    # one model (a panel's default ensemble splits the budget three ways)
    assert main(["forecast", panel(), "--id-column", "id", *FAST, "--max-time", "60",
                 "--ensemble", "1"]) == 130
    err = capsys.readouterr().err
    assert "interrupted after 4 steps" in err and "saved the forecaster" in err
    run = Path("runs/forecast-p")
    assert Forecaster.load(run / "forecaster.pt").series_names == ["A", "B"]
    meta = json.loads((run / "forecaster.json").read_text())
    assert (meta["steps"], meta["stop_reason"]) == (4, "interrupted")
    assert len(list(csv.reader(open(run / "forecast.csv")))) == 1 + 8


# ---------------------------------------------------------------- 5. backtest progress


def test_backtest_reports_each_window_as_it_ends(capsys):
    done = []
    backtest([monthly_series(rows=60)], 4, windows=2, max_time=None, max_steps=3,
             num_samples=5, on_window=done.append)
    assert [d["window"] for d in done] == [1, 2] and all(d["fit"]["steps"] == 3 for d in done)
    assert all(d["deepar"] > 0 and d["naive"] > 0 for d in done)
    done.clear()
    backtest([monthly_series(rows=60)], 4, windows=2, refit=False, max_time=None,
             max_steps=3, num_samples=5, on_window=done.append)
    assert done[0]["fit"] is not None and done[1]["fit"] is None

    assert main(["backtest", panel(), "--id-column", "id", "--windows", "2", *FAST]) == 0
    err = capsys.readouterr().err
    assert re.search(r"window 1/2: trained \d+ steps \(\w+\) in \d+ s, MASE [\d.]+ \(Naive", err)
    assert "window 2/2: trained" in err


# ---------------------------------------------------------------- 6. ablate --quick on a CSV


def test_quick_study_of_a_csv_plans_the_forecasters_tricks():
    path = panel(lengths=(("A", 120),))
    s = ablate.resolve_study(AblateSettings(files=[path], quick=True, id_column="id"), set())
    assert s.tricks == ablate.QUICK_SERIES_TRICKS
    plan = ablate.plan_series(s, Path("study"), 1)[0]
    assert {r.trick for r in plan.rows} | {t for t, _ in plan.skipped} == {
        "default", *ablate.QUICK_SERIES_TRICKS}


def test_a_refused_study_leaves_no_directory(capsys):
    path = panel(lengths=(("A", 120),))
    assert main(["ablate", path, "--quick", "--tricks", "cell", "--id-column", "id"]) == 1
    assert "unknown trick 'cell'" in one_line(capsys)
    assert main(["ablate", panel("short.csv", (("A", 40),)), "--quick", "--id-column", "id"
                 ]) == 1
    assert "give fewer --windows or a shorter --horizon" in one_line(capsys)
    assert not Path("runs/ablate-p-quick").exists() and not Path("runs/ablate-short-quick").exists()


# ---------------------------------------------------------------- 7. messages


def test_the_start_line_says_the_budget_that_applies(no_training, capsys):
    monthly = FREQUENCIES["monthly"]
    with_val = default_config([120], monthly, 4)
    without = default_config([20], monthly, 4)
    assert with_val.validation and not without.validation
    assert describe_budget(with_val, None, None) == ("with no time limit, until validation "
                                                     "stops improving")
    assert describe_budget(with_val, 60, None) == ("for at most 60 s, or until validation "
                                                   "stops improving")
    assert describe_budget(without, None, None) == (
        f"for at most {without.default_steps} steps (no validation rows to stop early on)")
    assert describe_budget(without, 5, None).startswith(
        f"for at most 5 s or {without.default_steps} steps")

    assert main(["forecast", panel(), "--id-column", "id", *FAST, "--max-time", "0"]) == 0
    err = capsys.readouterr().err
    assert "with no time limit" in err and "at most 0 s" not in err


def test_the_fan_chart_says_it_shows_the_first_6_series(no_training, monkeypatch, capsys):
    from matplotlib.figure import Figure

    titles = []
    suptitle = Figure.suptitle
    monkeypatch.setattr(Figure, "suptitle",
                        lambda self, t, **kw: titles.append(t) or suptitle(self, t, **kw))
    assert main(["forecast", panel(lengths=[(f"s{k}", 40) for k in range(8)]), "--id-column",
                 "id", *FAST]) == 0
    assert "the fan chart runs/forecast-p/forecast.png shows the first 6 of 8 series" in (
        capsys.readouterr().err)
    assert titles and "first 6 of 8 series" in titles[0]


# ---------------------------------------------------------------- dates written back


@pytest.mark.parametrize("dates, expected", [
    ([str(y) for y in range(1980, 2020)], ["2020", "2021"]),  # was 2020-01-01
    ([f"{y}Q{q}" for y in range(1990, 2000) for q in range(1, 5)], ["2000Q1", "2000Q2"]),
    ([f"{y}-{m:02d}" for y in range(1990, 1994) for m in range(1, 13)], ["1994-01", "1994-02"]),
])
def test_forecast_dates_are_written_in_the_files_own_style(no_training, dates, expected):
    with open("s.csv", "w") as f:
        f.write("date,v\n" + "".join(f"{d},{i % 7}\n" for i, d in enumerate(dates)))
    assert main(["forecast", "s.csv", *FAST[:-1], "2"]) == 0
    with open("runs/forecast-s/forecast.csv") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == expected


def test_a_unique_id_panel_found_without_flags_keeps_its_id_column(no_training):
    with open("long.csv", "w") as f:
        f.write("unique_id,ds,y\n" + "".join(
            f"{sid},{2000 + t // 12}-{t % 12 + 1:02d}-01,{t + 3 * (sid == 'b')}\n"
            for sid in "ab" for t in range(60)))
    assert main(["forecast", "long.csv", *FAST]) == 0
    with open("runs/forecast-long/forecast.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["unique_id", "ds", "y"]
    assert [r[0] for r in rows[1:]] == ["a"] * 4 + ["b"] * 4


# ---------------------------------------------------------------- implausible coverage


def test_coverage_note_flags_only_clear_misses():
    from rnnkit.forecasting.metrics import coverage_note

    assert coverage_note(0.47, 30) and "too narrow" in coverage_note(0.47, 30)
    assert coverage_note(1.0, 200) and "too wide" in coverage_note(1.0, 200)
    assert coverage_note(0.75, 30) is None and coverage_note(0.8, 1000) is None
    assert coverage_note(1.0, 4) is None  # 4 values cannot say much


def test_backtest_says_when_its_intervals_are_too_narrow(monkeypatch, capsys):
    monthly = panel("m.csv", (("A", 80),))

    def narrow(series, horizon, **kw):
        summary = {"mae": 1.0, "rmse": 1.0, "mase": 1.0, "smape": 1.0, "crps": 1.0,
                   "coverage": 0.47, "by_step": {"mae": [1.0] * horizon}}
        return {"methods": {"deepar": summary, "naive": summary, "seasonal_naive": summary}}

    monkeypatch.setattr(forecast_cli, "backtest", narrow)
    assert main(["backtest", monthly, "--id-column", "id", "--horizon", "5", "--windows", "3",
                 "--threads", "1"]) == 0
    assert "covered 0.47 of 15 held-out values" in capsys.readouterr().err
    assert "too narrow" in json.loads(Path("backtest-m.json").read_text())["coverage_note"]


def test_a_panel_gets_the_librarys_ensemble_unless_ensemble_is_given(no_training, capsys):
    """--ensemble's default is the library's (3 models for several series, 1 for one): a CLI
    default of 1 overrode the panel ensemble chosen on the development panel."""
    assert main(["forecast", panel(), "--id-column", "id", *FAST]) == 0
    assert "(an ensemble of 3, 1/3 each)" in capsys.readouterr().err
    assert main(["forecast", panel(), "--id-column", "id", "--ensemble", "1", *FAST]) == 0
    assert "ensemble of" not in capsys.readouterr().err
    with open("one.csv", "w") as f:
        f.write("date,v\n" + "".join(f"{2000 + t // 12}-{t % 12 + 1:02d}-01,{t % 5}\n"
                                     for t in range(60)))
    assert main(["forecast", "one.csv", *FAST]) == 0
    assert "ensemble of" not in capsys.readouterr().err
