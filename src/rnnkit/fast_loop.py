"""Fast time loops for one recurrent layer: a forward and a hand-written backward per sequence.

Autograd over a per-step Python loop records ~40 small ops per step and replays them one by
one; here each layer is one ``torch.autograd.Function`` instead. Where the C++ kernels built
(CPU, float32/float64), its forward and its backward are one call each of a compiled sequence
op (``torch.ops.rnnkit.{lstm,gru}_{forward,backward}_seq``) that runs the whole time loop, so
no Python runs per step; elsewhere (no compiler, ``RNNKIT_KERNELS=0``, other devices and
dtypes) the same loop runs in Python over the eager step below. Either way:

- forward writes every step into preallocated buffers (``out=`` and in-place ops), so it
  allocates nothing per step except the layer-norm outputs;
- backward first computes, for the whole sequence at once, every factor that does not
  depend on the incoming gradient (e.g. ``tanh(c) * o * (1 - o)``), so the reverse loop is
  only a few multiplies, the layer-norm backward kernels and one matmul per step;
- the recurrent weight gradient is one matmul over all steps after the loop.

The math is exactly :func:`rnnkit.functional.lstm_step` / :func:`gru_step` followed by
:func:`rnnkit.regularizers.zoneout`; ``tests/test_fast_loop.py`` holds the two equal (values
and gradients, float64 ``gradcheck``). Inputs that do not depend on the state (``W_ih x``
and its bias) are computed outside, as one matmul over the whole sequence; the LSTM step
applies their layer norm itself, which saves a pass over the [T, B, 4H] gates each way.

Shared arguments of :func:`lstm_layer` and :func:`gru_layer`:
    input_gates: [T, B, G*H] the input projection of every step (G = 4 LSTM, 3 GRU); with
        ``norms.ih_gain``, before its layer norm (the layer applies it).
    weight_hh: [G*H, H].
    norms: :class:`LayerNorms` (gains and biases; without ``hh_gain``, ``hh_bias`` is the
        plain recurrent bias).
    masks: :class:`Masks` (recurrent dropout's candidate mask, zoneout's keeps).
    resets: :class:`Resets` (rows that restart from ``h_init``/``c_init`` before step t).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor

from rnnkit import kernels, workspace

EPS = 1e-5


def _ln_forward(x: Tensor, gain: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    return torch.native_layer_norm(x, (x.shape[-1],), gain, bias, EPS)


def _ln_input_grad(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, gain: Tensor) -> Tensor:
    return torch.ops.aten.native_layer_norm_backward(
        dy, x, (x.shape[-1],), mean, rstd, gain, None, [True, False, False]
    )[0]


def _ln_param_grads(
    dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, gain: Tensor, bias: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Gain and bias gradients of a layer norm applied to every row of [T, B, N] at once."""
    n = x.shape[-1]
    _, dgain, dbias = torch.ops.aten.native_layer_norm_backward(
        dy.reshape(-1, n), x.reshape(-1, n), (n,), mean.reshape(-1, 1), rstd.reshape(-1, 1),
        gain, bias, [False, True, bias is not None],
    )
    return dgain, dbias


_sigmoid_grad = torch.ops.aten.sigmoid_backward.grad_input  # (dy, y, *, grad_input): dy*y*(1-y)
_tanh_grad = torch.ops.aten.tanh_backward.grad_input  # (dy, y, *, grad_input): dy*(1-y*y)


def _steps(x: Tensor | None, T: int, dim: int = 0) -> tuple:
    """Per-step views of a tensor with T steps along ``dim`` (one C++ call), or T Nones."""
    return x.unbind(dim) if x is not None else (None,) * T


def _weight_grad(d_raw: Tensor, states: Tensor, restarts: dict) -> Tensor:
    """dL/dW_hh = sum_t d_raw_t^T h_{t-1} as one matmul; ``states`` [T+1, B, H] holds
    h_{-1}..h_{T-1} except at reset steps, which are corrected here."""
    T, B, G = d_raw.shape
    grad = d_raw.reshape(T * B, G).t().mm(states[:-1].reshape(T * B, -1))
    for t, restart in restarts.items():  # restart = (mask, h[, c]) used at step t
        grad += d_raw[t].t().mm(restart[1] - states[t])
    return grad


class LayerNorms(NamedTuple):
    """A layer's layer norms (Ba 2016), each a gain and a bias, None where off. Without
    ``hh_gain``, ``hh_bias`` is the plain recurrent bias ``b_hh``; with ``ih_gain`` the layer
    gets the input map ``W_ih x`` before its norm and applies it (bias ``ih_bias``)."""

    ih_gain: Tensor | None = None
    ih_bias: Tensor | None = None
    hh_gain: Tensor | None = None
    hh_bias: Tensor | None = None
    cell_gain: Tensor | None = None  # LSTM only: the cell's norm before tanh
    cell_bias: Tensor | None = None


class Masks(NamedTuple):
    """A layer's regularizer masks, None where off: ``candidate`` [B, H], recurrent dropout
    (scaled); ``keep_h``, ``keep_c`` [T, B, H] or [T, B, 1] or [T, 1, 1], how much of the
    previous state each unit keeps at each step (zoneout, and 1 past a sequence's end);
    ``keep_c`` is the LSTM's cell. For one step, the step's slice of each."""

    candidate: Tensor | None = None
    keep_h: Tensor | None = None
    keep_c: Tensor | None = None


class Resets(NamedTuple):
    """Rows that restart: ``rows`` {t: bool [B, 1]} restart from ``h_init`` (and the LSTM's
    ``c_init``) before step t."""

    rows: dict[int, Tensor] | None = None
    h_init: Tensor | None = None
    c_init: Tensor | None = None


NO_NORMS, NO_MASKS, NO_RESETS = LayerNorms(), Masks(), Resets()


