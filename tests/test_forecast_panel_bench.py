"""benchmarks/forecast.py's development panel (issue 28): the files it reads, where its
origins and validation split cut, and how its subsets are summarized."""

import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import forecast as bench  # noqa: E402

from rnnkit.forecasting import infer_frequency  # noqa: E402
from rnnkit.forecasting.data import DatedSeries  # noqa: E402

needs_data = pytest.mark.skipif(not (bench.DATA / "fpp" / "prison.csv").exists(),
                                reason="../shared/data/fpp is not here")


def monthly(n: int, name: str = "y") -> DatedSeries:
    start = np.datetime64("2000-01", "M")
    dates = np.arange(start, start + n).astype("datetime64[m]")
    return DatedSeries(name, dates, np.arange(n, dtype=np.float64))


@needs_data
def test_every_development_file_reads_with_m4_horizons():
    got = {name: bench.load_panel_file(name) for name in bench.DEV_PANEL}
    assert sum(len(s) for s in got.values()) == 63
    assert [len(s) for s in (got["prison"], got["aus_arrivals"], got["departures"],
                             got["stocks"])] == [32, 4, 5, 5]
    assert sum(len(s) == 1 for s in got.values()) == 17
    freq = infer_frequency(got["prison"][0].dates)
    assert bench.horizon_of(freq, "development") == 8
    assert bench.horizon_of(freq, "tuned") == 4


@pytest.mark.parametrize("split,shift,rows", [("test", 0, 82), ("test", 1, 64),
                                              ("validation", 0, 46)])
def test_origins_and_validation_cut_h_rows_apart(split, shift, rows):
    # monthly H = 18: the test origins hold out the last 18 and the 18 before; validation
    # drops both and scores the 18 rows before them
    s = monthly(100)
    args = Namespace(panel="development", split=split, shift=shift)
    _, h, m, trains, actuals = bench.split_group([s], args)
    assert (h, m, len(trains[0].values)) == (18, 12, rows)
    assert actuals[0].tolist() == list(range(rows, rows + 18))


def test_tuned_panel_cuts_as_before():
    args = Namespace(panel="tuned", split="validation", shift=0)
    _, h, _, trains, _ = bench.split_group([monthly(100)], args)
    assert (h, len(trains[0].values)) == (12, 76)


def test_too_short_needs_a_season_and_h_rows():
    assert bench.too_short(np.zeros(18), np.zeros(18), 18, 12) == ""
    assert "17 training rows" in bench.too_short(np.zeros(17), np.zeros(18), 18, 12)
    assert "held-out" in bench.too_short(np.zeros(30), np.zeros(5), 18, 12)


def cell(mase: float, coverage: float = 0.8) -> dict:
    return {"mase": mase, "crps": mase / 2, "coverage": coverage, "seconds": 1.0,
            "mase_by_step": []}


def row(series: str, file: str, shift: int, **methods) -> dict:
    return {"series": series, "file": file, "origin_horizons_back": shift, "seed": 0,
            "freq": "monthly", "methods": {k: cell(v) for k, v in methods.items()}}


def test_summary_scores_every_method_where_rnnkit_forecast_and_counts_refusals_as_losses():
    rows = [row("a", "a", 0, rnnkit=1.0, SeasonalNaive=2.0, AutoETS=3.0),
            row("a", "a", 1, SeasonalNaive=0.5),  # ours refused: SN's 0.5 is not averaged
            row("p:x", "p", 0, SeasonalNaive=1.0, AutoETS=0.5),  # ours never: a loss
            row("p:y", "p", 0, rnnkit=4.0, SeasonalNaive=1.0, AutoETS=0.9)]
    rows[1]["not_scored"] = {"rnnkit": "refused"}
    summary = bench.summarize(rows)
    assert set(summary) == {"all", "single series", "panel p", "monthly"}
    assert summary["single series"]["methods"]["SeasonalNaive"]["gmean_mase"] == 2.0
    wins = summary["all"]["rnnkit_beats_seasonal_naive"]
    assert (wins["wins"], wins["series"], wins["rnnkit_not_scored"]) == (1, 3, 1)
    # every method's wins, by the same count: AutoETS beats SeasonalNaive on p:x and p:y
    assert summary["all"]["methods"]["AutoETS"]["beats_seasonal_naive"] == 2
    assert summary["all"]["methods"]["rnnkit"]["beats_seasonal_naive"] == 1
    assert "beats_seasonal_naive" not in summary["all"]["methods"]["SeasonalNaive"]
    assert summary["panel p"]["methods"]["rnnkit"]["series"] == 1
    assert summary["all"]["methods"]["rnnkit"]["gmean_mase"] == pytest.approx(2.0)
    vs = summary["all"]["rnnkit_vs"]["SeasonalNaive"]  # on the 2 series both forecast
    assert vs["series"] == 2
    assert vs["SeasonalNaive"]["gmean_mase"] == pytest.approx(2 ** 0.5)
    table = bench.series_table(rows)
    assert table["a"]["rnnkit_not_scored"] == ["refused"]
