"""Lorenz-63: a generated chaotic series, a built-in data source beside the real files.

    dx/dt = sigma (y - x),   dy/dt = x (rho - z) - y,   dz/dt = x y - beta z

(Lorenz 1963, "Deterministic Nonperiodic Flow"), integrated with classic fourth-order
Runge-Kutta in float64 at a fixed step ``dt``. The start is a seeded random point, run for
``burn_in`` steps so the series begins on the attractor. The same arguments always give the
same array. Its largest Lyapunov exponent is about 0.9 per time unit, so errors double about
every 0.77 time units: long open-loop forecasts must drift, which is what multi-step losses
are for.
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("x", "y", "z")


def _deriv(s: np.ndarray, sigma: float, rho: float, beta: float) -> np.ndarray:
    x, y, z = s
    return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])


def lorenz63(n_steps: int = 10_000, dt: float = 0.01, every: int = 1, seed: int = 0,
             burn_in: int = 1_000, sigma: float = 10.0, rho: float = 28.0,
             beta: float = 8.0 / 3.0) -> np.ndarray:
    """``[n_steps, 3]`` float32 values (x, y, z), one row every ``every * dt`` time units.

    Example::

        values = lorenz63(5000, dt=0.01, every=3)   # 5000 rows, 0.03 time units apart
    """
    if n_steps < 1:
        raise ValueError(f"lorenz63: n_steps must be >= 1, got {n_steps}")
    if dt <= 0:
        raise ValueError(f"lorenz63: dt must be > 0, got {dt}")
    if every < 1:
        raise ValueError(f"lorenz63: every must be >= 1, got {every}")
    if burn_in < 0:
        raise ValueError(f"lorenz63: burn_in must be >= 0, got {burn_in}")
    rng = np.random.default_rng(seed)
    s = np.array([1.0, 1.0, 20.0]) + rng.normal(0.0, 1.0, size=3)
    out = np.empty((n_steps, 3), dtype=np.float64)
    for i in range(burn_in + n_steps * every):
        k1 = _deriv(s, sigma, rho, beta)
        k2 = _deriv(s + 0.5 * dt * k1, sigma, rho, beta)
        k3 = _deriv(s + 0.5 * dt * k2, sigma, rho, beta)
        k4 = _deriv(s + dt * k3, sigma, rho, beta)
        s = s + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        j = i - burn_in + 1
        if j > 0 and j % every == 0:
            out[j // every - 1] = s
    return out.astype(np.float32)