class LSTMBuffers(NamedTuple):
    """What the LSTM forward writes, per sequence or (:func:`_per_step`) per step: the states
    ``h``, ``c`` ([T + 1, B, H], [t + 1] is step t's), the activated gates ``act`` i, f, g, o
    [T, B, 4H], the recurrent map before its norm ``raw_hh``, the cell before zoneout
    ``c_new``, ``tanh_c`` = tanh(LN(c_new)), and each layer norm's [2, T, B] mean and rstd."""

    h: Tensor
    c: Tensor
    act: Tensor
    raw_hh: Tensor | None
    c_new: Tensor
    tanh_c: Tensor
    ih_stats: Tensor | None
    hh_stats: Tensor | None
    cell_stats: Tensor | None


class LSTMGrads(NamedTuple):
    """What the LSTM backward writes, [T, B, .] or one step of it: dL/d(preactivations)
    ``d_gates``, dL/d(the recurrent map before its norm) ``d_raw``, dL/d(the input map before
    its norm) ``d_x``, dL/d(the cell norm's output) ``d_cnorm``."""

    d_gates: Tensor
    d_raw: Tensor | None
    d_x: Tensor | None
    d_cnorm: Tensor | None


class GRUBuffers(NamedTuple):
    """What the GRU forward writes, per sequence or per step: ``h`` [T + 1, B, H] ([t + 1] is
    step t's), the activated gates ``act`` r, z, n [T, B, 3H], the recurrent part of the
    candidate ``a_n`` [T, B, H] (b_hn included), the recurrent map before its norm ``raw_hh``."""

    h: Tensor
    act: Tensor
    a_n: Tensor
    raw_hh: Tensor | None


class GRUGrads(NamedTuple):
    """What the GRU backward writes: dL/d(the input map after its norm) ``d_gates``,
    dL/d(the recurrent map after its norm) ``d_a``, and before it ``d_raw`` (``d_a`` itself
    without a norm)."""

    d_gates: Tensor
    d_a: Tensor
    d_raw: Tensor


def _per_step(bufs: NamedTuple, T: int) -> list:
    """The T steps' views of a sequence's buffers (made up front in C++, unbind): step t's
    states are ``h[t + 1]`` (and ``c[t + 1]``), its statistics ``stats[:, t]``."""
    views = []
    for name, u in zip(bufs._fields, bufs):
        if name in ("h", "c"):
            u = u[1:]
        views.append(_steps(u, T, dim=1 if name.endswith("stats") else 0))
    return [type(bufs)(*fields) for fields in zip(*views)]


def _step_masks(masks: Masks, T: int) -> list[Masks]:
    """Each step's masks: the candidate mask (one per sequence) and the step's keeps."""
    keeps = zip(_steps(masks.keep_h, T), _steps(masks.keep_c, T))
    return [Masks(masks.candidate, keep_h, keep_c) for keep_h, keep_c in keeps]


def _write_stats(stats: Tensor, mean: Tensor, rstd: Tensor) -> None:
    stats[0].copy_(mean.view(-1))
    stats[1].copy_(rstd.view(-1))


def _flat(norms: LayerNorms, masks: Masks, resets: Resets) -> tuple:
    """The bundles as the autograd Functions take them (autograd sees only top-level
    tensors): the norms, the masks, then h_init and c_init. :func:`_unflat` inverts it."""
    return (*norms, *masks, resets.h_init, resets.c_init)


def _unflat(tensors: tuple) -> tuple[LayerNorms, Masks, tuple]:
    n, m = len(LayerNorms._fields), len(Masks._fields)
    return LayerNorms(*tensors[:n]), Masks(*tensors[n : n + m]), tensors[n + m :]


def _lstm_forward_step(x: Tensor, h_prev: Tensor, c_prev: Tensor, norms: LayerNorms,
                       masks: Masks, out: LSTMBuffers) -> None:
    """Everything of one LSTM step after the matmul, in eager PyTorch; writes ``out`` (one
    step's views).

    ``x`` [B, 4H] is ``W_ih x_t + b`` (plus ``W_hh h`` when ``out.raw_hh`` is None, and then
    it may be ``out.act`` itself), or ``W_ih x_t`` before its layer norm with ``ih_gain``;
    ``out.raw_hh`` is ``W_hh h`` before its layer norm (without it, ``hh_bias`` is the plain
    recurrent bias, added to ``x``, or None). The sequence op's row function (``forward_rows``
    in csrc/lstm_step.cpp) does the same in one pass per row.
    """
    H = c_prev.shape[-1]
    if norms.ih_gain is not None:
        x, mean, rstd = _ln_forward(x, norms.ih_gain, norms.ih_bias)
        _write_stats(out.ih_stats, mean, rstd)
    act = out.act
    if out.raw_hh is not None:
        y, mean, rstd = _ln_forward(out.raw_hh, norms.hh_gain, norms.hh_bias)
        _write_stats(out.hh_stats, mean, rstd)
        torch.add(x, y, out=act)
    elif norms.hh_bias is not None:  # no layer norm: the plain recurrent bias
        torch.add(x, norms.hh_bias, out=act)
    elif x is not act:
        act.copy_(x)
    i, f, g, o = act.split(H, 1)
    act[:, : 2 * H].sigmoid_()
    g.tanh_()
    o.sigmoid_()
    candidate = g if masks.candidate is None else g * masks.candidate
    torch.mul(i, candidate, out=out.c_new).addcmul_(f, c_prev)
    if masks.keep_c is not None:
        torch.lerp(out.c_new, c_prev, masks.keep_c, out=out.c)
    elif out.c is not out.c_new:
        out.c.copy_(out.c_new)
    if norms.cell_gain is not None:
        y, mean, rstd = _ln_forward(out.c_new, norms.cell_gain, norms.cell_bias)
        _write_stats(out.cell_stats, mean, rstd)
        torch.tanh(y, out=out.tanh_c)
    else:
        torch.tanh(out.c_new, out=out.tanh_c)
    if masks.keep_h is not None:
        torch.lerp(o * out.tanh_c, h_prev, masks.keep_h, out=out.h)
    else:
        torch.mul(o, out.tanh_c, out=out.h)


