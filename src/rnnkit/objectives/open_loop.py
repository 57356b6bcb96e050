"""Open-loop multi-step loss (O6): Chiappa et al. 2017, "Recurrent Environment Simulators"
(ICLR)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.objectives.base import (
    Objective,
    batch_fields,
    cat_states,
    masked,
    masked_mean,
    plain_call,
    teacher_forcing_loss,
)
from rnnkit.objectives.schedules import ScheduleLike, make_schedule
from rnnkit.rollout import feed, teacher_forced_segments


class OpenLoop(Objective):
    """Open-loop multi-step loss (Chiappa et al. 2017), mixed with the 1-step loss.

    From every start ``s`` (``s = context, context + stride, ...`` in the chunk), the model
    reads the true inputs up to ``x_s`` (the context; the carried TBPTT state holds the steps
    before the chunk), then rolls ``K - 1`` more steps feeding back its own predictions
    (``feedback``: the mean or a reparameterized sample for continuous data; a sample, the
    expected embedding or Gumbel-softmax weights for tokens) and scores every rolled step:

        L_K(s) = 1/|V_s| * sum_{k in V_s} -log p(y_{s+k} | x_<=s, yhat_{s+1..s+k})
        loss_t = (1 - w) * L_1(t) + w * L_K(t)       (L_K(t) = L_1(t) where t is no start)

    ``V_s`` holds ``k = 0..K-1`` while ``s + k`` is inside the chunk, unmasked and not past an
    episode start (``reset``); ``k = 0`` is the 1-step loss, so ``K = 1`` is teacher forcing.
    Gradients flow through the fed-back predictions unless ``detach_feedback``. All starts
    roll in parallel as one batch of ``B * S`` rows: K - 1 extra sequential steps.

    Args:
        horizon: K >= 1, or a schedule of it (rounded), e.g. ``"linear:start=1,end=24,steps=2000"``.
        weight: w in [0, 1], or a schedule.
        context: first start in the chunk (true steps read before any rollout).
        stride: distance between starts (1 = every step).
        feedback: the head's feedback mode (None = the head's default).
    """

    def __init__(self, horizon: ScheduleLike = 8, weight: ScheduleLike = 0.5, context: int = 0,
                 stride: int = 1, feedback: str | None = None, detach_feedback: bool = False,
                 tau: float = 1.0, seed: int | None = None) -> None:
        super().__init__()
        if context < 0:
            raise ValueError(f"OpenLoop: context must be >= 0, got {context}")
        if stride < 1:
            raise ValueError(f"OpenLoop: stride must be >= 1, got {stride}")
        self.horizon, self.weight = make_schedule(horizon), make_schedule(weight)
        self._check(0)
        self.context, self.stride = context, stride
        self.feedback, self.detach_feedback, self.tau = feedback, detach_feedback, tau
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def _check(self, step: int) -> tuple[int, float]:
        horizon, weight = round(self.horizon(step)), self.weight(step)
        if horizon < 1:
            raise ValueError(f"OpenLoop: horizon must be >= 1, got {horizon} at step {step}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"OpenLoop: weight must be in [0, 1], got {weight} at step {step}")
        return horizon, weight

    def rollout_losses(self, model: nn.Module, batch: Any, state: Any, horizon: int
                       ) -> tuple[Tensor, Tensor, Any]:
        """``(L_1 [B, T], L_K [B, T], state after the chunk)`` (unmasked; see class doc)."""
        inputs, targets, mask, reset, state = batch_fields(batch, state)
        batch_size, steps = mask.shape
        # A start s rolls from the state after step s; the last step has nothing to roll.
        starts = list(range(self.context, steps - 1, self.stride)) if horizon > 1 else []
        params, states, final = teacher_forced_segments(model, inputs, state, reset,
                                                        [s + 1 for s in starts])
        one_step = model.loss(params, targets)
        multi = one_step.clone()
        if not starts:
            return one_step, multi, final

        def rows(x: Tensor) -> Tensor:  # [B, S, ...] -> [S * B, ...], start-major
            return x.transpose(0, 1).reshape(-1, *x.shape[2:])

        rolled_state = cat_states(states)
        starts = torch.tensor(starts, device=mask.device)
        x = feed(model, rows(params[:, starts]), self.feedback, self.detach_feedback,
                 self.generator, self.tau)
        alive = rows(mask[:, starts])
        total = torch.where(alive, rows(one_step[:, starts]), 0.0)
        count = alive.to(total.dtype)
        for k in range(1, horizon):
            t = (starts + k).clamp(max=steps - 1)
            alive = alive & (starts + k < steps).repeat_interleave(batch_size) & rows(mask[:, t])
            if reset is not None:
                alive = alive & ~rows(reset[:, t])
            if not bool(alive.any()):
                break
            p, rolled_state = model.step(x, rolled_state)
            total = total + torch.where(alive, model.loss(p, rows(targets[:, t])), 0.0)
            count = count + alive.to(count.dtype)
            x = feed(model, p, self.feedback, self.detach_feedback, self.generator, self.tau)
        per_start = (total / count.clamp_min(1)).view(len(starts), batch_size).transpose(0, 1)
        multi[:, starts] = per_start
        return one_step, multi, final

    def __call__(self, model: nn.Module, batch: Any, state: Any
                 ) -> tuple[Tensor, Any, dict[str, float]]:
        if plain_call(model):
            return teacher_forcing_loss(model, batch, state)
        horizon, weight = self._check(self.advance(model))
        if horizon == 1 or weight == 0:  # the 1-step loss, on the fast full-sequence path
            loss, state, _ = teacher_forcing_loss(model, batch, state)
            return loss, state, {"horizon": float(horizon), "multistep_weight": weight}
        mask = batch_fields(batch, state)[2]
        one_step, multi, state = self.rollout_losses(model, batch, state, horizon)
        loss = (1.0 - weight) * one_step + weight * multi
        metrics = {"loss_1step": masked_mean(one_step, mask),
                   "loss_multistep": masked_mean(multi, mask),
                   "horizon": float(horizon), "multistep_weight": weight}
        return masked(loss, mask), state, metrics
