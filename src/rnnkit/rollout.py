"""Step-by-step runs of a SequenceModel: teacher-forced, free-running and open-loop forecasts,
and the errors of free-running rollouts from many origins (:func:`rollout_errors`).

Conventions (next-step prediction): ``inputs [B, T, ...]``, ``targets[:, t]`` is the value
after ``inputs[:, t]``; ``params[:, t]`` is the model's distribution for ``targets[:, t]``.
"Feeding back" means using ``model.feedback(params_t)`` as the next input instead of the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def rollout_errors(model: SequenceModel, series: Tensor, origins: Sequence[int], context: int,
                   horizon: int, batch_size: int = 512) -> Tensor:
    """Errors of free-running rollouts from many origins of one series, in data units.

    For each origin ``o`` (the index of the last observed value) the model reads the true
    values ``series[o - context + 1 : o + 1]``, then feeds back its own mean predictions
    for ``horizon`` steps (:func:`forecast` with ``mode="mean"``); no value after ``o`` is
    read. Runs under no_grad in eval mode (the model's mode is restored after).

    Args:
        series: ``[N, F]`` float values.
        origins: indices with ``context - 1 <= o <= N - 1 - horizon``.
        context: true values read before each rollout (>= 1).
        horizon: rolled steps (>= 1).
        batch_size: origins rolled at once (memory only; the numbers do not depend on it).

    Returns:
        ``[len(origins), horizon, F]``: ``errors[i, h - 1] = prediction - series[o_i + h]``.
    """
    if series.dim() != 2:
        raise ValueError(f"rollout_errors: series must be [N, F], got shape {tuple(series.shape)}")
    if context < 1:
        raise ValueError(f"rollout_errors: context must be >= 1, got {context}")
    if horizon < 1:
        raise ValueError(f"rollout_errors: horizon must be >= 1, got {horizon}")
    if batch_size < 1:
        raise ValueError(f"rollout_errors: batch_size must be >= 1, got {batch_size}")
    origins = [int(o) for o in origins]
    if not origins:
        raise ValueError("rollout_errors: origins is empty")
    last = series.shape[0] - 1 - horizon
    bad = [o for o in origins if not context - 1 <= o <= last]
    if bad:
        raise ValueError(f"rollout_errors: origin {bad[0]} is out of range: with context "
                         f"{context}, horizon {horizon} and {series.shape[0]} values, origins "
                         f"must be in [{context - 1}, {last}]")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([_errors(model, series, origins[i:i + batch_size], context, horizon)
                              for i in range(0, len(origins), batch_size)])
    finally:
        model.train(was_training)


def _errors(model: SequenceModel, series: Tensor, origins: list[int], context: int,
            horizon: int) -> Tensor:
    ctx = torch.stack([series[o - context + 1:o + 1] for o in origins])
    truth = torch.stack([series[o + 1:o + 1 + horizon] for o in origins])
    params, _ = forecast(model, ctx, horizon, mode="mean")
    return model.predict(params) - truth
