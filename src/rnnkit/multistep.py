"""Training objectives for generative sequence models (SPEC O6): how the model sees its inputs.

Every objective follows the trainer's contract (docs/internal-api.md)::

    per_step_loss [B, T], new_state, metrics = objective(model, batch, state)

with ``batch.inputs [B, T, ...]``, ``batch.targets [B, T, ...]`` (the next values),
``batch.mask [B, T]`` and ``batch.reset [B, T]`` (episode starts; both may be None). The
trainer sums, masks and normalizes the per-step loss (O3) and detaches ``new_state`` for the
next TBPTT chunk. ``model`` is a :class:`rnnkit.models.SequenceModel`.

Each training call advances the objective's ``step``, which drives its schedules (one call
per optimizer step, two with k1/k2 TBPTT, which splits the window at ``carry_at``). In eval
mode and in TBPTT burn-in (no gradient) every objective returns the plain 1-step loss, so
validation numbers compare across objectives. A ``fresh`` batch starts from the model's
default state, and ``reset`` flags start rows fresh mid-chunk.

- :class:`TeacherForcing`: the 1-step loss.
- :class:`OpenLoop`: Chiappa et al. 2017, "Recurrent Environment Simulators" (ICLR).
- :class:`ScheduledSampling`: Bengio et al. 2015, "Scheduled Sampling for Sequence
  Prediction with Recurrent Neural Networks" (NeurIPS).
- :class:`rnnkit.professor.ProfessorForcing`: Lamb, Goyal et al. 2016, "Professor Forcing"
  (NeurIPS).

Build any of them from plain values with :func:`make_objective`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.rollout import feed, mix_inputs, teacher_forced_segments
from rnnkit.schedules import ScheduleLike, make_schedule


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
    """Shared bookkeeping: the training-step counter that drives schedules, and resume."""

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


def teacher_forcing_loss(model: nn.Module, batch: Any, state: Any
                         ) -> tuple[Tensor, Any, dict[str, float]]:
    """The 1-step loss: ``loss_t = -log p(y_t | x_<=t)`` with true inputs; ``[B, T]``."""
    inputs, targets, mask, reset, state = batch_fields(batch, state)
    params, state = model(inputs, state, reset=reset)
    return masked(model.loss(params, targets), mask), state, {}


class TeacherForcing(Objective):
    """Next-step prediction with the true inputs (the trainer's default objective)."""

    loss_is_nll = True  # the trainer then reports bits per step

    def __call__(self, model: nn.Module, batch: Any, state: Any
                 ) -> tuple[Tensor, Any, dict[str, float]]:
        self.advance(model)
        return teacher_forcing_loss(model, batch, state)


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


class ScheduledSampling(Objective):
    """Scheduled sampling (Bengio et al. 2015): at each step t > 0 of a chunk, each row is fed
    the model's own prediction for ``x_t`` with probability ``eps`` and the truth otherwise:

        x~_t = feedback(p_{t-1})  with prob. eps,   x_t  with prob. 1 - eps
        loss_t = -log p(y_t | x~_<=t)

    ``eps = 0`` is teacher forcing, ``eps = 1`` free running (from the chunk's first, true,
    input). An episode start (``reset``) is always fed the truth. ``eps`` is a number or a
    schedule (:mod:`rnnkit.schedules`; e.g. ``"inverse_sigmoid:k=300,start=0,end=1"`` is
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


def make_objective(kind: str = "teacher", **params: Any) -> Objective:
    """An objective from plain values (for the CLI and config files).

    kinds: ``"teacher"`` (TeacherForcing), ``"open_loop"`` / ``"multi_step"`` (OpenLoop),
    ``"scheduled_sampling"``, ``"professor"`` / ``"professor_forcing"``. ``params`` are the
    class's keyword arguments; schedules may be numbers or strings like
    ``"linear:start=1,end=24,steps=2000"``. Unknown kinds or parameters raise ValueError.
    """
    from rnnkit.professor import ProfessorForcing

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
