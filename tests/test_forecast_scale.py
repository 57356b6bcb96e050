"""Series of any magnitude float32 holds are forecast at their own scale: the model's scaling
floors are absolute, so values of 1e-30 used to read as zeros and forecast 1e-8."""

import numpy as np
import pytest
import torch

from rnnkit.forecasting import DatedSeries, Forecaster, train_forecaster
from rnnkit.forecasting.windows import value_unit


def test_value_unit_is_a_power_of_ten_only_outside_the_safe_range():
    assert value_unit([np.array([1.0, 3.0]), np.array([500.0])]) == 1.0
    assert value_unit([np.zeros(5)]) == 1.0
    assert value_unit([np.array([2e-30, -4e-30])]) == pytest.approx(1e-30)
    assert value_unit([np.array([5e14, 7e14])]) == pytest.approx(1e14)


@pytest.mark.parametrize("magnitude", [1e-30, 1e-9, 1e20])
def test_a_series_is_forecast_at_its_own_magnitude(magnitude, tmp_path):
    torch.set_num_threads(1)
    t = np.arange(120)
    values = (10 + 3 * np.sin(2 * np.pi * t / 7) + 0.05 * t) * magnitude
    dates = (np.datetime64("2020-01-01") + t).astype("datetime64[m]")
    series = DatedSeries("s", dates, values)
    forecaster, _ = train_forecaster([series], horizon=7, max_steps=30, max_time=None)
    fc = forecaster.forecast(values, dates, 7, num_samples=50)
    # the last week's level, not 1e-8 (the old floor) nor anything of another magnitude
    assert np.all((fc.mean > 5 * magnitude) & (fc.mean < 20 * magnitude))
    lo, hi = fc.interval(0.8)
    assert np.all(hi - lo > 0) and np.all(hi - lo < 10 * magnitude)
    forecaster.save(tmp_path / "f.pt")
    again = Forecaster.load(tmp_path / "f.pt").forecast(values, dates, 7, num_samples=50)
    np.testing.assert_array_equal(again.mean, fc.mean)
