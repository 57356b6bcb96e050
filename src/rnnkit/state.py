"""Recurrent state helpers: structure-agnostic detach and selection by batch row.

A state is a tensor, a tuple/list of states, or None. LSTM states are ``(h, c)`` and GRU
states ``h``, each shaped [num_layers, B, H] with the batch on dim 1 (torch.nn's layout).
"""

from __future__ import annotations

import functools
import inspect
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


def where_rows(rows: Tensor, new: State, old: State, batch_dim: int = 1) -> State:
    """Per batch row: ``new`` where ``rows`` [B] is True, else ``old`` (same structure)."""
    if isinstance(new, Tensor):
        shape = [1] * new.dim()
        shape[batch_dim] = -1
        return torch.where(rows.view(shape), new, old)
    return type(new)(where_rows(rows, n, o, batch_dim) for n, o in zip(new, old))


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
