"""The one objective contract, and teacher forcing (the trainer's default).

An objective turns a batch into per-step losses; the trainer sums, masks and normalizes
them (O3) and carries the detached state to the next TBPTT chunk (O4)::

    per_step_loss [B, T], new_state, metrics = objective(model, batch, state)

with ``batch.inputs [B, T, ...]``, ``batch.targets [B, T, ...]`` (the next values),
``batch.mask [B, T]`` and ``batch.reset [B, T]`` (episode starts; both may be None), and a
``fresh`` batch starting from the model's default state. ``metrics`` maps names to floats or
0-dim tensors; the trainer logs them every step. Every objective derives from
:class:`Objective`: its ``step`` counts training calls and drives schedules, and its
``state_dict`` goes into checkpoints. ``loss_is_nll`` says the loss is a negative
log-likelihood in nats, so the trainer also reports bits per step.

In eval mode and in TBPTT burn-in (no gradient) every objective returns the plain 1-step
loss, so validation numbers compare across objectives. The multi-step ones (O6) are in
:mod:`rnnkit.objectives.open_loop`, :mod:`~rnnkit.objectives.scheduled_sampling` and
:mod:`~rnnkit.objectives.professor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.losses import activation_regularization, temporal_activation_regularization
from rnnkit.state import accepts_reset, run_with_resets

State = Any  # None, a tensor, or a tuple of tensors
# A metrics key: a scalar tensor the trainer adds to the loss it optimizes (a regularizer such
# as AR/TAR), kept out of the reported per-step loss.
PENALTY = "penalty"


def batch_fields(batch: Any, state: Any) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Any]:
    """``(inputs, targets, mask, reset, state)`` of a batch: a missing mask means every step
    counts, and a ``fresh`` batch (rnnkit.train.Batch) starts from the default state."""
    inputs, targets = batch.inputs, batch.targets
    mask = getattr(batch, "mask", None)
    if mask is None:
        mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
    if getattr(batch, "fresh", False):
        state = None
    return inputs, targets, mask.bool(), getattr(batch, "reset", None), state


def plain_call(model: nn.Module) -> bool:
    """Evaluation, or a TBPTT burn-in (no gradient): only the 1-step loss is wanted."""
    return not (model.training and torch.is_grad_enabled())


def masked(loss: Tensor, mask: Tensor) -> Tensor:
    """Zero the loss at padded steps (``where``, so a NaN in padding cannot leak)."""
    return torch.where(mask, loss, torch.zeros_like(loss))


def masked_mean(loss: Tensor, mask: Tensor) -> float:
    return float(masked(loss.detach(), mask).sum() / mask.sum().clamp_min(1))


def cat_states(states: list[Any]) -> Any:
    """Concatenate states (tensors ``[L, B, H]`` or tuples of them) along the batch axis."""
    if isinstance(states[0], Tensor):
        return torch.cat(states, dim=1)
    return type(states[0])(cat_states([s[i] for s in states]) for i in range(len(states[0])))


class Objective:
    """The base of every objective: the training-step counter that drives schedules, and
    resume. Subclasses implement ``__call__(model, batch, state) -> (per_step [B, T], state,
    metrics)`` (see the module doc)."""

    loss_is_nll = False  # True: the per-step loss is an NLL in nats (bits are reported too)

    def __init__(self) -> None:
        self.step = 0

    def advance(self, model: nn.Module) -> int:
        """The step to evaluate schedules at; counts only training calls."""
        step = self.step
        if not plain_call(model):
            self.step += 1
        return step

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


def forward_model(model: nn.Module, inputs: Tensor, state: State, batch: Any
                  ) -> tuple[Tensor, State]:
    """``model(inputs [B, T, ...], state) -> (outputs, state)`` over the batch, honouring its
    reset flags: passed as ``reset=`` to a model that takes them, emulated (segments, rows
    zeroed) for one that does not. A ``fresh`` batch starts from the default state."""
    if getattr(batch, "fresh", False):
        state = None
    reset = getattr(batch, "reset", None)
    if accepts_reset(model):
        return model(inputs, state, reset=reset)
    return run_with_resets(model, inputs, state, reset, getattr(batch, "reset_steps", None))


def auto_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for integer targets, mean squared error for float targets. [B, T]."""
    if not targets.is_floating_point():
        b, t = targets.shape[:2]
        return F.cross_entropy(
            outputs.reshape(b * t, -1), targets.reshape(b * t), reduction="none"
        ).view(b, t)
    if outputs.shape != targets.shape:
        raise ValueError(
            f"outputs {tuple(outputs.shape)} and float targets {tuple(targets.shape)} must have "
            "the same shape for the mean squared error"
        )
    err = (outputs - targets).square()
    return err.flatten(2).mean(dim=2) if err.dim() > 2 else err


