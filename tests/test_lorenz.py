import numpy as np
import pytest

from rnnkit.data.lorenz import lorenz63


def test_fixed_seed_gives_the_same_series_and_other_seeds_differ():
    a = lorenz63(500, seed=0)
    assert a.shape == (500, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, lorenz63(500, seed=0))
    assert not np.allclose(a, lorenz63(500, seed=1))


def test_series_satisfies_the_lorenz_equations():
    dt = 0.005
    s = lorenz63(400, dt=dt, seed=2).astype(np.float64)
    x, y, z = s.T
    central = (s[2:] - s[:-2]) / (2 * dt)  # independent check: finite differences
    rhs = np.stack([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z], 1)[1:-1]
    np.testing.assert_allclose(central, rhs, atol=0.05 * np.abs(rhs).max())


def test_every_subsamples_the_same_trajectory_and_stays_on_the_attractor():
    fine = lorenz63(300, dt=0.01, every=1, seed=0)
    coarse = lorenz63(100, dt=0.01, every=3, seed=0)
    np.testing.assert_array_equal(coarse, fine[2::3])
    long = lorenz63(3000, dt=0.01, seed=0)
    assert np.abs(long[:, :2]).max() < 30 and 0 < long[:, 2].min() and long[:, 2].max() < 55
    assert (long[:, 0] > 0).any() and (long[:, 0] < 0).any()  # visits both wings


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="dt must be > 0, got 0"):
        lorenz63(10, dt=0)
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        lorenz63(10, every=0)
