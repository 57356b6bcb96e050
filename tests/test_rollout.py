"""rnnkit.rollout.rollout_errors: free-running rollout errors from many origins."""

import pytest
import torch

from rnnkit.models import SequenceModel
from rnnkit.rollout import forecast, rollout_errors


def model_and_series(features=2, n=40, seed=0):
    torch.manual_seed(seed)
    series = torch.randn(n, features).cumsum(0)
    model = SequenceModel.forecaster(features, hidden_size=8, train_data=series[:20])
    return model, series


def test_errors_are_a_mean_forecast_from_each_origin_minus_the_truth():
    model, series = model_and_series()
    errors = rollout_errors(model, series, [4, 9, 30], context=5, horizon=6)
    assert errors.shape == (3, 6, 2)
    model.eval()
    with torch.no_grad():
        params, _ = forecast(model, series[5:10].unsqueeze(0), 6, mode="mean")
        expected = model.predict(params)[0] - series[10:16]
    torch.testing.assert_close(errors[1], expected)


def test_no_value_after_the_origin_is_read():
    model, series = model_and_series()
    before = rollout_errors(model, series, [10], context=6, horizon=5)
    changed = series.clone()
    changed[11:] += 100.0  # only the truth the rollout is scored against
    after = rollout_errors(model, changed, [10], context=6, horizon=5)
    torch.testing.assert_close(after, before - 100.0)


def test_batching_does_not_change_the_numbers_and_the_mode_is_restored():
    model, series = model_and_series()
    model.train()
    whole = rollout_errors(model, series, list(range(3, 30, 2)), context=4, horizon=7)
    assert model.training
    parts = rollout_errors(model, series, list(range(3, 30, 2)), context=4, horizon=7,
                           batch_size=3)
    torch.testing.assert_close(parts, whole)


def test_bad_arguments_name_the_value():
    model, series = model_and_series(n=20)
    with pytest.raises(ValueError, match="origin 2 is out of range.*\\[4, 14\\]"):
        rollout_errors(model, series, [5, 2], context=5, horizon=5)
    with pytest.raises(ValueError, match="origin 15 is out of range"):
        rollout_errors(model, series, [15], context=5, horizon=5)
    with pytest.raises(ValueError, match="context must be >= 1, got 0"):
        rollout_errors(model, series, [5], context=0, horizon=5)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        rollout_errors(model, series, [5], context=3, horizon=0)
    with pytest.raises(ValueError, match="must be \\[N, F\\], got shape \\(20,\\)"):
        rollout_errors(model, series[:, 0], [5], context=3, horizon=2)
    with pytest.raises(ValueError, match="origins is empty"):
        rollout_errors(model, series, [], context=3, horizon=2)
