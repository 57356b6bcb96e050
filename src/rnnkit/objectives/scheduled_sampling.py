"""Scheduled sampling (O6): Bengio et al. 2015, "Scheduled Sampling for Sequence Prediction
with Recurrent Neural Networks" (NeurIPS)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.objectives.base import (
    Objective,
    batch_fields,
    masked,
    plain_call,
    teacher_forcing_loss,
)
from rnnkit.objectives.schedules import ScheduleLike, make_schedule
from rnnkit.rollout import feed, mix_inputs


class ScheduledSampling(Objective):
    """Scheduled sampling (Bengio et al. 2015): at each step t > 0 of a chunk, each row is fed
    the model's own prediction for ``x_t`` with probability ``eps`` and the truth otherwise:

        x~_t = feedback(p_{t-1})  with prob. eps,   x_t  with prob. 1 - eps
        loss_t = -log p(y_t | x~_<=t)

    ``eps = 0`` is teacher forcing, ``eps = 1`` free running (from the chunk's first, true,
    input). An episode start (``reset``) is always fed the truth. ``eps`` is a number or a
    schedule (:mod:`rnnkit.objectives.schedules`; e.g. ``"inverse_sigmoid:k=300,start=0,end=1"`` is
    Bengio's decay of the truth probability 1 - eps). Bengio et al. feed samples and do not
    backpropagate through them: ``detach_feedback=True`` by default. The carried state is the
    one of this mixed run.
    """

    def __init__(self, eps: ScheduleLike = "inverse_sigmoid:k=300,start=0,end=1",
                 feedback: str | None = None, detach_feedback: bool = True, tau: float = 1.0,
                 seed: int | None = None) -> None:
        super().__init__()
        self.eps = make_schedule(eps)
        self._check(0)
        self.feedback, self.detach_feedback, self.tau = feedback, detach_feedback, tau
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def _check(self, step: int) -> float:
        eps = self.eps(step)
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"ScheduledSampling: eps must be in [0, 1], got {eps} at step {step}")
        return eps

    def __call__(self, model: nn.Module, batch: Any, state: Any
                 ) -> tuple[Tensor, Any, dict[str, float]]:
        if plain_call(model):
            return teacher_forcing_loss(model, batch, state)
        eps = self._check(self.advance(model))
        if eps == 0:  # teacher forcing, on the fast full-sequence path
            loss, state, _ = teacher_forcing_loss(model, batch, state)
            return loss, state, {"eps": 0.0, "fed_fraction": 0.0}
        inputs, targets, mask, reset, state = batch_fields(batch, state)
        batch_size, steps = mask.shape
        params, fed = [], 0.0
        x = inputs[:, 0]
        for t in range(steps):
            p, state = model.step(x, state, None if reset is None else reset[:, t])
            params.append(p)
            if t + 1 == steps:
                break
            use = torch.rand(batch_size, generator=self.generator).to(mask.device) < eps
            if reset is not None:
                use = use & ~reset[:, t + 1]
            fed += float(use.float().mean())
            own = feed(model, p, self.feedback, self.detach_feedback, self.generator, self.tau)
            x = mix_inputs(use, own, inputs[:, t + 1])
        loss = model.loss(torch.stack(params, 1), targets)
        metrics = {"eps": eps, "fed_fraction": fed / max(steps - 1, 1)}
        return masked(loss, mask), state, metrics
