"""Batches for truncated BPTT (O4): parallel streams over long sequences, padded episodes.

Two layouts, both yielding `Batch` chunks of at most `chunk_length` new (scored) steps:

* `StreamBatcher`: one long sequence, or many documents joined end to end, cut into B
  contiguous streams (row b holds steps [b*S, (b+1)*S)); every step takes the next chunk
  of every stream, so the hidden state at the end of a chunk is the right starting state
  for the next one. Where a stream wraps around (a new epoch) or a document starts, the
  batch's `reset` flag is set and the state starts fresh.
* `PaddedBatcher`: many variable-length sequences (episodes). A group of B sequences is
  padded to its longest member, masked, and walked chunk by chunk with the state carried;
  the next group starts fresh.

Overlapping chunks: each window may start with a prefix of `overlap` steps that the
previous chunk already scored. The prefix either warms the state without gradient
(burn-in) or is part of the backpropagation window but not scored (k1/k2 TBPTT, Williams &
Peng 1990: every k1 = chunk_length steps, backpropagate k2 = chunk_length + overlap steps).
Either way the state carried to the next window is the one at `carry_at`, the step where
the next window starts, so no step is fed to the recurrence twice with the carried state.

Targets default to next-step prediction: inputs = x[:-1], targets = x[1:] of each sequence.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["Batch", "BatchSource", "StreamBatcher", "PaddedBatcher"]


@dataclass
class Batch:
    """One chunk of B rows and T steps (batch-first).

    Attributes:
        inputs: [B, T, ...] model inputs.
        targets: [B, T, ...] what the objective scores the outputs against.
        mask: [B, T] bool, True where a step is scored (False on padding and on a k1/k2
            prefix).
        reset: [B, T] bool, True at step t = row starts from the initial state before step
            t (a stream wraps, a document or episode starts).
        burn_in: the first `burn_in` steps only warm the state: no gradient, not scored.
        carry_at: the state *before* step `carry_at` is carried to the next batch (None =
            the state after the last step).
        fresh: every row starts from the initial state (no state to carry in).
        reset_steps: the steps t at which some row resets (known on the host, so callers
            never need a device sync to find them).
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    reset: Tensor
    burn_in: int = 0
    carry_at: int | None = None
    fresh: bool = False
    reset_steps: tuple[int, ...] = ()

    @property
    def length(self) -> int:
        """T, the number of steps in the chunk."""
        return self.inputs.shape[1]

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on `device`."""

        def move(t: Tensor) -> Tensor:
            return t.to(device, non_blocking=True)

        return dataclasses.replace(
            self,
            inputs=move(self.inputs),
            targets=move(self.targets),
            mask=move(self.mask),
            reset=move(self.reset),
        )

    def narrow(self, start: int, end: int) -> Batch:
        """Steps [start, end) of the batch, with burn_in/carry_at/reset_steps shifted."""

        def cut(t: Tensor) -> Tensor:
            return t[:, start:end]

        return Batch(
            inputs=cut(self.inputs),
            targets=cut(self.targets),
            mask=cut(self.mask),
            reset=cut(self.reset),
            burn_in=min(max(self.burn_in - start, 0), end - start),
            carry_at=None,
            fresh=self.fresh and start == 0,
            reset_steps=tuple(t - start for t in self.reset_steps if start <= t < end),
        )


class BatchSource(Protocol):
    """What the trainer reads batches from (both batchers below implement it)."""

    def next_batch(self, chunk_length: int) -> Batch:
        """The next training chunk (advances the position)."""
        ...

    def iter_epoch(self, chunk_length: int) -> Iterator[Batch]:
        """One pass over all the data from the start, without overlap (for evaluation)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _pairs(
    sequences: Tensor | Sequence[Tensor], targets: Tensor | Sequence[Tensor] | None
) -> tuple[list[Tensor], list[Tensor]]:
    """Split into (inputs, targets) per sequence; next-step pairs when targets is None."""
    seqs = [sequences] if isinstance(sequences, Tensor) else list(sequences)
    if not seqs:
        raise ValueError("expected at least one sequence, got an empty collection")
    if targets is None:
        for i, s in enumerate(seqs):
            if s.dim() < 1 or s.shape[0] < 2:
                raise ValueError(
                    f"sequence {i} has {s.shape[0] if s.dim() else 0} steps; next-step "
                    "prediction needs at least 2"
                )
        return [s[:-1] for s in seqs], [s[1:] for s in seqs]
    tgts = [targets] if isinstance(targets, Tensor) else list(targets)
    if len(tgts) != len(seqs):
        raise ValueError(f"expected {len(seqs)} target sequences, got {len(tgts)}")
    for i, (s, t) in enumerate(zip(seqs, tgts, strict=True)):
        if s.shape[0] != t.shape[0]:
            raise ValueError(
                f"sequence {i}: inputs have {s.shape[0]} steps but targets {t.shape[0]}"
            )
    return seqs, tgts