def _lstm_backward_step(dh: Tensor, dc: Tensor, c_prev: Tensor, x: Tensor | None,
                        saved: LSTMBuffers, norms: LayerNorms, masks: Masks, grads: LSTMGrads,
                        dh_direct: Tensor | None) -> None:
    """The backward of :func:`_lstm_forward_step` for one step; writes ``grads`` (one step's
    views).

    ``dh`` and ``dc`` are dL/dh_t and dL/dc_t; ``x`` the input map before its layer norm
    (with ``ih_gain``). Writes the part of dL/dh_{t-1} that zoneout passes straight through
    to ``dh_direct``, and dL/dc_{t-1} to ``dc``. The caller adds ``d_raw W_hh`` (``d_gates``
    without a recurrent norm) to get dL/dh_{t-1}.
    """
    act, tanh_c = saved.act, saved.tanh_c
    H = c_prev.shape[-1]
    i, f, g, o = act.split(H, 1)
    if masks.keep_h is not None:
        torch.mul(dh, masks.keep_h, out=dh_direct)
        dh = dh - dh_direct
    d_act = torch.empty_like(act)  # dL/d(activated gates)
    d_i, d_f, d_g, d_o = d_act.split(H, 1)
    torch.mul(dh, tanh_c, out=d_o)
    d_c = torch.ops.aten.tanh_backward(dh * o, tanh_c)
    if norms.cell_gain is not None:
        grads.d_cnorm.copy_(d_c)
        d_c = _ln_input_grad(d_c, saved.c_new, *_stat_columns(saved.cell_stats), norms.cell_gain)
    dc_direct = None
    if masks.keep_c is not None:
        dc_direct = dc * masks.keep_c
        d_c += dc - dc_direct
    else:
        d_c += dc
    mask = masks.candidate
    torch.mul(d_c, g if mask is None else g * mask, out=d_i)
    torch.mul(d_c, c_prev, out=d_f)
    torch.mul(d_c, i if mask is None else i * mask, out=d_g)
    _sigmoid_grad(d_act, act, grad_input=grads.d_gates)
    _tanh_grad(d_g, g, grad_input=grads.d_gates[:, 2 * H : 3 * H])
    torch.mul(d_c, f, out=dc)
    if dc_direct is not None:
        dc += dc_direct
    if norms.hh_gain is not None:
        grads.d_raw.copy_(_ln_input_grad(grads.d_gates, saved.raw_hh,
                                         *_stat_columns(saved.hh_stats), norms.hh_gain))
    if norms.ih_gain is not None:
        grads.d_x.copy_(_ln_input_grad(grads.d_gates, x, *_stat_columns(saved.ih_stats),
                                       norms.ih_gain))


def _stat_columns(stats: Tensor) -> tuple[Tensor, Tensor]:
    """One step's [2, B] (mean, rstd) as two [B, 1] columns, the layer-norm backward's form."""
    return stats[0].unsqueeze(1), stats[1].unsqueeze(1)


def _gru_forward_step(x: Tensor, a: Tensor, h_prev: Tensor, masks: Masks,
                      out: GRUBuffers) -> None:
    """Everything of one GRU step after the recurrent map, in eager PyTorch; writes ``out``
    (one step's views; ``out.raw_hh`` is the caller's).

    ``x`` [B, 3H] is ``W_ih x_t + b_ih``, ``a`` [B, 3H] the recurrent map ``W_hh h + b_hh``
    (after its layer norm). The sequence op's row function (``forward_rows`` in
    csrc/gru_step.cpp) does the same in one pass per row.
    """
    H = out.h.shape[-1]
    act = out.act
    torch.add(x[:, : 2 * H], a[:, : 2 * H], out=act[:, : 2 * H]).sigmoid_()
    r, u = act[:, :H], act[:, H : 2 * H]
    out.a_n.copy_(a[:, 2 * H :])
    n = torch.addcmul(x[:, 2 * H :], r, out.a_n, out=act[:, 2 * H :]).tanh_()
    if masks.candidate is not None:
        n = n * masks.candidate
    if masks.keep_h is not None:
        torch.lerp(torch.lerp(n, h_prev, u), h_prev, masks.keep_h, out=out.h)
    else:
        torch.lerp(n, h_prev, u, out=out.h)


def _gru_backward_step(dh: Tensor, h_prev: Tensor, saved: GRUBuffers, masks: Masks,
                       grads: GRUGrads) -> None:
    """The backward of :func:`_gru_forward_step` for one step; writes ``grads.d_gates``
    (= dL/dx), ``grads.d_a`` (dL/da), and to ``dh`` the part of dL/dh_{t-1} that does not
    pass through the recurrent map; the caller adds ``d_a W_hh``.
    """
    H = h_prev.shape[-1]
    r, u, n = saved.act.split(H, 1)
    d, d_gates, d_a, mask = dh, grads.d_gates, grads.d_a, masks.candidate
    direct = None
    if masks.keep_h is not None:  # zoneout: the kept fraction flows straight to h_{t-1}
        direct = d * masks.keep_h
        d = d - direct
    n_in = n if mask is None else n * mask
    _sigmoid_grad(d * (h_prev - n_in), u, grad_input=d_gates[:, H : 2 * H])
    d_n = torch.addcmul(d, d, u, value=-1.0)  # d * (1 - z)
    if mask is not None:
        d_n *= mask
    d_n = _tanh_grad(d_n, n, grad_input=d_gates[:, 2 * H :])
    _sigmoid_grad(d_n * saved.a_n, r, grad_input=d_gates[:, :H])
    d_a[:, : 2 * H] = d_gates[:, : 2 * H]
    torch.mul(d_n, r, out=d_a[:, 2 * H :])
    if direct is None:
        torch.mul(d, u, out=dh)
    else:
        torch.addcmul(direct, d, u, out=dh)


