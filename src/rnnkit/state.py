"""Recurrent state helpers: structure-agnostic detach, and resets of batch rows.

A state is a tensor, a tuple/list of states, or None. LSTM states are ``(h, c)`` and GRU
states ``h``, each shaped [num_layers, B, H] with the batch on dim 1 (torch.nn's layout).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

State = Any  # Tensor | tuple[State, ...] | list[State] | None


def map_state(fn, state: State) -> State:
    """Apply ``fn`` to every tensor of a (possibly nested) state; None stays None."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    raise TypeError(f"a state must be a Tensor, a tuple/list of them or None, got {type(state)}")


def detach_state(state: State) -> State:
    """Cut the graph at a chunk boundary (truncated BPTT): same values, no history."""
    return map_state(Tensor.detach, state)


def reset_rows(state: State, rows: Tensor) -> State:
    """Zero the state of the batch rows where ``rows [B]`` is True: batch on dim 1 of
    ``[layers, B, H]`` tensors (torch.nn's layout), dim 0 of ``[B, H]`` ones. Zeros are
    torch.nn's default state; models with another default (a learned h0) take ``reset=``."""

    def reset(t: Tensor) -> Tensor:
        shape = [1] * t.dim()
        shape[1 if t.dim() == 3 else 0] = -1
        return t.masked_fill(rows.view(shape), 0.0)

    return map_state(reset, state)


def run_with_resets(run: Callable[[Tensor, State], tuple[Tensor, State]], inputs: Tensor,
                    state: State, reset: Tensor | None,
                    reset_steps: Sequence[int] | None = None) -> tuple[Tensor, State]:
    """``run(inputs [B, T, ...], state) -> (outputs [B, T, ...], state)`` for a module that
    takes no ``reset=``: run it segment by segment between the steps where some row resets
    (``reset [B, T]``), zeroing those rows' state at each segment start.

    ``reset_steps``: those steps when the caller knows them on the host (saves a device sync).
    """
    if reset is None:
        return run(inputs, state)
    if reset_steps is None:
        reset_steps = torch.nonzero(reset.any(0)).flatten().tolist()
    if not reset_steps:
        return run(inputs, state)
    outputs, bounds = [], sorted({0, *reset_steps, inputs.shape[1]})
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if start in reset_steps:
            state = reset_rows(state, reset[:, start])
        out, state = run(inputs[:, start:end], state)
        outputs.append(out)
    return torch.cat(outputs, dim=1), state


def accepts_reset(module: nn.Module) -> bool:
    """Whether ``module.forward`` takes a ``reset`` keyword (rnnkit.LSTM / GRU do)."""
    return _forward_takes_reset(type(module))


@functools.cache  # asked once per step by the trainer: inspect each class once
def _forward_takes_reset(cls: type) -> bool:
    try:
        params = inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False
    return "reset" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