LossFn = Callable[[Tensor, Tensor], Tensor]


def teacher_forcing_loss(model: nn.Module, batch: Any, state: State, loss: LossFn | None = None
                         ) -> tuple[Tensor, State, dict[str, float]]:
    """The 1-step loss ``loss_t = L(f(x_<=t), y_t)`` with true inputs, masked; ``[B, T]``.

    ``loss``: ``None`` takes ``model.loss`` (a :class:`rnnkit.models.SequenceModel`'s NLL) when
    the model has one, else :func:`auto_loss`."""
    inputs, targets, mask, _, state = batch_fields(batch, state)
    outputs, state = forward_model(model, inputs, state, batch)
    if loss is None:
        loss = getattr(model, "loss", auto_loss)
    return masked(loss(outputs, targets), mask), state, {}


class TeacherForcing(Objective):
    """Next-step prediction with the true inputs (the trainer's default objective).

    Args:
        loss: ``None`` (the model's own ``loss(outputs, targets)`` when it has one, else
            cross-entropy over the last dim for integer targets and mean squared error over the
            feature dims for float ones; ``"auto"`` forces the latter), or a callable
            ``loss(outputs [B, T, ...], targets [B, T, ...]) -> per_step [B, T]``.
        ar, tar: weights of activation regularization ``ar * mean(h^2)`` and temporal
            activation regularization ``tar * mean((h_t - h_{t-1})^2)`` of the last layer's
            outputs h (Merity et al. 2018, sec. 4.6; :mod:`rnnkit.losses`), for a model whose
            forward takes ``return_hidden=True`` (SequenceModel). In training they are
            returned as the ``PENALTY`` the trainer optimizes, and logged as ``ar``, ``tar``;
            the reported loss stays the NLL. h is the recurrent stack's output (after its own
            ``output_dropout``, when set): awd-lstm-lm takes TAR before that dropout.
    """

    def __init__(self, loss: str | LossFn | None = None, ar: float = 0.0,
                 tar: float = 0.0) -> None:
        super().__init__()
        if loss not in (None, "auto") and not callable(loss):
            raise ValueError(f"loss must be None, 'auto' or a callable, got {loss!r}")
        for name, value in (("ar", ar), ("tar", tar)):
            if not value >= 0:
                raise ValueError(f"TeacherForcing: {name} must be >= 0, got {value!r}")
        self.loss = auto_loss if loss == "auto" else loss
        self.ar, self.tar = ar, tar
        self.loss_is_nll = False  # known at the first call

    def __call__(self, model: nn.Module, batch: Any, state: State
                 ) -> tuple[Tensor, State, dict[str, float]]:
        self.advance(model)
        loss = self.loss
        if loss is None:
            loss = getattr(model, "loss", auto_loss)
        if loss is auto_loss:  # cross-entropy is an NLL, the mean squared error is not
            self.loss_is_nll = not batch.targets.is_floating_point()
        else:  # a model's own loss is its NLL; a caller's callable may be anything
            self.loss_is_nll = self.loss is None
        if (self.ar or self.tar) and not plain_call(model):
            return self._regularized(model, batch, state, loss)
        return teacher_forcing_loss(model, batch, state, loss)

    def _regularized(self, model: nn.Module, batch: Any, state: State, loss: LossFn
                     ) -> tuple[Tensor, State, dict[str, Any]]:
        inputs, targets, mask, reset, state = batch_fields(batch, state)
        outputs, state, hidden = model(inputs, state, reset=reset, return_hidden=True)
        zero = hidden.new_zeros(())
        ar = activation_regularization(hidden, self.ar, mask) if self.ar else zero
        tar = temporal_activation_regularization(hidden, self.tar, mask) if self.tar else zero
        metrics = {"ar": ar.detach(), "tar": tar.detach(), PENALTY: ar + tar}
        return masked(loss(outputs, targets), mask), state, metrics


NextStep = TeacherForcing  # the trainer's name for it before objectives were one package