def compiled_steps(x: Tensor) -> bool:
    """Whether the compiled sequence ops run for tensors like ``x`` (float32 or float64 on
    CPU, once they have built, and not turned off by ``RNNKIT_KERNELS=0``)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and kernels.available())


def _sequence_ops(x: Tensor, cell: str) -> tuple | None:
    """The compiled sequence ops of ``cell`` (the whole time loop in one call each way) where
    the kernels run for tensors like ``x``, else None: the Python loop over the eager step."""
    if compiled_steps(x):
        ops = torch.ops.rnnkit
        return getattr(ops, f"{cell}_forward_seq"), getattr(ops, f"{cell}_backward_seq")
    return None


def _reset_mask(resets: dict, T: int, B: int, device) -> Tensor | None:
    """The ``resets`` dict {t: rows [B, 1]} as one bool [T, B] mask, or None without resets."""
    if not resets:
        return None
    mask = torch.zeros(T, B, dtype=torch.bool, device=device)
    mask[list(resets)] = torch.stack([m.reshape(B) for m in resets.values()])
    return mask


def _rows(t: Tensor, B: int, H: int) -> Tensor:
    """An initial state (maybe [H] or [1, H], or expanded over the batch) as contiguous [B, H]."""
    return t.expand(B, H).contiguous()


def _without_autocast(device: torch.device):
    """Autocast off inside the loop: its ops write into buffers of the state's precision
    (``out=``), which autocast's reduced-precision matmuls would not match."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _state_precision(dtype: torch.dtype, *tensors: Tensor | None) -> list[Tensor | None]:
    """Floating tensors in ``dtype``. Under autocast the input projection arrives in bfloat16
    or float16 while the recurrent weights stay float32: the recurrence (state, cell, gates,
    layer-norm statistics) then runs in float32, as rounding the state to 8 bits of mantissa
    at every step would compound over the sequence."""
    return [t.to(dtype) if t is not None and t.is_floating_point() else t for t in tensors]


def _first_order_only(why: str) -> None:
    """The hand-written backward is not itself differentiable. Autograd runs a backward with
    grad mode on only under create_graph=True (a gradient penalty, Hessian products), whose
    second-order terms through this layer would silently be missing: refuse instead. ``why``
    is the module's route (:func:`rnnkit.dispatch.route`): which path ran, and why."""
    if torch.is_grad_enabled():
        taken = f"; this call took the {why}" if why else ""
        raise RuntimeError(
            "rnnkit's fast loop has no second derivative (backward with create_graph=True)"
            f"{taken}; build the LSTM or GRU with fast=False for double backward"
        )


# Copying W_hh^T costs about ten one-row matmuls, and makes each step's matmul only a few
# percent faster: a one-step call (step(), streaming) spent most of its time in the copy. On one
# thread the copy paid for itself from about 32 steps on (batch 1 and 32, H 256 and 512).
TRANSPOSE_MIN_STEPS = 32


def _transposed(weight_hh: Tensor, T: int) -> Tensor:
    """W_hh^T [H, G] for the step matmuls ``h @ W_hh^T``: a contiguous copy for a sequence of
    at least :data:`TRANSPOSE_MIN_STEPS` steps (its matmuls run a few percent faster), else
    the transposed view."""
    w_t = weight_hh.t()
    return w_t.contiguous() if T >= TRANSPOSE_MIN_STEPS else w_t


def _contiguous(t: Tensor) -> Tensor:
    """``t`` itself when contiguous, else a contiguous copy in a kept workspace buffer (the
    gradient of a batch_first output arrives transposed, [T, B, H] of them each backward)."""
    return t if t.is_contiguous() else workspace.empty(t.shape, t).copy_(t)


def _contiguous_copy(t: Tensor) -> Tensor:
    """A copy the steps can write into: ``clone()`` would keep a transposed gradient's strides."""
    return t.clone(memory_format=torch.contiguous_format)


def _full(t: Tensor | None, shape: tuple[int, ...], new) -> Tensor | None:
    """``t`` broadcast to a contiguous ``shape``: a keep mask to [T, B, H], a candidate mask
    to [B, H] (the steps read them row by row, and may get them as [1, H] or [T, B, 1])."""
    if t is None or (t.shape == shape and t.is_contiguous()):
        return t
    return new(*shape).copy_(t.expand(shape))


def _begin(ctx, spec: tuple, input_gates: Tensor, bundled: tuple) -> tuple:
    """How both Functions' forwards begin: the input map contiguous, the reset rows, the
    bundles (:func:`_unflat`) and ``new(*shape)``, a workspace buffer like the input map."""
    reset_rows, ctx.why = spec
    input_gates = input_gates.contiguous()
    ctx.device = input_gates.device

    def new(*shape: int) -> Tensor:
        return workspace.empty(shape, input_gates)

    return input_gates, reset_rows, _unflat(bundled), new


