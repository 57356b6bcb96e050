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
    input_gates: [T, B, G*H] the input projection of every step (G = 4 LSTM, 3 GRU); for
        :func:`lstm_layer` with ``ih_gain``, before its layer norm (the step applies it).
    weight_hh: [G*H, H].
    hh_gain, hh_bias: [G*H] layer norm of the recurrent map, or None (then ``hh_bias`` is
        the plain recurrent bias).
    candidate_mask: [B, H] recurrent-dropout mask (scaled) or None.
    keep_h, keep_c: [T, B, H] or [T, B, 1] or [T, 1, 1]: how much of the previous state each
        unit keeps at each step (zoneout, and 1 past the end of a sequence), or None.
    resets: {t: bool mask [B, 1]} rows that restart from ``init`` before step t.
"""

from __future__ import annotations

import contextlib

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


def _lstm_forward_step(
    x, ih_gain, ih_bias, ih_stats, raw, hh_gain, hh_bias, c_prev, h_prev, cell_gain, cell_bias,
    mask, keep_c, keep_h, act, c_new, c, tanh_c, h, hh_stats, cell_stats,
):
    """Everything of one LSTM step after the matmul, in eager PyTorch; writes its outputs.

    ``x`` [B, 4H] is ``W_ih x_t + b`` (plus ``W_hh h`` when ``raw`` is None, and then it may
    be ``act`` itself), or ``W_ih x_t`` before its layer norm when ``ih_gain`` is given;
    ``raw`` is ``W_hh h`` before its layer norm (without it, ``hh_bias`` is the plain recurrent
    bias, added to ``x``, or None). Writes the activated gates to ``act``, the
    cell before zoneout to ``c_new``, the new state to ``c`` and ``h``, ``tanh(LN(c_new))`` to
    ``tanh_c`` and layer-norm statistics [2, B] (mean, rstd). The sequence op's row function
    (``forward_rows`` in csrc/lstm_step.cpp) does the same in one pass per row.
    """
    H = c.shape[-1]
    if ih_gain is not None:
        x, mean, rstd = _ln_forward(x, ih_gain, ih_bias)
        ih_stats[0].copy_(mean.view(-1))
        ih_stats[1].copy_(rstd.view(-1))
    if raw is not None:
        y, mean, rstd = _ln_forward(raw, hh_gain, hh_bias)
        hh_stats[0].copy_(mean.view(-1))
        hh_stats[1].copy_(rstd.view(-1))
        torch.add(x, y, out=act)
    elif hh_bias is not None:  # no layer norm: the plain recurrent bias
        torch.add(x, hh_bias, out=act)
    elif x is not act:
        act.copy_(x)
    i, f, g, o = act.split(H, 1)
    act[:, : 2 * H].sigmoid_()
    g.tanh_()
    o.sigmoid_()
    torch.mul(i, g if mask is None else g * mask, out=c_new).addcmul_(f, c_prev)
    if keep_c is not None:
        torch.lerp(c_new, c_prev, keep_c, out=c)
    elif c is not c_new:
        c.copy_(c_new)
    if cell_gain is not None:
        y, mean, rstd = _ln_forward(c_new, cell_gain, cell_bias)
        cell_stats[0].copy_(mean.view(-1))
        cell_stats[1].copy_(rstd.view(-1))
        torch.tanh(y, out=tanh_c)
    else:
        torch.tanh(c_new, out=tanh_c)
    if keep_h is not None:
        torch.lerp(o * tanh_c, h_prev, keep_h, out=h)
    else:
        torch.mul(o, tanh_c, out=h)


def _lstm_backward_step(
    dh, dh_extra, dc, act, tanh_c, c_new, c_prev, mask, keep_c, keep_h, cell_gain,
    cell_stats, raw, hh_gain, hh_stats, x, ih_gain, ih_stats, d_gates, d_raw, d_x, d_cnorm,
    dh_direct, dc_prev,
):
    """The backward of :func:`_lstm_forward_step` for one step; writes its outputs.

    ``dh`` (+ ``dh_extra``) and ``dc`` are dL/dh_t and dL/dc_t. Writes dL/d(preactivations)
    to ``d_gates``, its layer-norm input gradients to ``d_raw`` (the recurrent map's output)
    and ``d_x`` (the input map's, when ``ih_gain`` is given),
    dL/d(the cell layer norm's output) to ``d_cnorm``, the part of dL/dh_{t-1} that zoneout
    passes straight through to ``dh_direct``, and dL/dc_{t-1} to ``dc_prev`` (which may be
    ``dc``). The caller adds ``d_raw W_hh`` to get dL/dh_{t-1}.
    """
    H = c_prev.shape[-1]
    i, f, g, o = act.split(H, 1)
    if dh_extra is not None:
        dh = dh + dh_extra
    if keep_h is not None:
        torch.mul(dh, keep_h, out=dh_direct)
        dh = dh - dh_direct
    d_act = torch.empty_like(act)  # dL/d(activated gates)
    d_i, d_f, d_g, d_o = d_act.split(H, 1)
    torch.mul(dh, tanh_c, out=d_o)
    d_c = torch.ops.aten.tanh_backward(dh * o, tanh_c)
    if cell_gain is not None:
        d_cnorm.copy_(d_c)
        d_c = _ln_input_grad(d_c, c_new, cell_stats[0].unsqueeze(1), cell_stats[1].unsqueeze(1),
                             cell_gain)
    if keep_c is not None:
        dc_direct = dc * keep_c
        d_c += dc - dc_direct
    else:
        d_c += dc
    torch.mul(d_c, g if mask is None else g * mask, out=d_i)
    torch.mul(d_c, c_prev, out=d_f)
    torch.mul(d_c, i if mask is None else i * mask, out=d_g)
    _sigmoid_grad(d_act, act, grad_input=d_gates)
    _tanh_grad(d_g, g, grad_input=d_gates[:, 2 * H : 3 * H])
    torch.mul(d_c, f, out=dc_prev)
    if keep_c is not None:
        dc_prev += dc_direct
    if hh_gain is not None:
        d_raw.copy_(_ln_input_grad(d_gates, raw, hh_stats[0].unsqueeze(1),
                                   hh_stats[1].unsqueeze(1), hh_gain))
    if ih_gain is not None:
        d_x.copy_(_ln_input_grad(d_gates, x, ih_stats[0].unsqueeze(1),
                                 ih_stats[1].unsqueeze(1), ih_gain))


def _gru_forward_step(x, a, h_prev, mask, keep_h, act, a_n, h):
    """Everything of one GRU step after the recurrent map, in eager PyTorch; writes its outputs.

    ``x`` [B, 3H] is ``W_ih x_t + b_ih``, ``a`` [B, 3H] the recurrent map ``W_hh h + b_hh``
    (after its layer norm). Writes the activated gates r, z, n to ``act``, the recurrent part
    of the candidate ``a_n`` and the new state ``h``. The sequence op's row function
    (``forward_rows`` in csrc/gru_step.cpp) does the same in one pass per row.
    """
    H = h.shape[-1]
    torch.add(x[:, : 2 * H], a[:, : 2 * H], out=act[:, : 2 * H]).sigmoid_()
    r, u = act[:, :H], act[:, H : 2 * H]
    a_n.copy_(a[:, 2 * H :])
    n = torch.addcmul(x[:, 2 * H :], r, a_n, out=act[:, 2 * H :]).tanh_()
    if mask is not None:
        n = n * mask
    if keep_h is not None:
        torch.lerp(torch.lerp(n, h_prev, u), h_prev, keep_h, out=h)
    else:
        torch.lerp(n, h_prev, u, out=h)


def _gru_backward_step(dh, dh_extra, act, a_n, h_prev, mask, keep_h, d_gates, d_a, dh_carry):
    """The backward of :func:`_gru_forward_step` for one step; writes its outputs.

    ``dh`` (+ ``dh_extra``) is dL/dh_t. Writes dL/d(preactivations) to ``d_gates`` (= dL/dx),
    dL/da to ``d_a``, and to ``dh_carry`` (which may be ``dh``) the part of dL/dh_{t-1} that
    does not pass through the recurrent map; the caller adds ``d_a W_hh``.
    """
    H = h_prev.shape[-1]
    r, u, n = act.split(H, 1)
    d = dh if dh_extra is None else dh + dh_extra
    direct = None
    if keep_h is not None:  # zoneout: the kept fraction flows straight to h_{t-1}
        direct = d * keep_h
        d = d - direct
    n_in = n if mask is None else n * mask
    _sigmoid_grad(d * (h_prev - n_in), u, grad_input=d_gates[:, H : 2 * H])
    d_n = torch.addcmul(d, d, u, value=-1.0)  # d * (1 - z)
    if mask is not None:
        d_n *= mask
    d_n = _tanh_grad(d_n, n, grad_input=d_gates[:, 2 * H :])
    _sigmoid_grad(d_n * a_n, r, grad_input=d_gates[:, :H])
    d_a[:, : 2 * H] = d_gates[:, : 2 * H]
    torch.mul(d_n, r, out=d_a[:, 2 * H :])
    if direct is None:
        torch.mul(d, u, out=dh_carry)
    else:
        torch.addcmul(direct, d, u, out=dh_carry)


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


def _lstm_forward_loop(input_gates, w_t, norms, masks, resets, h_init, c_init, bufs) -> dict:
    """The LSTM forward as a Python loop over the eager step, writing into ``bufs``. Returns
    the restarts {t: (rows, h, c)} the backward needs."""
    ih_gain, ih_bias, hh_gain, hh_bias, cell_gain, cell_bias = norms
    candidate_mask, keep_c, keep_h = masks
    hs, cs, act, raw_hh, c_new, tanh_c, ih_stats, hh_stats, cell_stats = bufs
    T = input_gates.shape[0]
    restarts = {}
    # Per-step views made up front in C++ (unbind) instead of indexing in the loop.
    X, Z, HS, CS, CN, TC = (u.unbind(0) for u in (input_gates, act, hs, cs, c_new, tanh_c))
    RAW, KH, KC = (_steps(u, T) for u in (raw_hh, keep_h, keep_c))
    IST, HST, CST = (_steps(u, T, dim=1) for u in (ih_stats, hh_stats, cell_stats))
    h, c = HS[0], CS[0]  # contiguous copies of h0 and c0, as the steps need
    for t in range(T):
        if t in resets:
            m = resets[t]
            h, c = torch.where(m, h_init, h), torch.where(m, c_init, c)
            restarts[t] = (m, h, c)
        if raw_hh is not None:
            torch.mm(h, w_t, out=RAW[t])
            x = X[t]
        else:
            x = torch.addmm(X[t], h, w_t, out=Z[t])
        _lstm_forward_step(x, ih_gain, ih_bias, IST[t], RAW[t], hh_gain, hh_bias, c, h,
                           cell_gain, cell_bias, candidate_mask, KC[t], KH[t], Z[t], CN[t],
                           CS[t + 1], TC[t], HS[t + 1], HST[t], CST[t])
        h, c = HS[t + 1], CS[t + 1]
    return restarts


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, input_gates, h0, c0, weight_hh, ih_gain, ih_bias, hh_gain, hh_bias, cell_gain,
        cell_bias, h_init, c_init, candidate_mask, keep_h, keep_c, resets, why,
    ):
        T, B, G = input_gates.shape
        H = G // 4
        input_gates = input_gates.contiguous()
        ctx.device, ctx.why = input_gates.device, why

        def new(*shape: int) -> Tensor:
            return workspace.empty(shape, input_gates)

        keep_h, keep_c = (_full(k, (T, B, H), new) for k in (keep_h, keep_c))
        candidate_mask = _full(candidate_mask, (B, H), new)
        hs, cs, tanh_c = new(T + 1, B, H), new(T + 1, B, H), new(T, B, H)  # hs[t+1] = h_t
        act = new(T, B, G)  # activated gates i, f, g, o
        raw_hh = new(T, B, G) if hh_gain is not None else None
        c_new = new(T, B, H) if keep_c is not None else cs[1:]
        ih_stats = new(2, T, B) if ih_gain is not None else None  # mean, rstd
        hh_stats = new(2, T, B) if hh_gain is not None else None
        cell_stats = new(2, T, B) if cell_gain is not None else None
        w_t = _transposed(weight_hh, T)
        hs[0], cs[0] = h0, c0
        seq = _sequence_ops(input_gates, "lstm")
        bufs = (hs, cs, act, raw_hh, c_new, tanh_c, ih_stats, hh_stats, cell_stats)
        norms = (ih_gain, ih_bias, hh_gain, hh_bias, cell_gain, cell_bias)
        masks = (candidate_mask, keep_c, keep_h)
        if seq is None and hh_gain is None and hh_bias is not None:
            # The eager step reads the plain recurrent bias as part of its input; the sequence
            # op adds it in its pass over each row instead of a pass over all of [T, B, 4H].
            input_gates, norms = input_gates + hh_bias, (*norms[:3], None, *norms[4:])
        if seq is not None:
            reset = _reset_mask(resets, T, B, input_gates.device)
            h_init, c_init = (_rows(s, B, H) if reset is not None else None
                              for s in (h_init, c_init))
            seq[0](input_gates, w_t, *norms, *masks, reset, h_init, c_init, *bufs)
            ctx.reset, ctx.restarts = (reset, h_init, c_init), {}
        else:
            ctx.reset = None
            ctx.restarts = _lstm_forward_loop(input_gates, w_t, norms, masks, resets, h_init,
                                              c_init, bufs)
        ctx.save_for_backward(
            weight_hh, ih_gain, ih_bias, hh_gain, hh_bias, cell_gain, cell_bias, hs, cs, c_new,
            tanh_c, act, input_gates if ih_gain is not None else None, raw_hh, candidate_mask,
            keep_h, keep_c, ih_stats, hh_stats, cell_stats,
        )
        return hs[1:], hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_hn, d_cn):  # type: ignore[override]
        _first_order_only(ctx.why)
        with _without_autocast(ctx.device):
            return _LSTMLayer._backward(ctx, d_hs, d_hn, d_cn)

    @staticmethod
    def _backward(ctx, d_hs, d_hn, d_cn):
        (weight_hh, ih_gain, ih_bias, hh_gain, hh_bias, cell_gain, cell_bias, hs, cs, c_new,
         tanh_c, act, raw_ih, raw_hh, candidate_mask, keep_h, keep_c, ih_stats, hh_stats,
         cell_stats) = ctx.saved_tensors
        d_gates = workspace.empty(act.shape, act)  # dL/d(input_gates) = dL/d(preactivations)
        d_raw = workspace.empty(act.shape, act) if raw_hh is not None else None
        d_x = workspace.empty(act.shape, act) if raw_ih is not None else None
        d_cnorm = workspace.empty(tanh_c.shape, tanh_c) if cell_gain is not None else None
        dh = _contiguous_copy(d_hn) if d_hn is not None else torch.zeros_like(hs[0])
        dc = _contiguous_copy(d_cn) if d_cn is not None else torch.zeros_like(cs[0])
        if d_hs is not None:
            d_hs = _contiguous(d_hs)
        grads = (d_gates, d_raw, d_x, d_cnorm)
        saved = (act, tanh_c, hs, cs, c_new, candidate_mask, keep_c, keep_h, cell_gain,
                 cell_stats, raw_hh, hh_gain, hh_stats, raw_ih, ih_gain, ih_stats)
        if ctx.reset is not None:  # the compiled sequence op ran the forward
            d_weight, d_h_init, d_c_init = _lstm_backward_seq(
                ctx.reset, weight_hh, d_hs, dh, dc, saved, grads)
        else:
            d_weight, d_h_init, d_c_init = _lstm_backward_loop(
                ctx.restarts, weight_hh, d_hs, dh, dc, saved, grads)
        d_ih_gain = d_ih_bias = d_hh_gain = d_hh_bias = d_cell_gain = d_cell_bias = None
        if raw_ih is not None:
            d_ih_gain, d_ih_bias = _ln_param_grads(d_gates, raw_ih, *ih_stats, ih_gain, ih_bias)
        if raw_hh is not None:
            d_hh_gain, d_hh_bias = _ln_param_grads(d_gates, raw_hh, *hh_stats, hh_gain, hh_bias)
        elif hh_bias is not None:
            d_hh_bias = d_gates.sum((0, 1))
        if cell_gain is not None:
            d_cell_gain, d_cell_bias = _ln_param_grads(
                d_cnorm, c_new, *cell_stats, cell_gain, cell_bias
            )
        return (d_gates if d_x is None else d_x, dh, dc, d_weight, d_ih_gain, d_ih_bias,
                d_hh_gain, d_hh_bias, d_cell_gain, d_cell_bias, d_h_init, d_c_init, None, None,
                None, None, None)


def _lstm_backward_seq(reset_state, weight_hh, d_hs, dh, dc, saved, grads):
    """The LSTM backward over every step in one call of the compiled sequence op; ``dh`` and
    ``dc`` become dL/dh0 and dL/dc0. Returns (dL/dW_hh, dL/dh_init, dL/dc_init)."""
    reset, h_init, c_init = reset_state
    d_h_init = torch.zeros_like(h_init) if reset is not None else None
    d_c_init = torch.zeros_like(c_init) if reset is not None else None
    d_weight = weight_hh.new_empty(weight_hh.shape)
    (act, tanh_c, hs, cs, c_new, mask, keep_c, keep_h, cell_gain, cell_stats, raw_hh, hh_gain,
     hh_stats, raw_ih, ih_gain, ih_stats) = saved
    d_gates, d_raw, d_x, d_cnorm = grads
    torch.ops.rnnkit.lstm_backward_seq(
        weight_hh, d_hs, dh, dc, act, tanh_c, hs, cs, c_new, mask, keep_c, keep_h, reset,
        h_init, c_init, cell_gain, cell_stats, raw_hh, hh_gain, hh_stats, raw_ih, ih_gain,
        ih_stats, d_gates, d_raw, d_x, d_cnorm, d_h_init, d_c_init, d_weight,
    )
    return d_weight, d_h_init, d_c_init


def _lstm_backward_loop(restarts, weight_hh, d_hs, dh, dc, saved, grads):
    """The LSTM backward as a Python loop over the eager step; writes
    dL/dh0 and dL/dc0 into ``dh`` and ``dc``. Returns (dL/dW_hh, dL/dh_init, dL/dc_init)."""
    (act, tanh_c, hs, cs, c_new, mask, keep_c, keep_h, cell_gain, cell_stats, raw_hh, hh_gain,
     hh_stats, raw_ih, ih_gain, ih_stats) = saved
    d_gates, d_raw, d_x, d_cnorm = grads
    T = act.shape[0]
    dh_direct = torch.empty_like(hs[0]) if keep_h is not None else None
    d_h_init = torch.zeros_like(hs[0]) if restarts else None
    d_c_init = torch.zeros_like(cs[0]) if restarts else None
    dh_out, dc_out = dh, dc
    A, TC, CS, CN, DZ = (u.unbind(0) for u in (act, tanh_c, cs, c_new, d_gates))
    RAW, DRAW, DCN, KH, KC, DHS, X, DX = (
        _steps(u, T) for u in (raw_hh, d_raw, d_cnorm, keep_h, keep_c, d_hs, raw_ih, d_x)
    )
    IST, HST, CST = (_steps(u, T, dim=1) for u in (ih_stats, hh_stats, cell_stats))
    for t in range(T - 1, -1, -1):
        c_prev = restarts[t][2] if t in restarts else CS[t]
        _lstm_backward_step(dh, DHS[t], dc, A[t], TC[t], CN[t], c_prev, mask, KC[t], KH[t],
                            cell_gain, CST[t], RAW[t], hh_gain, HST[t], X[t], ih_gain, IST[t],
                            DZ[t], DRAW[t], DX[t], DCN[t], dh_direct, dc)
        d_pre = DZ[t] if d_raw is None else DRAW[t]  # dL/d(W_hh h_{t-1})
        if keep_h is not None:
            dh = torch.addmm(dh_direct, d_pre, weight_hh)
        else:
            dh = torch.mm(d_pre, weight_hh)
        if t in restarts:
            m = restarts[t][0]
            d_h_init += torch.where(m, dh, 0.0)
            d_c_init += torch.where(m, dc, 0.0)
            dh, dc = torch.where(m, 0.0, dh), torch.where(m, 0.0, dc)
    dh_out.copy_(dh)
    dc_out.copy_(dc)
    return _weight_grad(d_gates if d_raw is None else d_raw, hs, restarts), d_h_init, d_c_init


def _gru_forward_loop(input_gates, w_t, hh_gain, hh_bias, masks, resets, h_init, bufs):
    """The GRU forward as a Python loop over the eager step, writing into ``bufs``. Returns
    the restarts {t: (rows, h)} and the layer-norm statistics (or None)."""
    candidate_mask, keep_h = masks
    hs, act, a_n, raw_hh = bufs
    T, B, G = input_gates.shape
    a = workspace.empty((B, G), input_gates)  # the recurrent map of the current step
    hh_stats = []
    restarts = {}
    X, Z, AN, HS = (u.unbind(0) for u in (input_gates, act, a_n, hs))
    RAW, KH = _steps(raw_hh, T), _steps(keep_h, T)
    h = HS[0]  # a contiguous copy of h0, as the steps need
    for t in range(T):
        if t in resets:
            h = torch.where(resets[t], h_init, h)
            restarts[t] = (resets[t], h)
        if raw_hh is not None:
            torch.mm(h, w_t, out=RAW[t])
            a, mean, rstd = _ln_forward(RAW[t], hh_gain, hh_bias)
            hh_stats.append((mean, rstd))
        elif hh_bias is not None:
            torch.addmm(hh_bias, h, w_t, out=a)
        else:
            torch.mm(h, w_t, out=a)
        _gru_forward_step(X[t], a, h, candidate_mask, KH[t], Z[t], AN[t], HS[t + 1])
        h = HS[t + 1]
    return restarts, [torch.stack(s) for s in zip(*hh_stats)] if hh_stats else None


def _gru_backward_loop(restarts, hh_stats, weight_hh, hh_gain, d_hs, dh, saved, grads):
    """The GRU backward as a Python loop over the eager step; writes dL/dh0
    into ``dh``. Returns (dL/dW_hh, dL/dh_init)."""
    hs, act, a_n, raw_hh, mask, keep_h = saved
    d_gates, d_a, d_raw = grads
    T = act.shape[0]
    d_h_init = torch.zeros_like(hs[0]) if restarts else None
    dh_out = dh
    A, AN, HS, DZ, DA, DRAW = (u.unbind(0) for u in (act, a_n, hs, d_gates, d_a, d_raw))
    RAW, KH, DHS = (_steps(u, T) for u in (raw_hh, keep_h, d_hs))
    for t in range(T - 1, -1, -1):
        h_prev = restarts[t][1] if t in restarts else HS[t]
        _gru_backward_step(dh, DHS[t], A[t], AN[t], h_prev, mask, KH[t], DZ[t], DA[t], dh)
        if raw_hh is not None:
            mean, rstd = hh_stats[0][t], hh_stats[1][t]
            DRAW[t].copy_(_ln_input_grad(DA[t], RAW[t], mean, rstd, hh_gain))
        dh = torch.addmm(dh, DRAW[t], weight_hh)
        if t in restarts:
            m = restarts[t][0]
            d_h_init += torch.where(m, dh, 0.0)
            dh = torch.where(m, 0.0, dh)
    dh_out.copy_(dh)
    return _weight_grad(d_raw, hs, restarts), d_h_init


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, input_gates, h0, weight_hh, ih_gain, ih_bias, hh_gain, hh_bias, h_init,
        candidate_mask, keep_h, resets, why,
    ):
        T, B, G = input_gates.shape
        H = G // 3
        input_gates = input_gates.contiguous()
        ctx.device, ctx.why = input_gates.device, why

        def new(*shape: int) -> Tensor:
            return workspace.empty(shape, input_gates)

        keep_h = _full(keep_h, (T, B, H), new)
        candidate_mask = _full(candidate_mask, (B, H), new)
        hs = new(T + 1, B, H)  # hs[t+1] = h_t
        hs[0] = h0
        act = new(T, B, G)  # r, z, n after their nonlinearities
        a_n = new(T, B, H)  # the recurrent part of the candidate, b_hn included
        raw_hh = new(T, B, G) if hh_gain is not None else None
        w_t = _transposed(weight_hh, T)
        masks, bufs = (candidate_mask, keep_h), (hs, act, a_n, raw_hh)
        seq = _sequence_ops(input_gates, "gru")
        if seq is not None:
            reset = _reset_mask(resets, T, B, input_gates.device)
            h_init = _rows(h_init, B, H) if reset is not None else None
            ih_stats = new(2, T, B) if ih_gain is not None else None  # mean, rstd
            hh_stats = new(2, T, B) if hh_gain is not None else None
            seq[0](input_gates, w_t, ih_gain, ih_bias, hh_gain, hh_bias, *masks, reset, h_init,
                   *bufs, ih_stats, hh_stats)
            ctx.reset, ctx.restarts, ctx.hh_stats = (reset, h_init), {}, hh_stats
        else:
            ctx.reset = None
            x, ih_stats = input_gates, None
            if ih_gain is not None:  # the input map's layer norm, over all steps at once
                x, *ih_stats = _ln_forward(input_gates, ih_gain, ih_bias)
            ctx.restarts, ctx.hh_stats = _gru_forward_loop(
                x, w_t, hh_gain, hh_bias, masks, resets, h_init, bufs)
        ctx.ih_stats = ih_stats
        ctx.save_for_backward(
            weight_hh, ih_gain, ih_bias, hh_gain, hh_bias, hs, act, a_n,
            input_gates if ih_gain is not None else None, raw_hh, candidate_mask, keep_h,
        )
        return hs[1:], hs[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_hn):  # type: ignore[override]
        _first_order_only(ctx.why)
        with _without_autocast(ctx.device):
            return _GRULayer._backward(ctx, d_hs, d_hn)

    @staticmethod
    def _backward(ctx, d_hs, d_hn):
        (weight_hh, ih_gain, ih_bias, hh_gain, hh_bias, hs, act, a_n, raw_ih, raw_hh,
         candidate_mask, keep_h) = ctx.saved_tensors
        d_gates = workspace.empty(act.shape, act)  # dL/d(the input map, after its LN)
        d_x = None  # dL/d(the input map, before its LN)
        d_a = workspace.empty(act.shape, act)  # dL/d (recurrent projection, after its LN)
        d_raw = workspace.empty(act.shape, act) if raw_hh is not None else d_a
        dh = _contiguous_copy(d_hn) if d_hn is not None else torch.zeros_like(hs[0])
        if d_hs is not None:
            d_hs = _contiguous(d_hs)
        saved = (hs, act, a_n, raw_hh, candidate_mask, keep_h)
        if ctx.reset is not None:  # the compiled sequence op ran the forward
            reset, h_init = ctx.reset
            d_h_init = torch.zeros_like(h_init) if reset is not None else None
            if raw_ih is not None:
                d_x = workspace.empty(act.shape, act)
            d_weight = weight_hh.new_empty(weight_hh.shape)
            torch.ops.rnnkit.gru_backward_seq(
                weight_hh, d_hs, dh, act, a_n, hs, candidate_mask, keep_h, reset, h_init,
                raw_hh, hh_gain, ctx.hh_stats, raw_ih, ih_gain, ctx.ih_stats, d_gates, d_a,
                d_raw if raw_hh is not None else None, d_x, d_h_init, d_weight,
            )
        else:
            d_weight, d_h_init = _gru_backward_loop(
                ctx.restarts, ctx.hh_stats, weight_hh, hh_gain, d_hs, dh, saved,
                (d_gates, d_a, d_raw))
            if raw_ih is not None:
                d_x = _ln_input_grad(d_gates, raw_ih, *ctx.ih_stats, ih_gain)
        d_ih_gain = d_ih_bias = d_hh_gain = None
        if raw_ih is not None:
            d_ih_gain, d_ih_bias = _ln_param_grads(d_gates, raw_ih, *ctx.ih_stats, ih_gain,
                                                   ih_bias)
        if raw_hh is not None:
            d_hh_gain, d_hh_bias = _ln_param_grads(d_a, raw_hh, *ctx.hh_stats, hh_gain, hh_bias)
        elif hh_bias is not None:
            d_hh_bias = d_a.sum((0, 1))
        else:
            d_hh_bias = None
        return (d_gates if d_x is None else d_x, dh, d_weight, d_ih_gain, d_ih_bias, d_hh_gain,
                d_hh_bias, d_h_init, None, None, None, None)


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
    hh_gain: Tensor | None = None, hh_bias: Tensor | None = None,
    ih_gain: Tensor | None = None, ih_bias: Tensor | None = None,
    cell_gain: Tensor | None = None, cell_bias: Tensor | None = None,
    candidate_mask: Tensor | None = None, keep_h: Tensor | None = None,
    keep_c: Tensor | None = None, resets: dict[int, Tensor] | None = None,
    h_init: Tensor | None = None, c_init: Tensor | None = None, *, why: str = "",
) -> tuple[Tensor, Tensor, Tensor]:
    """Run one LSTM layer over a sequence. Returns (h for every step [T, B, H], h_T, c_T).

    Without layer norm on the recurrent map, ``hh_bias`` is added to the gates before their
    nonlinearities (the two biases only ever appear as a sum). With ``ih_gain``,
    ``input_gates`` is ``W_ih x`` before its layer norm (gain ``ih_gain``, bias ``ih_bias``),
    which the step applies: one pass less over the [T, B, 4H] gates forward and backward.
    ``why``: the caller's route, quoted by the double-backward error.
    """
    resets = resets or {}
    if resets and (h_init is None or c_init is None):
        raise ValueError("resets need the state to restart from (h_init and c_init)")
    if ih_gain is not None and hh_gain is None:
        raise ValueError("ih_gain (the input map's layer norm) needs hh_gain as well")
    dtype = torch.promote_types(input_gates.dtype, weight_hh.dtype)
    args = _state_precision(dtype, input_gates, h0, c0, weight_hh, ih_gain, ih_bias, hh_gain,
                            hh_bias, cell_gain, cell_bias, h_init, c_init, candidate_mask,
                            keep_h, keep_c)
    with _without_autocast(input_gates.device):
        return _LSTMLayer.apply(*args, resets, why)


def gru_layer(
    input_gates: Tensor, h0: Tensor, weight_hh: Tensor,
    hh_gain: Tensor | None = None, hh_bias: Tensor | None = None,
    ih_gain: Tensor | None = None, ih_bias: Tensor | None = None,
    candidate_mask: Tensor | None = None, keep_h: Tensor | None = None,
    resets: dict[int, Tensor] | None = None, h_init: Tensor | None = None, *, why: str = "",
) -> tuple[Tensor, Tensor]:
    """Run one GRU layer over a sequence. Returns (h for every step [T, B, H], h_T).

    With ``ih_gain``, ``input_gates`` is ``W_ih x`` before its layer norm (gain ``ih_gain``,
    bias ``ih_bias``), which the layer applies in one pass over all steps. ``why``: the
    caller's route, quoted by the double-backward error.
    """
    resets = resets or {}
    if resets and h_init is None:
        raise ValueError("resets need the state to restart from (h_init)")
    dtype = torch.promote_types(input_gates.dtype, weight_hh.dtype)
    args = _state_precision(dtype, input_gates, h0, weight_hh, ih_gain, ih_bias, hh_gain,
                            hh_bias, h_init, candidate_mask, keep_h)
    with _without_autocast(input_gates.device):
        return _GRULayer.apply(*args, resets, why)
