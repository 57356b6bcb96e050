import math

import numpy as np
import pytest
import torch

from rnnkit.data.episodes import sine_episodes
from rnnkit.data.errors import DataError


def test_shapes_dtype_and_targets_are_the_next_input():
    x, y = sine_episodes(7, 20, seed=0)
    assert x.shape == (7, 20, 1) and y.shape == (7, 20, 1)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    torch.testing.assert_close(y[:, :-1], x[:, 1:], rtol=0, atol=0)
    assert not torch.equal(y[:, -1], x[:, -1])


def test_seeds_reproduce_and_differ_and_a_generator_streams():
    a, ya = sine_episodes(8, 16, seed=1)
    b, yb = sine_episodes(8, 16, seed=1)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.allclose(a, sine_episodes(8, 16, seed=2)[0])
    stream = torch.Generator().manual_seed(1)
    first, _ = sine_episodes(8, 16, stream)
    second, _ = sine_episodes(8, 16, stream)
    assert torch.equal(first, a)  # the stream's first call is the seed's batch
    assert not torch.allclose(first, second)


def test_episodes_differ_from_each_other():
    x, _ = sine_episodes(50, 30, seed=0, noise=0.0)
    series = x[:, :, 0].numpy()
    assert len({tuple(np.round(row, 6)) for row in series}) == 50
    # the amplitudes spread over their range: the per-episode peaks are not all alike
    peaks = np.abs(series).max(axis=1)
    assert peaks.max() - peaks.min() > 0.5


def test_without_noise_each_episode_is_a_sine_in_its_ranges():
    """An independent check: a noiseless sine satisfies s[t+1] + s[t-1] = 2 cos(w) s[t],
    so w can be read back from the series and must lie in the frequency range."""
    x, y = sine_episodes(200, 24, seed=3, noise=0.0, amplitude=(0.5, 2.0),
                         frequency=(0.2, 0.8))
    s = torch.cat([x, y[:, -1:]], dim=1)[:, :, 0].double().numpy()
    assert np.abs(s).max() <= 2.0 + 1e-5
    for row in s:
        prev, mid, nxt = row[:-2], row[1:-1], row[2:]
        big = np.abs(mid) > 0.3
        ratio = (prev[big] + nxt[big]) / (2 * mid[big])
        assert np.ptp(ratio) < 1e-4  # one frequency for the whole episode
        w = math.acos(float(np.clip(ratio.mean(), -1, 1)))
        assert 0.2 - 1e-3 <= w <= 0.8 + 1e-3


def test_noise_sets_the_spread_around_the_clean_wave():
    gen_clean, _ = sine_episodes(400, 30, seed=5, noise=0.0)
    noisy, _ = sine_episodes(400, 30, seed=5, noise=0.1)
    residual = (noisy - gen_clean).double()
    assert abs(residual.std().item() - 0.1) < 0.005
    assert abs(residual.mean().item()) < 0.005


@pytest.mark.parametrize("kwargs, message", [
    ({"n_episodes": 0}, "n_episodes must be an int >= 1, got 0"),
    ({"length": 1}, "length must be an int >= 2, got 1"),
    ({"length": 2.5}, "length must be an int >= 2, got 2.5"),
    ({"noise": -0.1}, "noise must be a number >= 0, got -0.1"),
    ({"amplitude": (2.0, 1.0)}, r"amplitude must be a pair .* got \(2.0, 1.0\)"),
    ({"frequency": (-0.1, 0.5)}, r"frequency must be a pair .* got \(-0.1, 0.5\)"),
    ({"seed": "a"}, "seed must be an int or a torch.Generator, got 'a'"),
])
def test_bad_arguments_name_the_value(kwargs, message):
    args = {"n_episodes": 4, "length": 10, **kwargs}
    with pytest.raises(DataError, match=message):
        sine_episodes(**args)
