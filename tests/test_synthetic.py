import numpy as np
import pytest
import torch

from rnnkit.data.errors import DataError
from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem


def test_shapes_and_layouts():
    x, y = adding_problem(5, 12, seed=0)
    assert x.shape == (5, 12, 2) and y.shape == (5, 1)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    xt, yt = adding_problem(5, 12, seed=0, batch_first=False)
    assert xt.shape == (12, 5, 2)
    torch.testing.assert_close(xt.transpose(0, 1), x)
    torch.testing.assert_close(yt, y)


def test_two_markers_one_in_each_half_and_the_target_is_their_sum():
    length = 11
    x, y = adding_problem(200, length, seed=3)
    values, markers = x[..., 0].numpy(), x[..., 1].numpy()
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(1) == 2).all()
    half = length // 2
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
    # independent recomputation: the marked values, read with numpy
    expected = np.array([values[b][markers[b] == 1].sum() for b in range(200)])
    np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-6)
    assert 0 <= values.min() and values.max() < 1


def test_first_marker_covers_the_first_half_so_the_dependency_is_at_least_half():
    x, _ = adding_problem(4000, 10, seed=0)
    first = x[..., 1].argmax(1)
    assert set(first.tolist()) == set(range(5))  # every position of the first half occurs


def test_seeds_reproduce_and_differ_and_a_generator_streams():
    a, ya = adding_problem(8, 20, seed=1)
    b, yb = adding_problem(8, 20, seed=1)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ya, yb)
    assert not torch.equal(a, adding_problem(8, 20, seed=2)[0])
    gen = torch.Generator().manual_seed(1)
    first, _ = adding_problem(8, 20, gen)
    second, _ = adding_problem(8, 20, gen)
    torch.testing.assert_close(first, a)  # a generator seeded alike starts the same
    assert not torch.equal(first, second)  # and moves on


def test_the_constant_mean_prediction_scores_the_baseline():
    _, y = adding_problem(100_000, 4, seed=0)
    mse = float(((y - 1.0) ** 2).mean())
    assert abs(mse - ADDING_BASELINE_MSE) < 0.003


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0, "length": 10}, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 4, "length": 1}, "length must be an int >= 2, got 1"),
    ({"batch_size": 4, "length": 10.0}, "length must be an int >= 2, got 10.0"),
    ({"batch_size": True, "length": 10}, "batch_size must be an int >= 1, got True"),
    ({"batch_size": 4, "length": 10, "seed": "a"}, "seed must be an int or a torch.Generator"),
])
def test_bad_arguments_are_one_line_data_errors(kwargs, message):
    with pytest.raises(DataError, match=message) as err:
        adding_problem(**kwargs)
    assert "\n" not in str(err.value)
