"""Data parallelism under torchrun: streams split across ranks, gradients averaged.

Each rank trains on its own B / world_size streams and the gradients are averaged across
ranks after backward, which is what DistributedDataParallel does. We average explicitly
(one flat all-reduce per step) instead of wrapping the model in DDP because a truncated-BPTT
step may call the model several times before one backward (burn-in, the carry split, and
multi-step objectives), which DDP's reducer does not allow. Since the loss is a mean over
the batch, every rank has the same number of rows and time steps, and the trainer divides by
the longest sequence of the global batch, the averaged gradient equals the single-process
gradient over the combined batch.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = [
    "init_from_env",
    "shutdown",
    "rank_and_world",
    "broadcast_module",
    "average_gradients",
    "all_reduce_sum",
    "all_reduce_max",
    "gather_to_rank0",
]


def init_from_env(device: torch.device) -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1), if not done already: NCCL
    for a process on a GPU, gloo on the CPU (whether or not the machine has GPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    """Leave the process group, if one was joined. Exiting without it left gloo's threads
    to the interpreter's teardown, where a rank now and then aborted ("terminate called
    without an active exception", SIGABRT) after its work was done."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast_module(module: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def average_gradients(params: Iterable[Tensor]) -> None:
    """Replace every gradient by its mean over the ranks (one flat all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, avg in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(avg)


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of `t` over ranks (in place; identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


def all_reduce_max(t: Tensor) -> Tensor:
    """Maximum of `t` over ranks (in place; identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """[obj of rank 0, obj of rank 1, ...] on rank 0, None elsewhere."""
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    # gather_object cannot carry tensors reliably; send torch.save bytes instead, and read
    # them back with weights_only like a checkpoint.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    out = [None] * world if rank == 0 else None
    dist.gather_object(buffer.getvalue(), out, dst=0)
    if rank != 0:
        return None
    return [torch.load(io.BytesIO(b), weights_only=True) for b in out]


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
