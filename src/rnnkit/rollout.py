"""Step-by-step runs of a SequenceModel: teacher-forced, free-running and open-loop forecasts.

Conventions (next-step prediction): ``inputs [B, T, ...]``, ``targets[:, t]`` is the value
after ``inputs[:, t]``; ``params[:, t]`` is the model's distribution for ``targets[:, t]``.
"Feeding back" means using ``model.feedback(params_t)`` as the next input instead of the truth.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.models import SequenceModel


def feed(model: SequenceModel, params: Tensor, mode: str | None = None, detach: bool = False,
         generator: torch.Generator | None = None, tau: float = 1.0) -> Tensor:
    """The next input made from the model's own prediction (data units); ``detach`` cuts the
    gradient through it (Bengio et al. 2015 do; Chiappa et al. 2017 train through it)."""
    value = model.feedback(params, mode=mode, generator=generator, tau=tau)
    return value.detach() if detach else value


def like_feedback(truth: Tensor, fed: Tensor) -> Tensor:
    """The true input in the fed-back value's form: token ids become one-hot weights when the
    feedback is soft (expected embedding / Gumbel-softmax)."""
    if fed.is_floating_point() and not truth.is_floating_point():
        return F.one_hot(truth.long(), fed.shape[-1]).to(fed.dtype)
    return truth


def mix_inputs(use_fed: Tensor, fed: Tensor, truth: Tensor) -> Tensor:
    """Per batch row: ``fed`` where ``use_fed [B]`` is True, else ``truth``."""
    truth = like_feedback(truth, fed)
    return torch.where(use_fed.view(-1, *([1] * (fed.dim() - 1))), fed, truth)


def teacher_forced_segments(model: SequenceModel, inputs: Tensor, state: Any = None,
                            reset: Tensor | None = None, cuts: list[int] | None = None
                            ) -> tuple[Tensor, list[Any], Any]:
    """Run the truth through the model in segments split at ``cuts`` (sorted steps in
    ``(0, T)``), to read the state at each cut without a slow step-by-step loop.

    Returns ``params [B, T, P]`` (the same numbers as ``model(inputs, state, reset)``), the
    states *before* each cut step (after step ``cut - 1``) and the state after the chunk."""
    steps = inputs.shape[1]
    bounds = [0, *(cuts or []), steps]
    params, states = [], []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if not 0 <= start < end <= steps:
            raise ValueError(f"teacher_forced_segments: cuts must be sorted in (0, {steps}), "
                             f"got {cuts}")
        p, state = model(inputs[:, start:end], state,
                         reset=None if reset is None else reset[:, start:end])
        params.append(p)
        states.append(state)
    return torch.cat(params, 1), states[:-1], states[-1]


def free_run(model: SequenceModel, first_input: Tensor, steps: int, state: Any = None,
             truth: Tensor | None = None, reset: Tensor | None = None, mode: str | None = None,
             detach: bool = False, generator: torch.Generator | None = None, tau: float = 1.0
             ) -> tuple[Tensor, Any, Tensor]:
    """Feed ``first_input [B, ...]``, then the model's own predictions, for ``steps`` steps.

    Where ``reset [B, steps]`` starts a new episode the true input ``truth[:, t]`` is fed
    instead (an episode's first value is observed, not predicted).
    Returns ``(params [B, steps, P], final state, RNN outputs [B, steps, H])``."""
    params, hidden = [], []
    x = first_input
    for t in range(steps):
        r = None if reset is None else reset[:, t]
        if t > 0 and r is not None and bool(r.any()):
            x = mix_inputs(~r, x, truth[:, t])
        p, state, h = model.step(x, state, r, return_hidden=True)
        params.append(p)
        hidden.append(h)
        x = feed(model, p, mode, detach, generator, tau)
    return torch.stack(params, 1), state, torch.stack(hidden, 1)


def forecast(model: SequenceModel, context: Tensor, horizon: int, state: Any = None,
             mode: str | None = None, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Any]:
    """Open-loop forecast: read ``context [B, C, ...]`` (teacher-forced), then roll.

    Returns ``params [B, horizon, P]``: ``params[:, h-1]`` is the distribution of the value
    ``h`` steps after the context's last one; values after the context are never read."""
    if horizon < 1:
        raise ValueError(f"forecast: horizon must be >= 1, got {horizon}")
    if context.shape[1] < 1:
        raise ValueError("forecast: the context must have at least one step")
    if context.shape[1] > 1:
        _, state = model(context[:, :-1], state)
    rolled, state, _ = free_run(model, context[:, -1], horizon, state, mode=mode,
                                generator=generator)
    return rolled, state