def _lstm_forward_loop(input_gates: Tensor, w_t: Tensor, norms: LayerNorms, masks: Masks,
                       resets: Resets, bufs: LSTMBuffers) -> dict:
    """The LSTM forward as a Python loop over the eager step, writing into ``bufs``. Returns
    the restarts {t: (rows, h, c)} the backward needs."""
    T = input_gates.shape[0]
    restarts = {}
    h, c = bufs.h[0], bufs.c[0]  # contiguous copies of h0 and c0, as the steps need
    steps = zip(input_gates.unbind(0), _per_step(bufs, T), _step_masks(masks, T))
    for t, (x, out, step_masks) in enumerate(steps):
        if t in resets.rows:
            rows = resets.rows[t]
            h, c = torch.where(rows, resets.h_init, h), torch.where(rows, resets.c_init, c)
            restarts[t] = (rows, h, c)
        if out.raw_hh is not None:
            torch.mm(h, w_t, out=out.raw_hh)
        else:
            x = torch.addmm(x, h, w_t, out=out.act)
        _lstm_forward_step(x, h, c, norms, step_masks, out)
        h, c = out.h, out.c
    return restarts


class _LSTMLayer(torch.autograd.Function):
    """One LSTM layer over a sequence. Its tensors come flat (autograd tracks only top-level
    arguments): the input map, h0, c0, W_hh, then :func:`_flat`'s bundles."""

    @staticmethod
    def forward(ctx, spec, input_gates, h0, c0, weight_hh, *bundled):  # type: ignore[override]
        input_gates, reset_rows, bundles, new = _begin(ctx, spec, input_gates, bundled)
        norms, masks, (h_init, c_init) = bundles
        T, B, G = input_gates.shape
        H = G // 4
        masks = Masks(_full(masks.candidate, (B, H), new),
                      *(_full(k, (T, B, H), new) for k in (masks.keep_h, masks.keep_c)))
        hs, cs = new(T + 1, B, H), new(T + 1, B, H)
        bufs = LSTMBuffers(
            h=hs, c=cs, act=new(T, B, G), raw_hh=new(T, B, G) if norms.hh_gain is not None
            else None, c_new=new(T, B, H) if masks.keep_c is not None else cs[1:],
            tanh_c=new(T, B, H), ih_stats=_stats_buffer(norms.ih_gain, new, T, B),
            hh_stats=_stats_buffer(norms.hh_gain, new, T, B),
            cell_stats=_stats_buffer(norms.cell_gain, new, T, B))
        w_t = _transposed(weight_hh, T)
        hs[0], cs[0] = h0, c0
        seq = _sequence_ops(input_gates, "lstm")
        if seq is not None:
            reset = _reset_mask(reset_rows, T, B, input_gates.device)
            h_init, c_init = (_rows(s, B, H) if reset is not None else None
                              for s in (h_init, c_init))
            seq[0](input_gates, w_t, **norms._asdict(), **masks._asdict(), reset_rows=reset,
                   h_init=h_init, c_init=c_init, **bufs._asdict())
            ctx.reset, ctx.restarts = (reset, h_init, c_init), {}
        else:
            ctx.reset = None
            gates, loop_norms = input_gates, norms
            if norms.hh_gain is None and norms.hh_bias is not None:
                # The eager step reads the plain recurrent bias as part of its input; the
                # sequence op adds it in its pass over each row instead of a pass over all of
                # [T, B, 4H].
                gates, loop_norms = input_gates + norms.hh_bias, norms._replace(hh_bias=None)
            ctx.restarts = _lstm_forward_loop(gates, w_t, loop_norms, masks,
                                              Resets(reset_rows, h_init, c_init), bufs)
        raw_ih = input_gates if norms.ih_gain is not None else None
        ctx.save_for_backward(weight_hh, raw_ih, *norms, *masks, *bufs)
        return hs[1:], hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_hn, d_cn):  # type: ignore[override]
        _first_order_only(ctx.why)
        with _without_autocast(ctx.device):
            return _LSTMLayer._backward(ctx, d_hs, d_hn, d_cn)

    @staticmethod
    def _backward(ctx, d_hs, d_hn, d_cn):
        weight_hh, raw_ih, *rest = ctx.saved_tensors
        norms, masks, rest = _unflat(rest)
        saved = LSTMBuffers(*rest)
        act = saved.act

        def new_like(t: Tensor | None, needed: bool = True) -> Tensor | None:
            return workspace.empty(t.shape, t) if needed else None

        grads = LSTMGrads(d_gates=new_like(act), d_raw=new_like(act, saved.raw_hh is not None),
                          d_x=new_like(act, raw_ih is not None),
                          d_cnorm=new_like(saved.tanh_c, norms.cell_gain is not None))
        dh = _contiguous_copy(d_hn) if d_hn is not None else torch.zeros_like(saved.h[0])
        dc = _contiguous_copy(d_cn) if d_cn is not None else torch.zeros_like(saved.c[0])
        if d_hs is not None:
            d_hs = _contiguous(d_hs)
        if ctx.reset is not None:  # the compiled sequence op ran the forward
            d_weight, d_h_init, d_c_init = _lstm_backward_seq(
                ctx.reset, weight_hh, d_hs, dh, dc, raw_ih, norms, masks, saved, grads)
        else:
            d_weight, d_h_init, d_c_init = _lstm_backward_loop(
                ctx.restarts, weight_hh, d_hs, dh, dc, raw_ih, norms, masks, saved, grads)
        d_norms = _lstm_norm_grads(norms, raw_ih, saved, grads)
        d_input = grads.d_gates if grads.d_x is None else grads.d_x
        return (None, d_input, dh, dc, d_weight, *d_norms, *(None,) * len(Masks._fields),
                d_h_init, d_c_init)


def _stats_buffer(gain: Tensor | None, new, T: int, B: int) -> Tensor | None:
    """[2, T, B] for a layer norm's mean and rstd at every step, where it is on."""
    return new(2, T, B) if gain is not None else None