def _rank_rows(batch_size: int, rank: int, world_size: int) -> slice:
    if batch_size % world_size:
        raise ValueError(
            f"batch_size must be divisible by the number of processes {world_size}, "
            f"got {batch_size}"
        )
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def _window(
    inputs: Tensor,
    targets: Tensor,
    reset: Tensor,
    valid: Tensor,
    pos: int,
    chunk_length: int,
    overlap: int,
    overlap_grad: bool,
    reset_cols: list[int] | None = None,
) -> Batch:
    """The window [pos - prefix, pos + chunk_length) of [B, S] data, prefix <= overlap.

    reset_cols: the sorted columns of `reset` where some row resets, if known (saves a scan).
    """
    prefix = min(overlap, pos)
    start, end = pos - prefix, min(pos + chunk_length, inputs.shape[1])
    reset, mask = reset[:, start:end], valid[:, start:end]
    if start == 0 and not reset[:, 0].all():
        reset = reset.clone()
        reset[:, 0] = True
    if overlap_grad and prefix:
        mask = mask.clone()
        mask[:, :prefix] = False
    if reset_cols is None:
        steps = tuple(torch.nonzero(reset.any(dim=0)).flatten().tolist())
    else:
        first, last = bisect.bisect_left(reset_cols, start), bisect.bisect_left(reset_cols, end)
        steps = tuple(c - start for c in reset_cols[first:last])
        if start == 0 and (not steps or steps[0] != 0):
            steps = (0, *steps)
    carry = prefix + chunk_length - overlap
    return Batch(
        inputs=inputs[:, start:end],
        targets=targets[:, start:end],
        mask=mask,
        reset=reset,
        burn_in=0 if overlap_grad else prefix,
        carry_at=carry if overlap and carry < end - start else None,
        fresh=start == 0,
        reset_steps=steps,
    )


class StreamBatcher:
    """B parallel streams over one long sequence or documents joined end to end.

    Args:
        data: [N, ...] one sequence, or a list of documents [N_i, ...]. A document start
            resets the state of the stream it falls in.
        batch_size: B, the number of streams in the global batch (over all processes).
        targets: same structure as data; None = next-step prediction within each document.
        overlap: steps each window repeats from the previous one (burn-in or k2 - k1).
        overlap_grad: False = the overlap is a burn-in (no gradient); True = it is inside
            the backpropagation window but not scored (k1/k2 TBPTT).
        rank, world_size: this process's share of the streams under data parallelism.
        device: where the laid-out data lives (batches are views of it).

    Example:
        >>> b = StreamBatcher(torch.arange(1001), batch_size=4)
        >>> b.next_batch(100).inputs.shape
        torch.Size([4, 100])
    """

    def __init__(
        self,
        data: Tensor | Sequence[Tensor],
        batch_size: int,
        *,
        targets: Tensor | Sequence[Tensor] | None = None,
        overlap: int = 0,
        overlap_grad: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        _check_positive("batch_size", batch_size)
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        rows = _rank_rows(batch_size, rank, world_size)
        ins, tgts = _pairs(data, targets)
        starts = torch.zeros(sum(len(s) for s in ins), dtype=torch.bool)
        offset = 0
        for s in ins:
            starts[offset] = True
            offset += len(s)
        self.stream_length = len(starts) // batch_size
        if self.stream_length < 1:
            raise ValueError(
                f"batch_size must be at most the number of steps {len(starts)}, got {batch_size}"
            )
        used = self.stream_length * batch_size

        def lay(t: Tensor) -> Tensor:
            return t[:used].reshape(batch_size, self.stream_length, *t.shape[1:])[rows]

        self.inputs = lay(torch.cat(ins)).to(device)
        self.targets = lay(torch.cat(tgts)).to(device)
        self.reset = lay(starts)  # host: reset steps are read without a device sync
        self.valid = torch.ones_like(self.reset)
        self._reset_cols = torch.nonzero(self.reset.any(dim=0)).flatten().tolist()
        self.overlap, self.overlap_grad = overlap, overlap_grad
        self.rank, self.world_size = rank, world_size
        self.pos, self.epoch = 0, 0

    def _check_length(self, chunk_length: int) -> None:
        _check_positive("chunk_length", chunk_length)
        if chunk_length < self.overlap:
            raise ValueError(
                f"chunk_length must be >= the overlap {self.overlap} (burn_in or "
                f"backprop_length - chunk_length), got {chunk_length}"
            )
        if chunk_length > self.stream_length:
            raise ValueError(
                f"chunk_length must be <= the stream length {self.stream_length} "
                f"(steps / batch_size), got {chunk_length}; use fewer streams or shorter chunks"
            )

    def next_batch(self, chunk_length: int) -> Batch:
        self._check_length(chunk_length)
        if self.pos + chunk_length > self.stream_length:
            self.pos, self.epoch = 0, self.epoch + 1  # wrap: the tail is skipped this epoch
        batch = _window(
            self.inputs,
            self.targets,
            self.reset,
            self.valid,
            self.pos,
            chunk_length,
            self.overlap,
            self.overlap_grad,
            self._reset_cols,
        )
        self.pos += chunk_length
        return batch

    def iter_epoch(self, chunk_length: int) -> Iterator[Batch]:
        _check_positive("chunk_length", chunk_length)
        for pos in range(0, self.stream_length, chunk_length):
            yield _window(
                self.inputs,
                self.targets,
                self.reset,
                self.valid,
                pos,
                chunk_length,
                0,
                False,
                self._reset_cols,
            )

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "epoch": self.epoch, "stream_length": self.stream_length}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["stream_length"] != self.stream_length:
            raise ValueError(
                f"the checkpoint's streams have {state['stream_length']} steps, this data "
                f"{self.stream_length}: resume with the same data and batch_size"
            )
        self.pos, self.epoch = state["pos"], state["epoch"]


