"""Recurrent dropout and zoneout: their masks and their train/eval semantics.

- Recurrent dropout (Semeniuta et al. 2016, "Recurrent Dropout without Memory Loss"): drop
  units of the *candidate* update, with one mask per sequence, so the state path itself is
  never dropped. In eval it is the identity.
- Zoneout (Krueger et al. 2017): each unit keeps its previous value with probability p at
  every step in training, ``s_t = m * s_{t-1} + (1 - m) * s_new`` with ``m ~ Bernoulli(p)``;
  in eval it uses the expectation ``p * s_{t-1} + (1 - p) * s_new``.
- Locked (variational) dropout (Gal & Ghahramani 2016): one mask per sequence, shared by
  every time step, on a layer's inputs or outputs. :class:`SequenceMasks` holds such masks
  across calls (chunks of a stream under truncated BPTT, ``step()`` calls) until a reset.
- Weight drop (DropConnect, Wan et al. 2013, on W_hh as in Merity et al. 2018):
  :func:`weight_drop`.
- Embedding dropout (Gal & Ghahramani 2016, sec. 4.2; awd-lstm-lm's ``embedded_dropout``):
  :func:`embedding_dropout` drops whole words.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import kernels, workspace


def check_rate(name: str, p: float) -> float:
    """Return ``p`` if it is a probability in [0, 1), else raise a ValueError naming it."""
    if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
    return float(p)


def bernoulli_(out: Tensor, p: float) -> Tensor:
    """Fill ``out`` with Bernoulli(p) draws (1 with probability p, else 0) and return it.

    On CPU, a counter-based generator (SplitMix64) seeded by one draw from torch's default
    generator, with p rounded to a multiple of 2^-32: the compiled ``csrc/masks.cpp`` where
    the kernels run (on every thread; one thread: about 8x faster than ``uniform_()``'s
    serial mt19937), else :func:`splitmix_bernoulli_`, its eager twin, which gives the same
    bits. So a seeded run draws the same masks with and without a compiler. Elsewhere
    ``uniform_() < p``. Either way ``torch.manual_seed`` makes it repeatable.
    """
    if out.device.type != "cpu":
        return out.uniform_().lt_(p)
    seed = int(torch.empty((), dtype=torch.int64).random_())
    if out.is_contiguous() and out.is_floating_point() and kernels.available():
        torch.ops.rnnkit.bernoulli_fill(out, float(p), seed)
        return out
    return splitmix_bernoulli_(out, p, seed)


_U64 = 1 << 64


def _int64(c: int) -> int:
    """The int64 with the bits of the uint64 ``c`` (torch has no unsigned 64-bit shifts)."""
    c %= _U64
    return c - _U64 if c >= 1 << 63 else c


_GOLDEN, _MIX1, _MIX2 = (_int64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9,
                                            0x94D049BB133111EB))
_CHUNK = 1 << 16  # pairs per pass: the int64 temporaries stay in cache (6 ms per 1.6M on 1 thread)


def _xor_shift_(z: Tensor, s: int, tmp: Tensor) -> Tensor:
    """``z ^= z >> s`` as a logical (unsigned) shift of int64 bits."""
    torch.bitwise_right_shift(z, s, out=tmp).bitwise_and_((1 << (64 - s)) - 1)
    return z.bitwise_xor_(tmp)


def splitmix_bernoulli_(out: Tensor, p: float, seed: int) -> Tensor:
    """``torch.ops.rnnkit.bernoulli_fill(out, p, seed)`` in eager PyTorch, bit for bit: pair k
    of elements takes the 64 bits of SplitMix64 at ``seed + (k + 1) * golden`` (int64
    arithmetic wraps as uint64's does), low half then high half, and an element is 1 where
    its 32 bits are below ``round(p * 2^32)``."""
    n = out.numel()
    threshold = math.floor(p * 4294967296.0 + 0.5)  # llround, as the kernel
    flat = out.view(-1) if out.is_contiguous() else torch.empty(n, dtype=out.dtype)
    pairs = (n + 1) // 2
    for a in range(0, pairs, _CHUNK):
        b = min(pairs, a + _CHUNK)
        z = torch.arange(a + 1, b + 1, dtype=torch.int64).mul_(_GOLDEN).add_(_int64(seed))
        tmp = torch.empty_like(z)
        _xor_shift_(z, 30, tmp).mul_(_MIX1)
        _xor_shift_(z, 27, tmp).mul_(_MIX2)
        _xor_shift_(z, 31, tmp)
        draws = torch.empty(b - a, 2, dtype=out.dtype)
        draws[:, 0] = z.bitwise_and(0xFFFFFFFF) < threshold  # the low half
        draws[:, 1] = torch.bitwise_right_shift(z, 32, out=tmp).bitwise_and_(0xFFFFFFFF) \
            < threshold
        end = min(n, 2 * b)
        flat[2 * a: end] = draws.view(-1)[: end - 2 * a]
    if not out.is_contiguous():
        out.copy_(flat.view(out.shape))
    return out


def dropout_mask(
    shape: tuple[int, ...], p: float, training: bool, like: Tensor
) -> Tensor | None:
    """An inverted-dropout mask (entries 0 or 1/(1-p)), or None when it would be all ones."""
    if p == 0.0 or not training:
        return None
    keep = bernoulli_(workspace.empty(shape, like), 1.0 - p)
    return keep.div_(1.0 - p)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout, ``x * mask`` with :func:`dropout_mask`: ``F.dropout``'s distribution,
    with rnnkit's mask on CPU (F.dropout draws it with ``bernoulli_``, a few times slower
    than the rest of a dropout layer's forward and backward together). Elsewhere F.dropout."""
    if x.device.type != "cpu":
        return F.dropout(x, p, training)
    mask = dropout_mask(tuple(x.shape), p, training, x)
    return x if mask is None else x * mask


def zoneout_keep(
    shape: tuple[int, ...], p: float, training: bool, like: Tensor
) -> Tensor | None:
    """How much of the previous state each unit keeps: Bernoulli(p) draws in training, the
    constant p in eval (the expectation), None when p is 0. Broadcastable to ``shape``."""
    if p == 0.0:
        return None
    if not training:
        return torch.full((1,) * len(shape), p, device=like.device, dtype=like.dtype)
    return bernoulli_(workspace.empty(shape, like), p)


def zoneout(previous: Tensor, new: Tensor, keep: Tensor | None) -> Tensor:
    """``keep * previous + (1 - keep) * new`` (identity on ``new`` when keep is None)."""
    if keep is None:
        return new
    # in the state's dtype: under autocast ``new`` may come out of a bfloat16 matmul, and the
    # recurrent state stays float32
    dtype = previous.dtype
    return torch.lerp(new.to(dtype), previous, keep.to(dtype))


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming it."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def bernoulli_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A fresh inverted-dropout mask (0 or 1/(1-p)) of ``shape`` in ``like``'s dtype/device.
    Unlike :func:`dropout_mask` it never comes from the workspace, so it may be kept."""
    keep = torch.empty(shape, device=like.device, dtype=like.dtype).bernoulli_(1.0 - p)
    return keep.div_(1.0 - p)


def weight_drop(weight: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect (Wan et al. 2013) as Merity et al. 2018 use it on W_hh: each entry of
    ``weight`` is zeroed with probability p and the rest scaled by 1/(1-p), one mask per call.

    The result is a function of the parameter, so the gradient reaches the raw weight as
    ``mask / (1 - p) * dL/dW_dropped``; the parameter itself is never modified (no
    awd-lstm-lm ``weight_hh_raw`` renaming: the state_dict keeps torch.nn's keys).
    Identity in eval or when p is 0. Any shape.
    """
    return dropout(weight, p, training)


def embedding_dropout(weight: Tensor, p: float, training: bool) -> Tensor:
    """Drop whole words (Gal & Ghahramani 2016, sec. 4.2; Merity et al. 2018, sec. 4.3).

    Each row of the embedding matrix ``weight`` [V, E] is zeroed with probability p and the
    kept rows are scaled by 1/(1-p); a dropped word's vector is then zero everywhere it
    occurs in the batch. Use as ``F.embedding(tokens, embedding_dropout(w, p, training))``.
    One mask per call; identity in eval or when p is 0.
    """
    check_rate("embedding dropout p", p)
    if p == 0.0 or not training:
        return weight
    rows = bernoulli_mask((weight.shape[0], 1), p, weight)
    return weight * rows


class SequenceMasks:
    """Locked-dropout masks of the streams a module is running, kept between calls.

    Each named site (``"input"``, ``"between_l1"``, ``"output"``, ``"recurrent_l0"``...)
    holds one [B, F] mask, drawn on first use and reused by later calls, so one mask covers
    a whole sequence even when it arrives in chunks (truncated BPTT) or one step at a time.
    A row is redrawn from the step where it is reset; :meth:`clear` (a call without a state:
    new sequences) drops them all, and a call with a different batch size, feature size,
    dtype or device draws new ones. Not part of the state_dict.
    """

    def __init__(self) -> None:
        self.masks: dict[str, Tensor] = {}

    def clear(self) -> None:
        self.masks.clear()

    def get(self, site: str, shape: tuple[int, int], p: float, like: Tensor,
            reset: Tensor | None = None) -> Tensor:
        """The mask of ``site`` for one call: [1, B, F], or [T, B, F] when rows restart
        inside the call (``reset``: bool [T, B]; a row's mask changes from its reset on)."""
        mask = self.masks.get(site)
        if (mask is None or tuple(mask.shape) != tuple(shape) or mask.dtype != like.dtype
                or mask.device != like.device):
            mask = bernoulli_mask(shape, p, like)
        if reset is None:
            self.masks[site] = mask
            return mask.unsqueeze(0)
        full = mask.expand(reset.shape[0], *shape).clone()
        for t in reset.any(1).nonzero()[:, 0].tolist():
            rows = reset[t].view(-1, 1)
            full[t:] = torch.where(rows, bernoulli_mask(shape, p, like), full[t:])
        self.masks[site] = full[-1].clone()
        return full