def _lstm_norm_grads(norms: LayerNorms, raw_ih: Tensor | None, saved: LSTMBuffers,
                     grads: LSTMGrads) -> LayerNorms:
    """The layer norms' gain and bias gradients (dL/db_hh without a recurrent norm), over
    every step at once."""
    d = dict.fromkeys(LayerNorms._fields)
    if raw_ih is not None:
        d["ih_gain"], d["ih_bias"] = _ln_param_grads(grads.d_gates, raw_ih, *saved.ih_stats,
                                                     norms.ih_gain, norms.ih_bias)
    if saved.raw_hh is not None:
        d["hh_gain"], d["hh_bias"] = _ln_param_grads(grads.d_gates, saved.raw_hh,
                                                     *saved.hh_stats, norms.hh_gain,
                                                     norms.hh_bias)
    elif norms.hh_bias is not None:
        d["hh_bias"] = grads.d_gates.sum((0, 1))
    if norms.cell_gain is not None:
        d["cell_gain"], d["cell_bias"] = _ln_param_grads(
            grads.d_cnorm, saved.c_new, *saved.cell_stats, norms.cell_gain, norms.cell_bias)
    return LayerNorms(**d)


def _lstm_backward_seq(reset_state, weight_hh, d_hs, dh, dc, raw_ih, norms: LayerNorms,
                       masks: Masks, saved: LSTMBuffers, grads: LSTMGrads) -> tuple:
    """The LSTM backward over every step in one call of the compiled sequence op; ``dh`` and
    ``dc`` become dL/dh0 and dL/dc0. Returns (dL/dW_hh, dL/dh_init, dL/dc_init)."""
    reset, h_init, c_init = reset_state
    d_h_init = torch.zeros_like(h_init) if reset is not None else None
    d_c_init = torch.zeros_like(c_init) if reset is not None else None
    d_weight = weight_hh.new_empty(weight_hh.shape)
    torch.ops.rnnkit.lstm_backward_seq(
        weight_hh, d_hs=d_hs, dh=dh, dc=dc, ih_gain=norms.ih_gain, hh_gain=norms.hh_gain,
        cell_gain=norms.cell_gain, **masks._asdict(), reset_rows=reset, h_init=h_init,
        c_init=c_init, **saved._asdict(), raw_ih=raw_ih, **grads._asdict(), d_h_init=d_h_init,
        d_c_init=d_c_init, d_weight=d_weight,
    )
    return d_weight, d_h_init, d_c_init


def _lstm_backward_loop(restarts, weight_hh, d_hs, dh, dc, raw_ih, norms: LayerNorms,
                        masks: Masks, saved: LSTMBuffers, grads: LSTMGrads) -> tuple:
    """The LSTM backward as a Python loop over the eager step; writes dL/dh0 and dL/dc0 into
    ``dh`` and ``dc``. Returns (dL/dW_hh, dL/dh_init, dL/dc_init)."""
    T = saved.act.shape[0]
    dh_direct = torch.empty_like(saved.h[0]) if masks.keep_h is not None else None
    d_h_init = torch.zeros_like(saved.h[0]) if restarts else None
    d_c_init = torch.zeros_like(saved.c[0]) if restarts else None
    dh_out, dc_out = dh, dc
    c_prevs = saved.c[:-1].unbind(0)
    steps = list(zip(_per_step(saved, T), _step_masks(masks, T), _per_step(grads, T),
                     _steps(d_hs, T), _steps(raw_ih, T)))
    for t in range(T - 1, -1, -1):
        step, step_masks, step_grads, d_out, x = steps[t]
        c_prev = restarts[t][2] if t in restarts else c_prevs[t]
        if d_out is not None:
            dh = dh + d_out
        _lstm_backward_step(dh, dc, c_prev, x, step, norms, step_masks, step_grads, dh_direct)
        d_map = step_grads.d_gates if grads.d_raw is None else step_grads.d_raw  # dL/d(W_hh h)
        if masks.keep_h is not None:
            dh = torch.addmm(dh_direct, d_map, weight_hh)
        else:
            dh = torch.mm(d_map, weight_hh)
        if t in restarts:
            rows = restarts[t][0]
            d_h_init += torch.where(rows, dh, 0.0)
            d_c_init += torch.where(rows, dc, 0.0)
            dh, dc = torch.where(rows, 0.0, dh), torch.where(rows, 0.0, dc)
    dh_out.copy_(dh)
    dc_out.copy_(dc)
    d_map = grads.d_gates if grads.d_raw is None else grads.d_raw
    return _weight_grad(d_map, saved.h, restarts), d_h_init, d_c_init


def _gru_forward_loop(input_gates: Tensor, w_t: Tensor, norms: LayerNorms, masks: Masks,
                      resets: Resets, bufs: GRUBuffers) -> tuple:
    """The GRU forward as a Python loop over the eager step, writing into ``bufs``. Returns
    the restarts {t: (rows, h)} and the recurrent norm's statistics (or None)."""
    T, B, G = input_gates.shape
    a = workspace.empty((B, G), input_gates)  # the recurrent map of the current step
    hh_stats = []
    restarts = {}
    h = bufs.h[0]  # a contiguous copy of h0, as the steps need
    steps = zip(input_gates.unbind(0), _per_step(bufs, T), _step_masks(masks, T))
    for t, (x, out, step_masks) in enumerate(steps):
        if t in resets.rows:
            h = torch.where(resets.rows[t], resets.h_init, h)
            restarts[t] = (resets.rows[t], h)
        if out.raw_hh is not None:
            torch.mm(h, w_t, out=out.raw_hh)
            a, mean, rstd = _ln_forward(out.raw_hh, norms.hh_gain, norms.hh_bias)
            hh_stats.append((mean, rstd))
        elif norms.hh_bias is not None:
            torch.addmm(norms.hh_bias, h, w_t, out=a)
        else:
            torch.mm(h, w_t, out=a)
        _gru_forward_step(x, a, h, step_masks, out)
        h = out.h
    return restarts, [torch.stack(s) for s in zip(*hh_stats)] if hh_stats else None


