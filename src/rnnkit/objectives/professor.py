"""Professor forcing (Lamb, Goyal, Zhang, Zhang, Courville, Bengio 2016, "Professor Forcing:
A New Algorithm for Training Recurrent Networks", NeurIPS).

A discriminator D learns to tell the generator's hidden-state trajectories in teacher-forced
mode (true inputs) from those in free-running mode (its own predictions fed back); the
generator gets an extra loss that makes its free-running dynamics look teacher-forced:

    D loss:          -log D(h_tf) - log(1 - D(h_fr))                    (D's own optimizer)
    generator loss:  NLL_tf + weight * [-log D(h_fr)  (+ -log(1 - D(h_tf)) if match_teacher)]

D is a small bidirectional GRU over the trajectory, a masked mean over time, then an MLP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from rnnkit.objectives.base import (
    Objective,
    batch_fields,
    masked,
    masked_mean,
    plain_call,
    teacher_forcing_loss,
)
from rnnkit.rollout import free_run


class TrajectoryDiscriminator(nn.Module):
    """``h [B, T, H]``, ``mask [B, T]`` -> logit ``[B]`` that the trajectory is teacher-forced.

    BiGRU(H -> 2 * hidden) -> masked mean over t -> Linear -> ReLU -> Linear(1)."""

    def __init__(self, input_size: int, hidden_size: int = 32) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=True)
        self.classifier = nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.ReLU(),
                                        nn.Linear(hidden_size, 1))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        out, _ = self.rnn(h)
        weights = mask.to(out.dtype).unsqueeze(-1)
        pooled = (out * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.classifier(pooled).squeeze(-1)


class ProfessorForcing(Objective):
    """Professor forcing as an objective (see the module doc for the losses).

    Each training call: (1) runs the chunk teacher-forced (the 1-step NLL, the carried state)
    and free-running from the same state (first input true, then ``feedback`` of its own
    predictions; ``detach_feedback=True`` follows the paper, where gradients reach the
    generator through the hidden states, not the samples); (2) takes one step of D's own
    optimizer on the detached trajectories; (3) returns ``NLL_tf + weight * adversarial``, the
    per-row adversarial loss added at every valid step, so that the trainer's normalization
    (sum over time / T_max) leaves ``weight * adversarial`` for a full-length row.

    The discriminator and its optimizer are built on the first call (the hidden size is read
    from the trajectory). Metrics: ``pf_d_loss``, ``pf_d_acc``, ``pf_g_loss``, ``pf_nll``.
    ``state_dict`` holds both, for exact resume.
    """

    def __init__(self, weight: float = 1.0, discriminator_hidden: int = 32, lr: float = 1e-3,
                 feedback: str | None = None, detach_feedback: bool = True,
                 match_teacher: bool = False, tau: float = 1.0, seed: int | None = None,
                 optimizer: Callable[..., torch.optim.Optimizer] | None = None) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"ProfessorForcing: weight must be >= 0, got {weight}")
        if discriminator_hidden < 1:
            raise ValueError(
                f"ProfessorForcing: discriminator_hidden must be >= 1, got {discriminator_hidden}"
            )
        self.weight, self.discriminator_hidden, self.lr = weight, discriminator_hidden, lr
        self.feedback, self.detach_feedback = feedback, detach_feedback
        self.match_teacher, self.tau = match_teacher, tau
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.make_optimizer = optimizer or torch.optim.Adam
        self.discriminator: TrajectoryDiscriminator | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending: dict[str, Any] | None = None

    def build(self, hidden_size: int, device: torch.device | None = None) -> None:
        """Create D and its optimizer (done on the first call; call it before loading state)."""
        self.discriminator = TrajectoryDiscriminator(hidden_size, self.discriminator_hidden)
        self.discriminator.to(device)
        self.optimizer = self.make_optimizer(self.discriminator.parameters(), lr=self.lr)
        if self._pending is not None:
            self.discriminator.load_state_dict(self._pending["discriminator"])
            self.optimizer.load_state_dict(self._pending["optimizer"])
            self._pending = None

    def discriminator_step(self, h_tf: Tensor, h_fr: Tensor, mask: Tensor) -> dict[str, float]:
        """One optimizer step of D on detached trajectories; returns its loss and accuracy."""
        d = self.discriminator
        logit_tf, logit_fr = d(h_tf.detach(), mask), d(h_fr.detach(), mask)
        loss = (F.binary_cross_entropy_with_logits(logit_tf, torch.ones_like(logit_tf))
                + F.binary_cross_entropy_with_logits(logit_fr, torch.zeros_like(logit_fr)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        acc = 0.5 * float((logit_tf > 0).float().mean() + (logit_fr < 0).float().mean())
        return {"pf_d_loss": float(loss.detach()), "pf_d_acc": acc}

    def generator_loss(self, h_tf: Tensor, h_fr: Tensor, mask: Tensor) -> Tensor:
        """Per-row adversarial loss ``[B]``. It goes through a frozen copy of D, so D gets
        no gradient from it and D's later steps cannot change values its graph saved."""
        frozen = {k: v.detach().clone() for k, v in self.discriminator.named_parameters()}

        def d(h: Tensor) -> Tensor:
            return functional_call(self.discriminator, frozen, (h, mask))

        logit_fr = d(h_fr)
        loss = F.binary_cross_entropy_with_logits(logit_fr, torch.ones_like(logit_fr),
                                                  reduction="none")
        if self.match_teacher:
            logit_tf = d(h_tf)
            loss = loss + F.binary_cross_entropy_with_logits(
                logit_tf, torch.zeros_like(logit_tf), reduction="none")
        return loss

    def __call__(self, model: nn.Module, batch: Any, state: Any
                 ) -> tuple[Tensor, Any, dict[str, float]]:
        if plain_call(model):
            return teacher_forcing_loss(model, batch, state)
        self.advance(model)
        inputs, targets, mask, reset, state = batch_fields(batch, state)
        params, new_state, h_tf = model(inputs, state, reset=reset, return_hidden=True)
        nll = model.loss(params, targets)
        _, _, h_fr = free_run(model, inputs[:, 0], inputs.shape[1], state, truth=inputs,
                              reset=reset, mode=self.feedback, detach=self.detach_feedback,
                              generator=self.generator, tau=self.tau)
        if self.discriminator is None:
            self.build(h_tf.shape[-1], h_tf.device)
        metrics = self.discriminator_step(h_tf, h_fr, mask)
        adversarial = self.generator_loss(h_tf, h_fr, mask)
        loss = nll + self.weight * adversarial.unsqueeze(1)
        metrics.update(pf_g_loss=float(adversarial.detach().mean()), pf_nll=masked_mean(nll, mask))
        return masked(loss, mask), new_state, metrics

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "discriminator" not in state:
            return
        if self.discriminator is None:
            self._pending = {k: state[k] for k in ("discriminator", "optimizer")}
        else:
            self.discriminator.load_state_dict(state["discriminator"])
            self.optimizer.load_state_dict(state["optimizer"])
