"""The too-short rule for series trained together (issue 28): a global model pools the
windows of a panel, so each series needs one window of its own and the panel as a whole
the H + 1 windows one series of ``min_length`` rows offers."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.forecasting import DatedSeries, train_forecaster
from rnnkit.forecasting.frequency import FREQUENCIES
from rnnkit.forecasting.windows import (
    PANEL_ENSEMBLE,
    default_config,
    max_horizon,
    min_length,
    pooled_windows,
    too_short,
    window_rows,
)

TINY = {"hidden_size": 8, "num_layers": 1}


def quarterly(rows: int, name: str, seed: int = 0) -> DatedSeries:
    dates = np.array([np.datetime64("2000-01") + np.timedelta64(3 * i, "M")
                      for i in range(rows)]).astype("datetime64[m]")
    values = 100 + np.cumsum(np.random.default_rng(seed).standard_normal(rows))
    return DatedSeries(name, dates, values)


def test_one_window_is_lag_context_and_horizon_and_panels_pool_them():
    assert [window_rows(h) for h in (1, 8, 18)] == [3, 17, 31]
    assert min_length(8) == window_rows(8) + 8
    assert pooled_windows([24] * 32, 8) == 32 * 8
    assert pooled_windows([16, 17, 20], 8) == 0 + 1 + 4


def test_a_single_series_keeps_the_min_length_rule():
    for h in (1, 7, 8, 18):
        assert too_short([("s", min_length(h) - 1)], h) == {"s": min_length(h) - 1}
        assert too_short([("s", min_length(h))], h) == {}
    assert max_horizon(24) == 7 and max_horizon([24]) == 7


def test_a_panel_needs_one_window_a_series_and_h_plus_one_in_all():
    # prison on the validation split: 32 quarterly series of 24 rows at H = 8
    assert too_short([(f"p{i}", 24) for i in range(32)], 8) == {}
    assert max_horizon([24] * 32) == 11
    # a member shorter than one window is left out; the others pool enough
    assert too_short([("a", 24), ("b", 16), ("c", 24)], 8) == {"b": 16}
    # together too few windows: every series is too short
    assert too_short([("a", 17), ("b", 18)], 8) == {"a": 17, "b": 18}


def test_a_panel_of_32_series_of_24_rows_trains_at_h8():
    panel = [quarterly(24, f"p{i}", i) for i in range(32)]
    fc, report = train_forecaster(panel, 8, max_time=None, max_steps=1, **TINY)
    assert report.left_out == {} and len(fc.series_names) == 32
    out = fc.forecast(panel[5].values, panel[5].dates, 8, num_samples=4, series="p5")
    assert out.samples.shape == (4, 8)


def test_a_single_24_row_series_at_h8_is_still_too_short_for_the_network():
    # the network alone refuses it; by default the statistical forecasts forecast it alone
    message = ("'alone' (24 rows) is too short to train a forecaster of 8 steps on: that needs "
               "at least 25 rows (2 x 8 + 8 + 1); use --horizon 7 or less")
    with pytest.raises(DataError) as err:
        train_forecaster([quarterly(24, "alone")], 8, max_time=None, max_steps=1, combine="",
                         **TINY)
    assert "\n" not in str(err.value) and message in str(err.value)
    with pytest.warns(UserWarning) as caught:
        fc, report = train_forecaster([quarterly(24, "alone")], 8, max_time=None, max_steps=1,
                                      **TINY)
    said = str(caught[0].message)
    assert "\n" not in said
    assert f"{message}; forecast by Theta and SeasonalNaive alone, no network trained" in said
    assert fc.model is None and report.steps == 0 and report.statistical_only == {"alone": 24}


@pytest.mark.parametrize("combine", ["", "validation"])
def test_a_member_shorter_than_one_window_is_named_in_one_line(combine):
    panel = [quarterly(24, "a"), quarterly(16, "b", 1), quarterly(24, "c", 2)]
    with pytest.warns(UserWarning) as caught:
        fc, report = train_forecaster(panel, 8, max_time=None, max_steps=1, combine=combine,
                                      **TINY)
    message = str(caught[0].message)
    assert "\n" not in message
    what = ("forecast by Theta and SeasonalNaive alone, the other 2 trained and forecast"
            if combine else "left out, the other 2 trained and forecast")
    assert ("'b' (16 rows) is too short to train a forecaster of 8 steps on: each series of "
            f"a panel needs at least 17 rows (8 + 8 + 1, one window); use --horizon 7 or less;"
            f" {what}") in message
    assert fc.series_names == ["a", "c"]
    if combine:  # the network's two, and the statistical forecasts' one
        assert report.statistical_only == {"b": 16} and report.left_out == {}
        assert fc.statistical_series == ["b"]
    else:
        assert report.left_out == {"b": 16} and fc.statistical_series == []


def test_a_panel_with_too_few_windows_in_all_is_refused_by_the_network_in_one_line():
    with pytest.raises(DataError) as err:
        train_forecaster([quarterly(17, "a"), quarterly(18, "b", 1)], 8, max_time=None,
                         max_steps=1, combine="", **TINY)
    message = str(err.value)
    assert "\n" not in message
    assert ("'a' (17 rows), 'b' (18 rows) are too short to train a forecaster of 8 steps on: "
            "a panel's series together need 9 windows of 17 rows (8 + 8 + 1), these offer 3; "
            "use --horizon 6 or less") in message


def test_several_series_get_an_ensemble_a_single_series_one_model():
    quarter = FREQUENCIES["quarterly"]
    assert default_config([40], quarter, 8).ensemble == 1
    assert default_config([40, 40], quarter, 8).ensemble == PANEL_ENSEMBLE == 3
    assert default_config([40, 40], quarter, 8, ensemble=1).ensemble == 1  # overrides win
    panel = [quarterly(24, f"p{i}", i) for i in range(4)]
    fc, report = train_forecaster(panel, 8, max_time=None, max_steps=1, **TINY)
    assert fc.config.ensemble == 3 and report.steps == 3  # one step a member


def test_a_backtest_of_a_panel_holds_its_members_to_the_panel_rule():
    """4 quarterly series of 40 rows, 2 windows of 8: 24 training rows each, below a single
    series' min_length(8) = 25 but a window of its own (17) in a panel that pools 32 windows;
    the same rows alone are still refused."""
    from rnnkit.forecasting import backtest

    t = np.arange(40)
    dates = (np.datetime64("2000-01", "M") + 3 * t).astype("datetime64[m]")
    panel = [DatedSeries(f"s{k}", dates, 10 + k + np.sin(t * 1.57) + 0.1 * t) for k in range(4)]
    result = backtest(panel, horizon=8, windows=2, max_steps=2, max_time=None, num_samples=5,
                      ensemble=1)
    assert len(result["windows"]) == 2 * 4  # one record per origin and series
    with pytest.raises(DataError, match="too short for 2 windows"):
        backtest(panel[:1], horizon=8, windows=2, max_steps=2, max_time=None, num_samples=5)