def _gru_backward_loop(restarts, hh_stats, weight_hh, d_hs, dh, norms: LayerNorms,
                       masks: Masks, saved: GRUBuffers, grads: GRUGrads) -> tuple:
    """The GRU backward as a Python loop over the eager step; writes dL/dh0 into ``dh``.
    Returns (dL/dW_hh, dL/dh_init)."""
    T = saved.act.shape[0]
    d_h_init = torch.zeros_like(saved.h[0]) if restarts else None
    dh_out = dh
    h_prevs = saved.h[:-1].unbind(0)
    steps = list(zip(_per_step(saved, T), _step_masks(masks, T), _per_step(grads, T),
                     _steps(d_hs, T)))
    for t in range(T - 1, -1, -1):
        step, step_masks, step_grads, d_out = steps[t]
        h_prev = restarts[t][1] if t in restarts else h_prevs[t]
        if d_out is not None:
            dh = dh + d_out
        _gru_backward_step(dh, h_prev, step, step_masks, step_grads)
        if step.raw_hh is not None:
            mean, rstd = hh_stats[0][t], hh_stats[1][t]
            step_grads.d_raw.copy_(_ln_input_grad(step_grads.d_a, step.raw_hh, mean, rstd,
                                                  norms.hh_gain))
        dh = torch.addmm(dh, step_grads.d_raw, weight_hh)
        if t in restarts:
            rows = restarts[t][0]
            d_h_init += torch.where(rows, dh, 0.0)
            dh = torch.where(rows, 0.0, dh)
    dh_out.copy_(dh)
    return _weight_grad(grads.d_raw, saved.h, restarts), d_h_init


class _GRULayer(torch.autograd.Function):
    """One GRU layer over a sequence; its tensors come flat, as :class:`_LSTMLayer`'s (no
    c0, no cell norm, no keep_c, no c_init)."""

    @staticmethod
    def forward(ctx, spec, input_gates, h0, weight_hh, *bundled):  # type: ignore[override]
        input_gates, reset_rows, bundles, new = _begin(ctx, spec, input_gates, bundled)
        norms, masks, (h_init, _) = bundles
        T, B, G = input_gates.shape
        H = G // 3
        masks = Masks(_full(masks.candidate, (B, H), new), _full(masks.keep_h, (T, B, H), new))
        bufs = GRUBuffers(h=new(T + 1, B, H), act=new(T, B, G), a_n=new(T, B, H),
                          raw_hh=new(T, B, G) if norms.hh_gain is not None else None)
        bufs.h[0] = h0
        w_t = _transposed(weight_hh, T)
        seq = _sequence_ops(input_gates, "gru")
        if seq is not None:
            reset = _reset_mask(reset_rows, T, B, input_gates.device)
            h_init = _rows(h_init, B, H) if reset is not None else None
            ih_stats = _stats_buffer(norms.ih_gain, new, T, B)
            hh_stats = _stats_buffer(norms.hh_gain, new, T, B)
            seq[0](input_gates, w_t, ih_gain=norms.ih_gain, ih_bias=norms.ih_bias,
                   hh_gain=norms.hh_gain, hh_bias=norms.hh_bias, candidate=masks.candidate,
                   keep_h=masks.keep_h, reset_rows=reset, h_init=h_init, **bufs._asdict(),
                   ih_stats=ih_stats, hh_stats=hh_stats)
            ctx.reset, ctx.restarts, ctx.hh_stats = (reset, h_init), {}, hh_stats
        else:
            ctx.reset = None
            x, ih_stats = input_gates, None
            if norms.ih_gain is not None:  # the input map's layer norm, over all steps at once
                x, *ih_stats = _ln_forward(input_gates, norms.ih_gain, norms.ih_bias)
            ctx.restarts, ctx.hh_stats = _gru_forward_loop(
                x, w_t, norms, masks, Resets(reset_rows, h_init), bufs)
        ctx.ih_stats = ih_stats
        raw_ih = input_gates if norms.ih_gain is not None else None
        ctx.save_for_backward(weight_hh, raw_ih, *norms, *masks, *bufs)
        return bufs.h[1:], bufs.h[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_hn):  # type: ignore[override]
        _first_order_only(ctx.why)
        with _without_autocast(ctx.device):
            return _GRULayer._backward(ctx, d_hs, d_hn)

    @staticmethod
    def _backward(ctx, d_hs, d_hn):
        weight_hh, raw_ih, *rest = ctx.saved_tensors
        norms, masks, rest = _unflat(rest)
        saved = GRUBuffers(*rest)
        act = saved.act
        d_a = workspace.empty(act.shape, act)
        grads = GRUGrads(d_gates=workspace.empty(act.shape, act), d_a=d_a,
                         d_raw=workspace.empty(act.shape, act) if saved.raw_hh is not None
                         else d_a)
        d_x = None  # dL/d(the input map, before its LN)
        dh = _contiguous_copy(d_hn) if d_hn is not None else torch.zeros_like(saved.h[0])
        if d_hs is not None:
            d_hs = _contiguous(d_hs)
        if ctx.reset is not None:  # the compiled sequence op ran the forward
            reset, h_init = ctx.reset
            d_h_init = torch.zeros_like(h_init) if reset is not None else None
            if raw_ih is not None:
                d_x = workspace.empty(act.shape, act)
            d_weight = weight_hh.new_empty(weight_hh.shape)
            torch.ops.rnnkit.gru_backward_seq(
                weight_hh, d_hs=d_hs, dh=dh, ih_gain=norms.ih_gain, hh_gain=norms.hh_gain,
                candidate=masks.candidate, keep_h=masks.keep_h, reset_rows=reset,
                h_init=h_init, **saved._asdict(), ih_stats=ctx.ih_stats,
                hh_stats=ctx.hh_stats, raw_ih=raw_ih, d_gates=grads.d_gates, d_a=d_a,
                d_raw=grads.d_raw if saved.raw_hh is not None else None, d_x=d_x,
                d_h_init=d_h_init, d_weight=d_weight,
            )
        else:
            d_weight, d_h_init = _gru_backward_loop(
                ctx.restarts, ctx.hh_stats, weight_hh, d_hs, dh, norms, masks, saved, grads)
            if raw_ih is not None:
                d_x = _ln_input_grad(grads.d_gates, raw_ih, *ctx.ih_stats, norms.ih_gain)
        d_norms = dict.fromkeys(LayerNorms._fields)
        if raw_ih is not None:
            d_norms["ih_gain"], d_norms["ih_bias"] = _ln_param_grads(
                grads.d_gates, raw_ih, *ctx.ih_stats, norms.ih_gain, norms.ih_bias)
        if saved.raw_hh is not None:
            d_norms["hh_gain"], d_norms["hh_bias"] = _ln_param_grads(
                d_a, saved.raw_hh, *ctx.hh_stats, norms.hh_gain, norms.hh_bias)
        elif norms.hh_bias is not None:
            d_norms["hh_bias"] = d_a.sum((0, 1))
        d_input = grads.d_gates if d_x is None else d_x
        return (None, d_input, dh, d_weight, *LayerNorms(**d_norms),
                *(None,) * len(Masks._fields), d_h_init, None)


