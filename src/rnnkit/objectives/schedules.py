"""Schedules: a number as a function of the training step (for eps, horizons, loss weights).

A schedule is any callable ``step -> float``. The decays of Bengio et al. (2015, "Scheduled
Sampling for Sequence Prediction with Recurrent Neural Networks", sec. 2.4) are written for
eps_i, the probability of feeding the *truth*, falling from 1; rnnkit's scheduled sampling
uses eps = the probability of feeding the model's *own prediction* = 1 - eps_i, so those
schedules rise from ``start=0`` to ``end=1``. Every class takes ``start`` and ``end``:

    Linear:         v(i) = start + (end - start) * min(i / steps, 1)
    Exponential:    v(i) = end + (start - end) * rate^i                  (0 < rate < 1)
    InverseSigmoid: v(i) = end + (start - end) * k / (k + exp(i / k))   (k >= 1)

With ``start=1, end=0`` they are exactly Bengio's eps_i (linear with slope 1/steps, k^i,
k / (k + exp(i / k))).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Schedule = Callable[[int], float]
ScheduleLike = float | int | str | Mapping[str, Any] | Schedule


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, step: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class Linear:
    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"Linear schedule: steps must be >= 1, got {self.steps}")

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * min(step / self.steps, 1.0)


@dataclass(frozen=True)
class Exponential:
    rate: float
    start: float = 1.0
    end: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"Exponential schedule: rate must be in (0, 1), got {self.rate}")

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * self.rate**step


@dataclass(frozen=True)
class InverseSigmoid:
    k: float
    start: float = 1.0
    end: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1.0:
            raise ValueError(f"InverseSigmoid schedule: k must be >= 1, got {self.k}")

    def __call__(self, step: int) -> float:
        # k / (k + exp(i/k)) written as 1 / (1 + exp(i/k - log k)) so large i cannot overflow.
        z = step / self.k - math.log(self.k)
        frac = math.exp(-z) / (1.0 + math.exp(-z)) if z > 0 else 1.0 / (1.0 + math.exp(z))
        return self.end + (self.start - self.end) * frac


SCHEDULES = {"constant": Constant, "linear": Linear, "exponential": Exponential,
             "inverse_sigmoid": InverseSigmoid}


def _parse_spec(text: str) -> dict[str, Any]:
    """``"linear:start=0,end=1,steps=1000"`` -> ``{"kind": "linear", "start": 0.0, ...}``."""
    kind, _, rest = text.partition(":")
    spec: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"schedule {text!r}: expected key=value, got {item!r}")
        spec[key.strip()] = float(value)
    return spec


def make_schedule(value: ScheduleLike) -> Schedule:
    """A schedule from a number (constant), a callable, a mapping ``{"kind": ..., **args}``
    or a string ``"kind:key=value,..."``; kinds: constant, linear, exponential,
    inverse_sigmoid."""
    if isinstance(value, bool):
        raise ValueError(f"make_schedule: expected a number or a schedule, got {value!r}")
    if isinstance(value, (int, float)):
        return Constant(float(value))
    if isinstance(value, str):
        value = _parse_spec(value)
    if isinstance(value, Mapping):
        args = dict(value)
        kind = args.pop("kind", None)
        if kind not in SCHEDULES:
            raise ValueError(f"make_schedule: unknown kind {kind!r}; use one of {list(SCHEDULES)}")
        if "steps" in args:
            args["steps"] = int(args["steps"])
        try:
            return SCHEDULES[kind](**args)
        except TypeError as err:
            raise ValueError(f"make_schedule: bad arguments {args} for {kind!r}: {err}") from None
    if callable(value):
        return value
    raise ValueError(f"make_schedule: expected a number or a schedule, got {value!r}")
