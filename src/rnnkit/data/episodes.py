"""Many short sequences, each from a reset state: episodes of a noisy sine.

Each episode is ``length + 1`` observations of its own sine wave,

    s[t] = a * sin(w * t + phi) + e[t],     e[t] ~ N(0, noise^2),   t = 0 .. length

with the amplitude ``a ~ U(amplitude)``, the angular frequency ``w ~ U(frequency)`` (radians
per step) and the phase ``phi ~ U(0, 2 pi)`` drawn once per episode. The task is one-step-
ahead prediction: the input at step t is ``s[t]``, the target ``s[t + 1]``. A model starts
each episode knowing nothing of its wave, so its first predictions can only guess; it must
infer a, w and phi from the first few steps. Even a perfect model of the wave keeps an MSE of
about ``noise^2`` (the target's own noise) at every step.

The same seed always gives the same episodes; a ``torch.Generator`` passed instead of a seed
gives fresh episodes at each call (a training stream).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.data.errors import DataError

__all__ = ["sine_episodes"]

DEFAULT_AMPLITUDE = (0.5, 2.0)
DEFAULT_FREQUENCY = (0.2, 0.8)  # radians per step: periods of about 8 to 31 steps


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise DataError(f"sine_episodes: {name} must be an int >= {low}, got {value!r}")


def _check_range(name: str, value: tuple[float, float], low: float) -> None:
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok or not low <= value[0] <= value[1]:
        raise DataError(f"sine_episodes: {name} must be a pair (low, high) with "
                        f"{low} <= low <= high, got {value!r}")


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DataError(f"sine_episodes: seed must be an int or a torch.Generator, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def _uniform(n: int, bounds: tuple[float, float], gen: torch.Generator) -> Tensor:
    """``[n, 1]`` draws from U(bounds), float64."""
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * torch.rand(n, 1, generator=gen, dtype=torch.float64)


def sine_episodes(n_episodes: int, length: int, seed: int | torch.Generator = 0, *,
                  noise: float = 0.1,
                  amplitude: tuple[float, float] = DEFAULT_AMPLITUDE,
                  frequency: tuple[float, float] = DEFAULT_FREQUENCY,
                  ) -> tuple[Tensor, Tensor]:
    """``n_episodes`` short noisy sines: inputs ``[N, L, 1]`` and targets ``[N, L, 1]``,
    float32 on the CPU, batch first, where ``targets[:, t] == inputs[:, t + 1]`` for
    ``t < L - 1`` (the next observation; the last target is observation ``L``).

    ``noise`` is the observation noise's standard deviation; ``amplitude`` and ``frequency``
    (radians per step) the ranges each episode's wave is drawn from.

    Example::

        x, y = sine_episodes(1000, 32, seed=1)   # x, y [1000, 32, 1]
        stream = torch.Generator().manual_seed(0)
        x, y = sine_episodes(32, 32, stream)     # new episodes each call
    """
    _check_int("n_episodes", n_episodes, 1)
    _check_int("length", length, 2)
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise >= 0:
        raise DataError(f"sine_episodes: noise must be a number >= 0, got {noise!r}")
    _check_range("amplitude", amplitude, 0.0)
    _check_range("frequency", frequency, 0.0)
    gen = _generator(seed)
    a = _uniform(n_episodes, amplitude, gen)
    w = _uniform(n_episodes, frequency, gen)
    phi = _uniform(n_episodes, (0.0, 2 * math.pi), gen)
    t = torch.arange(length + 1, dtype=torch.float64)
    clean = a * torch.sin(w * t + phi)
    series = clean + noise * torch.randn(n_episodes, length + 1, generator=gen,
                                         dtype=torch.float64)
    series = series.to(torch.float32).unsqueeze(2)
    return series[:, :-1].contiguous(), series[:, 1:].contiguous()