class PaddedBatcher:
    """Groups of B variable-length sequences, padded and masked, walked chunk by chunk.

    Sequences are shuffled every epoch (seeded, so resuming is exact); an epoch drops the
    last group if it has fewer than B sequences, so every training batch has B rows.

    Args:
        sequences: list of [L_i, ...] tensors.
        batch_size: B, sequences per global batch.
        targets, overlap, overlap_grad, rank, world_size, device: as for StreamBatcher.
        shuffle: reshuffle the order every epoch.
        seed: seed of the shuffling.
    """

    def __init__(
        self,
        sequences: Sequence[Tensor],
        batch_size: int,
        *,
        targets: Sequence[Tensor] | None = None,
        overlap: int = 0,
        overlap_grad: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        _check_positive("batch_size", batch_size)
        _rank_rows(batch_size, rank, world_size)
        self.inputs, self.targets = _pairs(sequences, targets)
        if len(self.inputs) < batch_size:
            raise ValueError(
                f"batch_size must be at most the number of sequences {len(self.inputs)}, "
                f"got {batch_size}"
            )
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.overlap, self.overlap_grad = overlap, overlap_grad
        self.shuffle, self.seed, self.device = shuffle, seed, device
        self.epoch, self.group, self.pos = 0, 0, 0
        self._current: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def _order(self, epoch: int) -> Tensor:
        if not self.shuffle:
            return torch.arange(len(self.inputs))
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(len(self.inputs), generator=gen)

    def _pad(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Padded [b, L_max, ...] inputs, targets, reset, valid of this rank's rows."""
        lengths = torch.tensor([len(self.inputs[i]) for i in index.tolist()])
        longest = int(lengths.max())  # over the global group, so all ranks agree on T
        mine = torch.tensor_split(index, self.world_size)[self.rank].tolist()
        mine_len = torch.tensor([len(self.inputs[i]) for i in mine])

        def pad(seqs: list[Tensor]) -> Tensor:
            out = seqs[0].new_zeros(len(seqs), longest, *seqs[0].shape[1:])
            for row, s in enumerate(seqs):
                out[row, : len(s)] = s
            return out.to(self.device)

        valid = torch.arange(longest)[None, :] < mine_len[:, None]
        reset = torch.zeros_like(valid)
        return (
            pad([self.inputs[i] for i in mine]),
            pad([self.targets[i] for i in mine]),
            reset,
            valid,
        )

    def _groups_per_epoch(self) -> int:
        return len(self.inputs) // self.batch_size

    def next_batch(self, chunk_length: int) -> Batch:
        _check_positive("chunk_length", chunk_length)
        if chunk_length < self.overlap:
            raise ValueError(
                f"chunk_length must be >= the overlap {self.overlap}, got {chunk_length}"
            )
        if self._current is not None and self.pos >= self._current[0].shape[1]:
            self._current, self.pos, self.group = None, 0, self.group + 1
        if self._current is None:
            if self.group >= self._groups_per_epoch():
                self.epoch, self.group = self.epoch + 1, 0
            b = self.batch_size
            self._current = self._pad(
                self._order(self.epoch)[self.group * b : (self.group + 1) * b]
            )
        batch = _window(*self._current, self.pos, chunk_length, self.overlap, self.overlap_grad)
        self.pos += chunk_length
        return batch

    def iter_epoch(self, chunk_length: int) -> Iterator[Batch]:
        _check_positive("chunk_length", chunk_length)
        order = torch.arange(len(self.inputs))
        for first in range(0, len(order), self.batch_size):
            index = order[first : first + self.batch_size]
            if len(torch.tensor_split(index, self.world_size)[self.rank]) == 0:
                continue
            padded = self._pad(index)
            for pos in range(0, padded[0].shape[1], chunk_length):
                yield _window(*padded, pos, chunk_length, 0, False)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "group": self.group,
            "pos": self.pos,
            "started": self._current is not None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.group, self.pos = state["epoch"], state["group"], state["pos"]
        self._current = None
        if state["started"]:
            b = self.batch_size
            self._current = self._pad(
                self._order(self.epoch)[self.group * b : (self.group + 1) * b]
            )