class _InputProjection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        T, B, n_in = x.shape
        out = workspace.empty((T, B, weight.shape[0]), x)
        rows = x.reshape(T * B, n_in)
        if bias is None:
            torch.mm(rows, weight.t(), out=out.view(T * B, -1))
        else:
            torch.addmm(bias, rows, weight.t(), out=out.view(T * B, -1))
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, d_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        d_rows = d_out.reshape(-1, weight.shape[0])
        need_x, need_w, need_b = ctx.needs_input_grad
        d_x = torch.mm(d_rows, weight).view(x.shape) if need_x else None
        d_w = torch.mm(d_rows.t(), x.reshape(-1, x.shape[-1])) if need_w else None
        d_b = d_rows.sum(0) if need_b and ctx.has_bias else None
        return d_x, d_w, d_b


def input_projection(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x W^T + b`` for every step at once, [T, B, I] -> [T, B, G*H]: ``F.linear``'s values
    and gradients, written into a kept :mod:`rnnkit.workspace` buffer on CPU. At hidden 512
    (batch 32, 200 steps) the output is over glibc's mmap threshold, so a fresh one would
    page-fault on every call. Under autocast, and off CPU, it is ``F.linear``."""
    if x.device.type != "cpu" or x.dim() != 3 or torch.is_autocast_enabled("cpu"):
        return torch.nn.functional.linear(x, weight, bias)
    return _InputProjection.apply(x, weight, bias)


def lstm_layer(
    input_gates: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor,
    norms: LayerNorms = NO_NORMS, masks: Masks = NO_MASKS, resets: Resets = NO_RESETS, *,
    why: str = "",
) -> tuple[Tensor, Tensor, Tensor]:
    """Run one LSTM layer over a sequence. Returns (h for every step [T, B, H], h_T, c_T).

    Without layer norm on the recurrent map, ``norms.hh_bias`` is added to the gates before
    their nonlinearities (the two biases only ever appear as a sum). With ``norms.ih_gain``,
    ``input_gates`` is ``W_ih x`` before its layer norm, which the step applies: one pass
    less over the [T, B, 4H] gates forward and backward. ``why``: the caller's route, quoted
    by the double-backward error.
    """
    if resets.rows and (resets.h_init is None or resets.c_init is None):
        raise ValueError("resets need the state to restart from (h_init and c_init)")
    if norms.ih_gain is not None and norms.hh_gain is None:
        raise ValueError("ih_gain (the input map's layer norm) needs hh_gain as well")
    dtype = torch.promote_types(input_gates.dtype, weight_hh.dtype)
    tensors = _state_precision(dtype, input_gates, h0, c0, weight_hh,
                               *_flat(norms, masks, resets))
    with _without_autocast(input_gates.device):
        return _LSTMLayer.apply((resets.rows or {}, why), *tensors)


def gru_layer(
    input_gates: Tensor, h0: Tensor, weight_hh: Tensor, norms: LayerNorms = NO_NORMS,
    masks: Masks = NO_MASKS, resets: Resets = NO_RESETS, *, why: str = "",
) -> tuple[Tensor, Tensor]:
    """Run one GRU layer over a sequence. Returns (h for every step [T, B, H], h_T).

    With ``norms.ih_gain``, ``input_gates`` is ``W_ih x`` before its layer norm, which the
    layer applies in one pass over all steps. The GRU has no cell: ``norms.cell_*``,
    ``masks.keep_c`` and ``resets.c_init`` must be None. ``why``: the caller's route, quoted
    by the double-backward error.
    """
    if resets.rows and resets.h_init is None:
        raise ValueError("resets need the state to restart from (h_init)")
    if (norms.cell_gain, norms.cell_bias, masks.keep_c, resets.c_init) != (None,) * 4:
        raise ValueError("a GRU has no cell: cell_gain, cell_bias, keep_c and c_init are "
                         "the LSTM's")
    dtype = torch.promote_types(input_gates.dtype, weight_hh.dtype)
    tensors = _state_precision(dtype, input_gates, h0, weight_hh, *_flat(norms, masks, resets))
    with _without_autocast(input_gates.device):
        return _GRULayer.apply((resets.rows or {}, why), *tensors)
