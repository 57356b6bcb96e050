"""The math of one recurrent step: no parameters, no loop.

Gate order and conventions are torch.nn's, so weights move between rnnkit and torch.nn
unchanged:

- LSTM gates are ``i, f, g, o`` (input, forget, candidate, output) along the last dim.
- GRU gates are ``r, z, n`` (reset, update, candidate) and ``h' = (1 - z) * n + z * h``:
  ``z`` is the fraction of the previous state that is kept.

The input projection ``W_ih x + b_ih`` does not depend on the state, so callers compute it
for the whole sequence at once and pass one step of it (``input_gates``) here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Norm = tuple[Tensor, Tensor | None] | None
"""A layer norm's (gain, bias), or None for no normalization."""


def layer_norm(x: Tensor, norm: Norm, eps: float = 1e-5) -> Tensor:
    """LN(x) = gain * (x - mean(x)) / sqrt(var(x) + eps) + bias over the last dim (Ba 2016)."""
    if norm is None:
        return x
    gain, bias = norm
    # the gain's shape, not x's: ONNX export traces x's shape as a tensor, and layer_norm's
    # normalized_shape must be a constant there
    return F.layer_norm(x, gain.shape, gain, bias, eps)


def projection(x: Tensor, weight: Tensor, bias: Tensor | None, norm: Norm) -> Tensor:
    """One gate map: ``W x + b``, or ``LN(W x; gain, bias)`` with a layer norm (Ba 2016),
    whose bias is then the map's (``norm[1]``; ``bias`` is unused). x: [..., in] -> [..., G*H].

    The input map ``W_ih x + b_ih`` of a whole sequence and the recurrent map of one step
    (:func:`hidden_gates`) are both this."""
    if norm is None:
        return F.linear(x, weight, bias)
    return layer_norm(F.linear(x, weight), norm)


def hidden_gates(h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, hh_norm: Norm) -> Tensor:
    """The recurrent projection of one step: ``W_hh h + b_hh``, or ``LN(W_hh h; gain, b_hh)``.

    With layer norm the bias of the map is the norm's bias (``hh_norm[1]``), so ``bias_hh``
    is unused then. h: [B, H] -> [B, G*H].
    """
    if not torch.jit.is_scripting():  # TorchScript (rnnkit.export) has no autocast to ask
        if torch.is_autocast_enabled(h.device.type):
            # the recurrence runs in the state's precision under autocast, as the fast loop
            # does: rounding W_hh h to bfloat16 at every step compounds over time
            with torch.autocast(h.device.type, enabled=False):
                return projection(h, weight_hh.to(h.dtype), bias_hh, hh_norm)
    return projection(h, weight_hh, bias_hh, hh_norm)


def lstm_step(
    input_gates: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    hh_norm: Norm = None,
    cell_norm: Norm = None,
    candidate_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step (Hochreiter 1997), optionally layer-normalized (Ba 2016, eq. 20-22).

        i, f, g, o = split(input_gates + hidden_gates(h))
        c' = sigmoid(f) * c + sigmoid(i) * (tanh(g) * candidate_mask)
        h' = sigmoid(o) * tanh(LN(c'))

    ``candidate_mask`` is recurrent dropout (Semeniuta 2016): a [B, H] mask, already scaled
    by 1/(1-p), applied to the candidate only so the memory path ``f * c`` is untouched.

    Args:
        input_gates: [B, 4H], the step's ``W_ih x + b_ih`` (layer-normalized if LN is on).
        h, c: [B, H] previous hidden and cell state.
        weight_hh: [4H, H]; bias_hh: [4H] or None.
        hh_norm: (gain [4H], bias [4H]) of the recurrent map's layer norm, or None.
        cell_norm: (gain [H], bias [H]) of the cell's layer norm, or None.
    Returns:
        (h', c'), each [B, H].
    """
    gates = input_gates + hidden_gates(h, weight_hh, bias_hh, hh_norm)
    i, f, g, o = gates.chunk(4, dim=-1)
    candidate = torch.tanh(g)
    if candidate_mask is not None:
        candidate = candidate * candidate_mask
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * candidate
    h_new = torch.sigmoid(o) * torch.tanh(layer_norm(c_new, cell_norm))
    return h_new, c_new


def gru_step(
    input_gates: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    hh_norm: Norm = None,
    candidate_mask: Tensor | None = None,
) -> Tensor:
    """One GRU step (Cho 2014) in torch.nn.GRU's form, optionally layer-normalized.

        r = sigmoid(x_r + a_r),  z = sigmoid(x_z + a_z),  n = tanh(x_n + r * a_n)
        h' = (1 - z) * (n * candidate_mask) + z * h

    where ``x = input_gates`` and ``a = hidden_gates(h)`` (with ``b_hn`` inside the reset
    product, as in torch.nn.GRU). ``candidate_mask``: recurrent dropout on the candidate
    (Semeniuta 2016), [B, H] scaled by 1/(1-p).

    Args:
        input_gates: [B, 3H]; h: [B, H]; weight_hh: [3H, H]; bias_hh: [3H] or None;
        hh_norm: (gain [3H], bias [3H]) or None.
    Returns:
        h': [B, H].
    """
    x_r, x_z, x_n = input_gates.chunk(3, dim=-1)
    a_r, a_z, a_n = hidden_gates(h, weight_hh, bias_hh, hh_norm).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + a_r)
    z = torch.sigmoid(x_z + a_z)
    n = torch.tanh(x_n + r * a_n)
    if candidate_mask is not None:
        n = n * candidate_mask
    # in the state's dtype, which autocast's bfloat16 matmuls must not lower (see zoneout)
    return torch.lerp(n.to(h.dtype), h, z.to(h.dtype))
