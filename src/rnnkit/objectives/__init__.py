"""Training objectives (O6): how a model sees its inputs while it learns.

- :class:`TeacherForcing`: the 1-step loss (the trainer's default; ``NextStep`` is its old name).
- :class:`OpenLoop`: Chiappa et al. 2017, rollouts fed with the model's own predictions.
- :class:`ScheduledSampling`: Bengio et al. 2015.
- :class:`ProfessorForcing`: Lamb, Goyal et al. 2016.

Every one follows the contract of :mod:`rnnkit.objectives.base`; build any of them from
plain values with :func:`make_objective`.
"""

from __future__ import annotations

import inspect
from typing import Any

from rnnkit.objectives.base import (
    NextStep,
    Objective,
    TeacherForcing,
    auto_loss,
    forward_model,
    teacher_forcing_loss,
)
from rnnkit.objectives.open_loop import OpenLoop
from rnnkit.objectives.professor import ProfessorForcing, TrajectoryDiscriminator
from rnnkit.objectives.scheduled_sampling import ScheduledSampling

__all__ = [
    "NextStep",
    "Objective",
    "OpenLoop",
    "ProfessorForcing",
    "ScheduledSampling",
    "TeacherForcing",
    "TrajectoryDiscriminator",
    "auto_loss",
    "forward_model",
    "make_objective",
    "teacher_forcing_loss",
]


def make_objective(kind: str = "teacher", **params: Any) -> Objective:
    """An objective from plain values (for the CLI and config files).

    kinds: ``"teacher"`` (TeacherForcing), ``"open_loop"`` / ``"multi_step"`` (OpenLoop),
    ``"scheduled_sampling"``, ``"professor"`` / ``"professor_forcing"``. ``params`` are the
    class's keyword arguments; schedules may be numbers or strings like
    ``"linear:start=1,end=24,steps=2000"``. Unknown kinds or parameters raise ValueError.
    """
    kinds = {"teacher": TeacherForcing, "teacher_forcing": TeacherForcing,
             "open_loop": OpenLoop, "multi_step": OpenLoop,
             "scheduled_sampling": ScheduledSampling,
             "professor": ProfessorForcing, "professor_forcing": ProfessorForcing}
    key = kind.lower().replace("-", "_")
    if key not in kinds:
        raise ValueError(f"make_objective: unknown kind {kind!r}; use one of {sorted(kinds)}")
    cls = kinds[key]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"make_objective: {cls.__name__} has no parameter(s) {unknown}; "
            f"it takes {sorted(allowed)}"
        )
    return cls(**params)
