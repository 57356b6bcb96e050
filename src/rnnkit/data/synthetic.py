"""Synthetic long-range memory tasks with a known dependency length.

The adding problem (Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", experiment 4;
the form of Le et al. 2015 and Arjovsky et al. 2016): each sequence of ``length`` steps has
two input channels,

    x[t, 0] ~ U(0, 1)                       a random value at every step
    x[t, 1] = 1 at two steps, 0 elsewhere   the markers

one marker in the first half of the sequence, one in the second half. The target, read
after the last step, is the sum of the two marked values. The first marked value must be
held for at least ``length // 2`` steps, so ``length`` sets the dependency length. A model
that ignores the markers and predicts the mean sum, 1.0, scores MSE 1/6 (the variance of a
sum of two U(0, 1)): :data:`ADDING_BASELINE_MSE`.

The same seed always gives the same batches; a ``torch.Generator`` passed instead of a seed
gives a fresh batch at each call (a training stream).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.data.errors import DataError

ADDING_BASELINE_MSE = 1.0 / 6.0
"""MSE of the constant prediction 1.0 (the mean target): what a model with no memory gets."""

__all__ = ["ADDING_BASELINE_MSE", "adding_problem"]


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise DataError(f"adding_problem: {name} must be an int >= {low}, got {value!r}")


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DataError(f"adding_problem: seed must be an int or a torch.Generator, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def adding_problem(batch_size: int, length: int, seed: int | torch.Generator = 0,
                   batch_first: bool = True) -> tuple[Tensor, Tensor]:
    """A batch of the adding problem: inputs ``[B, T, 2]`` (``[T, B, 2]`` when not
    ``batch_first``) and targets ``[B, 1]``, float32 on the CPU.

    Channel 0 holds the values, channel 1 the two markers (one in steps ``[0, T//2)``, one
    in ``[T//2, T)``); the target is the sum of the two marked values.

    Example::

        x, y = adding_problem(32, 100, seed=0)     # x [32, 100, 2], y [32, 1]
        stream = torch.Generator().manual_seed(0)
        x, y = adding_problem(32, 100, stream)     # a new batch each call
    """
    _check_int("batch_size", batch_size, 1)
    _check_int("length", length, 2)
    gen = _generator(seed)
    values = torch.rand(batch_size, length, generator=gen)
    half = length // 2
    first = torch.randint(0, half, (batch_size,), generator=gen)
    second = torch.randint(half, length, (batch_size,), generator=gen)
    rows = torch.arange(batch_size)
    markers = torch.zeros(batch_size, length)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = (values[rows, first] + values[rows, second]).unsqueeze(1)
    inputs = torch.stack([values, markers], dim=2)
    if not batch_first:
        inputs = inputs.transpose(0, 1).contiguous()
    return inputs, targets
