"""Big CPU buffers of the fast loops, kept from one call to the next.

glibc gives every block over 32 MiB its own fresh ``mmap`` and unmaps it on free, so each
new [T, B, 4H] buffer page-faults once per 4 KiB on its first write. At hidden 512 (batch 32,
200 steps) that cost more than the arithmetic: the fused LSTM backward step took 314 ms of
page faults and 34 ms of math per call. Keeping the buffers removes that cost.

A kept buffer is handed out again only when nothing else holds its storage any more: the
autograd graph that saved it has been freed, and the caller dropped the output or gradient
that was a view of it. So reuse never aliases live data, with or without ``retain_graph``.
CUDA has its own caching allocator; there :func:`empty` is plain ``new_empty``.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

MIN_BYTES = 1 << 20  # below this, malloc's own free lists already reuse memory
MAX_IDLE_BYTES = 1 << 30  # idle buffers kept at most; beyond it the oldest are released

_storage_use_count = torch._C._storage_Use_Count
_lock = threading.Lock()
_buffers: list[Tensor] = []  # flat, oldest first


def _idle(buffer: Tensor) -> bool:
    # Held only by the list entry and by the temporary storage object made for this query.
    return _storage_use_count(buffer.untyped_storage()._cdata) <= 2


def empty(shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialized tensor of ``shape`` with ``like``'s dtype and device, reusing an idle
    kept buffer of the same size class when there is one."""
    numel = math.prod(shape)
    # A buffer made under torch.inference_mode is an inference tensor, which autograd may
    # neither save nor let be written outside it: such calls get buffers of their own.
    if (like.device.type != "cpu" or numel * like.element_size() < MIN_BYTES
            or torch.is_inference_mode_enabled()):
        return like.new_empty(shape)
    with _lock:
        for k, buffer in enumerate(_buffers):
            if (buffer.dtype == like.dtype and numel <= buffer.numel() <= 2 * numel
                    and _idle(buffer)):
                _buffers.append(_buffers.pop(k))  # most recently used last
                return buffer[:numel].view(shape)
        _release_idle(keep=MAX_IDLE_BYTES)
        buffer = like.new_empty(numel)
        _buffers.append(buffer)
        return buffer.view(shape)


def _release_idle(keep: int) -> None:
    """Drop idle buffers, oldest first, until at most ``keep`` bytes of them remain."""
    total = sum(b.numel() * b.element_size() for b in _buffers if _idle(b))
    k = 0
    while total > keep and k < len(_buffers):
        if _idle(_buffers[k]):
            total -= _buffers[k].numel() * _buffers[k].element_size()
            del _buffers[k]  # by position: list.remove would compare tensors elementwise
        else:
            k += 1


def clear() -> None:
    """Release every idle kept buffer."""
    with _lock:
        _release_idle(keep=0)
