"""The DataFrame API (issue 30): rnnkit.forecasting.frame.RNNForecast fits, predicts and
cross-validates long ``unique_id, ds, y`` frames with the numbers of the CSV path."""

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
