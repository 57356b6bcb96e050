"""Which code runs a call of ``rnnkit.LSTM`` / ``rnnkit.GRU``, and why: :func:`route`.

One function decides, reason by reason in a fixed order, and the first reason that applies
names the path. ``forward`` (and so ``step()``) runs what it says, ``benchmarks/cells.py``
prints it, and the fast loop's double-backward error quotes it. The paths:

- ``STREAMING_CELL``: one eval step without gradients, every step trick off: torch.nn's
  LSTMCell / GRUCell kernels, layer by layer (streaming generation).
- ``STREAMING_STEP``: the same with layer norm or zoneout: the reference step.
- ``TORCH_KERNEL``: every step trick off: torch.nn's fused kernel (one call for the stack;
  its cell kernels for one step without gradients in training).
- ``COMPILED_LOOP``: a step trick (layer norm, zoneout, recurrent dropout, resets), or a GRU
  on CPU: :mod:`rnnkit.fast_loop` with the compiled sequence ops (CPU float32/float64).
- ``EAGER_LOOP``: the same loop over the eager step where the kernels do not run (no
  compiler, ``RNNKIT_KERNELS=0``, CUDA, other dtypes). A CUDA backend plugs in here.
- ``REFERENCE_LOOP``: the autograd loop over :mod:`rnnkit.functional` (``fast=False``,
  torch.func transforms, per-step recurrent-dropout masks, an empty batch).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor

from rnnkit import fast_loop, kernels

STREAMING_CELL = "torch cell kernel (streaming step)"
STREAMING_STEP = "reference step (streaming step)"
TORCH_KERNEL = "torch kernel"
COMPILED_LOOP = "fast loop, compiled"
EAGER_LOOP = "fast loop, eager"
REFERENCE_LOOP = "reference loop"
STREAMING = (STREAMING_CELL, STREAMING_STEP)
LOOPS = (COMPILED_LOOP, EAGER_LOOP, REFERENCE_LOOP)


class Route(NamedTuple):
    """The path a call takes (one of this module's path names) and the reason it does."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def func_transform_active() -> bool:
    """Under torch.func transforms (vmap, grad, jvp) or forward-mode AD, the reference loop
    runs: the fast loop's autograd.Function has no batching or forward-mode rule, and torch's
    fused kernel no batching rule; the reference loop is plain differentiable ops."""
    return bool(torch._C._are_functorch_transforms_active()) or forward_ad._current_level >= 0


def streaming_step(x: Tensor) -> bool:
    """One time step of ``x [T, B, F]`` with no backward to pay for (``step()`` in
    generation): torch's cell kernels are the fastest path there."""
    return x.shape[0] == 1 and not torch.is_grad_enabled()


def route(module: Any, x: Tensor, *, reset: Tensor | None = None, plain: bool = True) -> Route:
    """Which path ``module(x)`` takes and why: the first reason that applies.

    Args:
        module: an ``rnnkit.LSTM`` or ``rnnkit.GRU``.
        x: the input, time-major [T, B, F].
        reset: the call's bool [T, B] reset mask (None: no resets); a reset before the first
            step only changes the initial state, so it does not call for a loop.
        plain: False for a call with ``lengths``, ``reset`` or a PackedSequence, which the
            streaming shortcut does not take.
    """
    if plain and reset is None and module._streaming_shortcut(x):
        if module.layer_norm or module._zoneout_rates_nonzero():
            return Route(STREAMING_STEP, "one eval step without gradients, layer norm or "
                                         "zoneout on")
        return Route(STREAMING_CELL, "one eval step without gradients")
    why = _loop_reason(module, x, reset)
    if why is None:
        return Route(TORCH_KERNEL, "every step trick off")
    return Route(*_which_loop(module, x, why))


def _loop_reason(module: Any, x: Tensor, reset: Tensor | None) -> str | None:
    """Why the call runs a time loop instead of torch's fused kernel, or None."""
    if module.layer_norm:
        return "layer_norm"
    if module._zoneout_rates_nonzero():
        return "zoneout"
    if reset is not None and bool(reset[1:].any()):
        return "resets inside the sequence"
    if module.recurrent_dropout > 0 and module.training:
        return "recurrent_dropout in training"
    if module._loop_is_faster(x):
        return "a GRU on CPU: the compiled loop beats torch's kernel"
    if func_transform_active():
        return "a torch.func transform or forward AD: torch's kernel has no rule for it"
    if torch.is_autocast_enabled(x.device.type):
        # torch's kernel runs the recurrence, state included, in bfloat16 or float16; the loop
        # keeps the state float32 and only the projections reduced
        return "autocast: the loop keeps the state in float32"
    return None


def _which_loop(module: Any, x: Tensor, why: str) -> tuple[str, str]:
    """Which of the loops runs, with ``why`` a loop runs and why this one."""
    if not module.fast:
        return REFERENCE_LOOP, f"{why}; fast=False"
    if func_transform_active():
        return REFERENCE_LOOP, f"{why}; a torch.func transform or forward AD"
    if (module.recurrent_dropout > 0 and module.training
            and module.recurrent_dropout_mode == "per_step"):
        return REFERENCE_LOOP, f"{why}; per-step recurrent-dropout masks"
    if x.shape[1] == 0:
        return REFERENCE_LOOP, f"{why}; an empty batch"
    like = x.new_empty(0, dtype=torch.promote_types(x.dtype, module.weight_hh_l0.dtype))
    if fast_loop.compiled_steps(like):
        return COMPILED_LOOP, why
    return EAGER_LOOP, f"{why}; {no_kernels_reason(like)}"


def no_kernels_reason(like: Tensor) -> str:
    """Why the compiled kernels do not run for tensors like ``like``."""
    if like.device.type != "cpu":
        return f"no compiled kernels on {like.device.type}"
    if like.dtype not in (torch.float32, torch.float64):
        return f"no compiled kernels for {like.dtype}"
    if kernels.switched_off():
        return "RNNKIT_KERNELS=0"
    return "the compiled kernels did not build"
