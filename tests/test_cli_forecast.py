"""`rnnkit forecast` and `rnnkit backtest` (issue 16's command line): dated CSV in, forecasts
with quantiles and backtest metrics beside the naive forecasts out; bad input is one line."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main

FAST = ["--max-time", "2", "--samples", "20", "--threads", "1"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def monthly(name="m.csv", rows=72, start_year=2000, phase=0.0):
    with open(name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["month", "sales"])
        for t in range(rows):
            year, month = start_year + t // 12, t % 12 + 1
            writer.writerow([f"{year}-{month:02d}-01",
                             f"{100 + 10 * math.sin(2 * math.pi * t / 12 + phase) + t:.3f}"])
    return name


def read(path):
    return list(csv.reader(open(path)))


def test_forecast_a_file_then_new_data_without_retraining(capsys):
    assert main(["forecast", monthly(), *FAST]) == 0
    run = Path("runs/forecast-m")
    rows = read(run / "forecast.csv")
    assert rows[0] == ["month", "sales", "sales_q0.1", "sales_q0.5", "sales_q0.9"]
    assert [r[0] for r in rows[1:3]] == ["2006-01-01", "2006-02-01"]  # dates continue
    assert len(rows) == 1 + 12  # one season of monthly data
    for r in rows[1:]:
        assert float(r[2]) <= float(r[3]) <= float(r[4])  # quantiles ordered
    assert (run / "forecast.png").is_file()

    monthly("new.csv", rows=48, start_year=2010, phase=1.0)
    assert main(["forecast", str(run), "--context", "new.csv", "--horizon", "3",
                 "--output", "new-fc.csv", *FAST]) == 0
    rows = read("new-fc.csv")
    assert [r[0] for r in rows[1:]] == ["2014-01-01", "2014-02-01", "2014-03-01"]


def test_long_format_gives_one_forecast_per_id(capsys):
    with open("panel.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "symbol", "price"])
        for symbol, base in (("A", 10.0), ("B", 50.0)):
            for t in range(60):
                writer.writerow([f"{2000 + t // 12}-{t % 12 + 1:02d}-01", symbol, base + t])
    assert main(["forecast", "panel.csv", "--id-column", "symbol", "--target", "price",
                 "--horizon", "4", *FAST]) == 0
    rows = read("runs/forecast-panel/forecast.csv")
    assert rows[0][:3] == ["symbol", "date", "price"]
    assert [r[0] for r in rows[1:]] == ["A"] * 4 + ["B"] * 4


def test_backtest_prints_the_naive_forecasts_beside_rnnkit(capsys):
    assert main(["backtest", monthly(), "--windows", "2", "--horizon", "6", *FAST]) == 0
    out = capsys.readouterr().out
    for method in ("rnnkit", "Naive", "SeasonalNaive"):
        assert method in out
    result = json.loads(Path("backtest-m.json").read_text())
    assert set(result["methods"]) == {"deepar", "naive", "seasonal_naive"}
    assert len(result["methods"]["deepar"]["by_step"]["mae"]) == 6
    assert len(result["windows"]) == 2
    assert Path("backtest-m.png").stat().st_size > 0


def test_backtest_of_a_run_uses_its_file_columns_and_horizon(capsys):
    assert main(["forecast", monthly(), "--horizon", "4", *FAST]) == 0
    assert main(["backtest", "forecast-m", "--windows", "1", *FAST]) == 0
    assert "1 windows of 4 steps" in capsys.readouterr().out
    result = json.loads(Path("runs/forecast-m/backtest.json").read_text())
    assert len(result["methods"]["deepar"]["by_step"]["mae"]) == 4
    assert Path("runs/forecast-m/backtest.png").is_file()


def test_bad_input_is_one_line(capsys):
    path = monthly()
    lines = open(path).read().splitlines()
    Path("unsorted.csv").write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    cases = [
        (["forecast", path, "--id-column", "nope"], "nope"),
        (["forecast", "unsorted.csv"], "row"),
        (["forecast", path, "--horizon", "0"], "horizon (--horizon) must be in [1, 100000], got 0"),
        (["backtest", path, "--windows", "0"], "windows (--windows) must be in [1, 1000]"),
        (["forecast", path, "--ensemble", "0"], "ensemble (--ensemble) must be in [1, 100], got 0"),
    ]
    for argv, expected in cases:
        code = main([*argv, *FAST])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and expected in err[0], (argv, err)
    assert main(["forecast", path, *FAST, "--name", "r"]) == 0
    Path("short.csv").write_text("month,sales\n2001-01-01,1\n2001-02-01,2\n")
    capsys.readouterr()
    code = main(["forecast", "runs/r", "--context", "short.csv", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "series 'sales' has 2 rows" in err[0], err
    code = main(["forecast", "runs/r", "--ensemble", "3", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--ensemble is for training" in err[0], err


def test_an_ensemble_trains_saves_and_forecasts(capsys):
    assert main(["forecast", monthly(), "--ensemble", "2", "--name", "e", *FAST]) == 0
    from rnnkit.forecasting import DeepAREnsemble, Forecaster

    model = Forecaster.load("runs/e/forecaster.pt").model
    assert isinstance(model, DeepAREnsemble) and len(model.members) == 2
    assert main(["forecast", "runs/e", "--horizon", "3", "--output", "again.csv", *FAST]) == 0
    assert len(read("again.csv")) == 1 + 3


def test_combine_says_what_forecasts_are_made_of_and_off_is_the_network_alone(capsys):
    from rnnkit.forecasting import Forecaster

    assert main(["forecast", monthly(), "--name", "mixed", *FAST]) == 0
    meta = json.loads(Path("runs/mixed/forecaster.json").read_text())
    from rnnkit.forecasting.combination import STATISTICAL_SPLITS
    from rnnkit.forecasting.fit import COMBINE_WEIGHTS, NO_VALIDATION_NETWORK

    rest = 1 - NO_VALIDATION_NETWORK
    without = [(NO_VALIDATION_NETWORK, rest * a, rest * b) for a, b in STATISTICAL_SPLITS]
    assert tuple(meta["combine"]["weights"]) in (*COMBINE_WEIGHTS, *without)
    assert "forecasts: " in capsys.readouterr().err
    assert main(["forecast", monthly(), "--combine", "off", "--name", "alone", *FAST]) == 0
    assert "forecasts: the network's alone" in capsys.readouterr().err
    assert Forecaster.load("runs/alone/forecaster.pt").config.combine == ""
    assert main(["forecast", "runs/alone", "--combine", "off", *FAST]) == 1
    assert ("--combine is for training; runs/alone is trained (forecasts: the network's alone)"
            in capsys.readouterr().err)


def test_statistical_picks_the_forecast_mixed_in_and_is_kept_with_the_run(capsys):
    from rnnkit.forecasting import Forecaster

    assert main(["forecast", monthly(), "--statistical", "damped_trend", "--name", "d",
                 *FAST]) == 0
    assert Forecaster.load("runs/d/forecaster.pt").config.statistical == "damped_trend"
    meta = json.loads(Path("runs/d/forecaster.json").read_text())
    assert meta["combine"]["statistical"] == "damped_trend"
    assert main(["forecast", "runs/d", "--statistical", "theta", *FAST]) == 1
    assert "--statistical is for training; runs/d is trained" in capsys.readouterr().err
    assert main(["forecast", monthly(), "--name", "t", *FAST]) == 0  # the default
    assert Forecaster.load("runs/t/forecaster.pt").config.statistical == "theta"


def test_train_on_a_short_dated_csv_points_to_rnnkit_forecast(capsys):
    assert main(["train", monthly(rows=100), "--max-steps", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "longer than the data allows" in err[0]
    assert "`rnnkit forecast m.csv` trains on windows and takes short series" in err[0]
