"""LSTM and GRU over sequences: stacking, summed outputs, tricks, and the fast paths.

``rnnkit.LSTM`` / ``rnnkit.GRU`` take torch.nn.LSTM / GRU's arguments, state_dict keys, gate
order and call signature. With every trick off they call PyTorch's fused kernel (the same
one torch.nn uses), except a GRU on CPU where rnnkit's compiled step kernels built: there the
fast loop below is faster (benchmarks/cells.py). Tricks that change the step itself (layer
norm, recurrent dropout, zoneout, state resets) run a per-layer time loop:
:mod:`rnnkit.fast_loop` (hand-written backward) by default, or the plain autograd loop over
:mod:`rnnkit.functional` here (``fast=False``), which is the reference the fast loop is
tested against. The fast loop's backward is first order: it refuses double backward, for
which ``fast=False`` gives the autograd loop (or, every trick off, torch's kernel).
:func:`rnnkit.dispatch.route` (``module.route(x)``) says which path a call takes and why.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import dispatch, fast_loop, functional
from rnnkit import init as rnn_init
from rnnkit.cells import _check_bias, init_recurrent_parameters, set_gate_bias
from rnnkit.regularizers import (
    SequenceMasks,
    check_choice,
    check_rate,
    dropout,
    dropout_mask,
    weight_drop,
    zoneout,
    zoneout_keep,
)

DROPOUT_MODES = ("standard", "locked")
RECURRENT_DROPOUT_MODES = ("per_call", "per_sequence", "per_step")


class _Parameters(nn.Module):
    """The constructor's arguments, the parameters and their init, and the per-layer views of
    them that every path reads (weights, input gates, layer norms, zoneout rates)."""

    num_gates: int
    state_names: tuple[str, ...]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        layer_norm: bool = False,
        input_layers: int = 0,
        sum_outputs: bool = False,
        learned_initial_state: bool = False,
        recurrent_dropout: float = 0.0,
        recurrent_dropout_mode: str = "per_call",
        weight_drop: float = 0.0,
        dropout_mode: str = "standard",
        input_dropout: float = 0.0,
        output_dropout: float = 0.0,
        init: str = "default",
        chrono_init: float | None = None,
        fast: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value, low in [("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                                ("num_layers", num_layers, 1), ("input_layers", input_layers, 0)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: {arg} must be an int >= {low}, got {value!r}")
        if bidirectional:
            raise NotImplementedError(
                f"{name}: bidirectional=True is not supported; use torch.nn.{name} for it"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = check_rate("dropout", dropout)
        self.bidirectional = False
        self.layer_norm = layer_norm
        self.sum_outputs = sum_outputs
        self.learned_initial_state = learned_initial_state
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.recurrent_dropout_mode = check_choice(
            "recurrent_dropout_mode", recurrent_dropout_mode, RECURRENT_DROPOUT_MODES)
        self.weight_drop = check_rate("weight_drop", weight_drop)
        self.dropout_mode = check_choice("dropout_mode", dropout_mode, DROPOUT_MODES)
        self.input_dropout = check_rate("input_dropout", input_dropout)
        self.output_dropout = check_rate("output_dropout", output_dropout)
        self.init = check_choice("init", init, rnn_init.SCHEMES)
        self.chrono_init = rnn_init.check_chrono(chrono_init)
        # Locked-dropout masks live here, not in the state: the state stays torch.nn's
        # (h, c) tensors that trainers detach and carry (see SequenceMasks).
        self.sequence_masks = SequenceMasks()
        self.fast = fast
        factory = {"device": device, "dtype": dtype}

        # S3: feed-forward layers project the input before the first recurrence.
        self.input_layers: nn.Sequential | None = None
        if input_layers:
            mlp: list[nn.Module] = []
            for k in range(input_layers):
                mlp += [nn.Linear(input_size if k == 0 else hidden_size, hidden_size, **factory),
                        nn.ELU()]
            self.input_layers = nn.Sequential(*mlp)

        G = self.num_gates * hidden_size
        for layer in range(num_layers):
            in_size = input_size if layer == 0 and not input_layers else hidden_size
            self._param(f"weight_ih_l{layer}", (G, in_size), factory)
            self._param(f"weight_hh_l{layer}", (G, hidden_size), factory)
            if bias:
                self._param(f"bias_ih_l{layer}", (G,), factory)
                self._param(f"bias_hh_l{layer}", (G,), factory)
            if layer_norm:
                # Ba 2016: one LN per input of each map, gain here; its bias is bias_ih/bias_hh.
                self._param(f"ln_weight_ih_l{layer}", (G,), factory)
                self._param(f"ln_weight_hh_l{layer}", (G,), factory)
                self._extra_layer_norm_params(layer, factory)
        if learned_initial_state:
            for s in self.state_names:
                self._param(f"initial_{s}", (num_layers, hidden_size), factory)
        self.reset_parameters()

    def _param(self, name: str, shape: tuple[int, ...], factory: dict) -> None:
        self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))

    def _extra_layer_norm_params(self, layer: int, factory: dict) -> None:
        pass

    def reset_parameters(self) -> None:
        """torch.nn's init (uniform in +-1/sqrt(H)); with layer norm, gains 1 and biases 0;
        learned initial states 0; then W_hh's ``init`` scheme, ``chrono_init`` and the gate
        bias init of S6 (:mod:`rnnkit.init`)."""
        init_recurrent_parameters(
            ((n, p) for n, p in self.named_parameters() if not n.startswith("input_layers")),
            self.hidden_size, self.layer_norm,
        )
        if self.input_layers is not None:
            for m in self.input_layers:
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        rnn_init.apply_scheme(self, self.init)
        if self.chrono_init is not None:
            rnn_init.chrono_(self, self.chrono_init)
        self._init_gate_biases()

    def _init_gate_biases(self) -> None:
        pass

    def _set_gate_bias(self, arg: str, gate: int, value: float | None) -> None:
        """Make gate ``gate``'s total bias (bias_ih + bias_hh) equal ``value`` in every layer."""
        if value is None:
            return
        _check_bias(self, arg, value)
        for layer in range(self.num_layers):
            set_gate_bias(getattr(self, f"bias_ih_l{layer}"), getattr(self, f"bias_hh_l{layer}"),
                          gate, self.hidden_size, value)

    def _layer_weights(self, layer: int, weight_hh: Tensor) -> list[Tensor]:
        """The kernel's weights of one layer, with this call's (maybe dropped) W_hh."""
        weights = [getattr(self, f"weight_ih_l{layer}"), weight_hh]
        if self.bias:
            weights += [getattr(self, f"bias_ih_l{layer}"), getattr(self, f"bias_hh_l{layer}")]
        return weights

    def _zoneout_rates_nonzero(self) -> bool:
        return any(p > 0 for p in self._zoneout_rates())

    def _zoneout_rates(self) -> tuple[float, ...]:
        raise NotImplementedError

    def _input_gates(self, x: Tensor, layer: int, fast: bool = False) -> Tensor:
        """``W_ih x + b_ih`` for all steps at once, layer-normalized with layer_norm (Ba 2016);
        ``fast`` leaves the layer norm (and its bias) to the fast loop's layer, and writes
        into a kept buffer (:func:`fast_loop.input_projection`)."""
        w = getattr(self, f"weight_ih_l{layer}")
        norm = self._ih_norm(layer)
        bias = getattr(self, f"bias_ih_l{layer}") if self.bias else None
        if not fast:
            return functional.projection(x, w, bias, norm)
        return fast_loop.input_projection(x, w, bias if norm is None else None)

    def _ih_norm(self, layer: int) -> functional.Norm:
        """Gain and bias of the input map's layer norm (its bias is b_ih), or None."""
        if not self.layer_norm:
            return None
        bias = getattr(self, f"bias_ih_l{layer}") if self.bias else None
        return getattr(self, f"ln_weight_ih_l{layer}"), bias

    def _hh_norm(self, layer: int) -> functional.Norm:
        if not self.layer_norm:
            return None
        bias = getattr(self, f"bias_hh_l{layer}") if self.bias else None
        return getattr(self, f"ln_weight_hh_l{layer}"), bias

    def _cell_norm(self, layer: int) -> functional.Norm:
        """The cell's layer norm (the LSTM's), or None."""
        return None

    def _layer_norms(self, layer: int) -> fast_loop.LayerNorms:
        """Layer ``layer``'s norms as the fast loop takes them: without a recurrent norm,
        hh_bias is the plain b_hh."""
        ih_gain, ih_bias = self._ih_norm(layer) or (None, None)
        hh_gain, hh_bias = self._hh_norm(layer) or (None, None)
        if hh_gain is None and self.bias:
            hh_bias = getattr(self, f"bias_hh_l{layer}")
        cell_gain, cell_bias = self._cell_norm(layer) or (None, None)
        return fast_loop.LayerNorms(ih_gain, ih_bias, hh_gain, hh_bias, cell_gain, cell_bias)


class _State:
    """The recurrent state (the initial one, checks of a given one, its dtype) and the per-call
    inputs beside it: lengths and resets."""

    def initial_state(self, batch_size: int, device=None, dtype=None):
        """The state used when none is passed: zeros, or the learned initial state (S5)
        expanded over the batch. Each tensor is [num_layers, batch_size, hidden_size]."""
        ref = self.weight_hh_l0
        device = device or ref.device
        dtype = dtype or ref.dtype
        shape = (self.num_layers, batch_size, self.hidden_size)
        if self.learned_initial_state:
            states = [getattr(self, f"initial_{s}").to(dtype).unsqueeze(1).expand(shape)
                      for s in self.state_names]
        else:
            states = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.state_names]
        return self._pack_state(states)

    def _pack_state(self, states: list[Tensor]):
        return tuple(states) if len(states) > 1 else states[0]

    def _unpack_state(self, state) -> list[Tensor]:
        return list(state) if isinstance(state, (tuple, list)) else [state]

    def _check_state(self, state, batch_size: int, x: Tensor) -> list[Tensor]:
        name = type(self).__name__
        states = self._unpack_state(state)
        expected = (self.num_layers, batch_size, self.hidden_size)
        if len(states) != len(self.state_names):
            raise ValueError(
                f"{name}: state must be {self._state_doc()}, got {len(states)} tensors"
            )
        for s_name, s in zip(self.state_names, states):
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise ValueError(f"{name}: state {s_name} must have shape {expected}, got {got}")
        dtype = self._state_dtype(x)
        return [s if s.dtype == dtype else s.to(dtype) for s in states]

    def _state_dtype(self, x: Tensor) -> torch.dtype:
        """The recurrent state's dtype: the input's, except under autocast, where a bfloat16 or
        float16 input projection must not round the state (it stays in the weights' dtype)."""
        if torch.is_autocast_enabled(x.device.type):
            return self.weight_hh_l0.dtype
        return x.dtype

    def _state_doc(self) -> str:
        return "(h, c)" if len(self.state_names) == 2 else "h"

    def _valid_steps(self, lengths, T, B, device, dtype) -> Tensor | None:
        """[T, B, 1] 1.0 where t < lengths[b], or None when every row is full length."""
        if lengths is None:
            return None
        name = type(self).__name__
        lengths = torch.as_tensor(lengths)
        if lengths.shape != (B,) or lengths.is_floating_point():
            raise ValueError(f"{name}: lengths must be an int tensor of shape ({B},), got "
                             f"{lengths.dtype} {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > T:
            raise ValueError(f"{name}: lengths must be in [1, {T}] (the sequence length), got "
                             f"min {int(lengths.min())} max {int(lengths.max())}")
        steps = torch.arange(T, device=device).unsqueeze(1)
        return (steps < lengths.to(device).unsqueeze(0)).unsqueeze(2).to(dtype)

    def _check_reset(self, reset, T, B, device) -> Tensor | None:
        """Reset mask as bool [T, B], or None when nothing is reset."""
        if reset is None:
            return None
        expected = (B, T) if self.batch_first else (T, B)
        if not isinstance(reset, Tensor) or tuple(reset.shape) != expected:
            got = tuple(reset.shape) if isinstance(reset, Tensor) else type(reset).__name__
            raise ValueError(f"{type(self).__name__}: reset must be a bool tensor of shape "
                             f"{expected}, got {got}")
        reset = reset.to(device=device, dtype=torch.bool)
        reset = reset.t() if self.batch_first else reset
        return reset if bool(reset.any()) else None


class _Streaming:
    """One time step at a time: :meth:`step`, and the shortcut a one-step eval call takes around
    the sequence machinery."""

    def step(self, input: Tensor, state=None):
        """One time step for streaming inference: input [B, input_size] -> ([B, H], state).
        ``self.route(input)`` says which path it takes.

        Gives the same numbers as the sequence call over the same inputs in eval mode. In
        training, locked-dropout masks and ``recurrent_dropout_mode="per_sequence"`` masks
        are kept across step() calls (:class:`rnnkit.regularizers.SequenceMasks`) until a
        call without state; ``"per_call"`` recurrent-dropout masks and weight-drop masks are
        drawn anew at every call, so at every step here.
        """
        if not isinstance(input, Tensor) or input.dim() != 2:
            shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{type(self).__name__}.step: input must be [B, input_size], "
                             f"got shape {shape}")
        output, state = self(input.unsqueeze(1 if self.batch_first else 0), state)
        return output.squeeze(1 if self.batch_first else 0), state

    def _streaming_shortcut(self, x: Tensor) -> bool:
        """One step without gradients in eval: dropout, weight drop and recurrent dropout are
        identities there, and zoneout is its expectation."""
        return (not self.training and dispatch.streaming_step(x)
                and not dispatch.func_transform_active()
                and not torch.is_autocast_enabled(x.device.type))

    def _streaming_forward(self, x: Tensor, state) -> tuple[Tensor, Any]:
        """``forward`` of one streaming step (``_streaming_shortcut``), x [1, B, I]: the
        stack's steps and nothing else of the sequence machinery, whose Python costs as much
        as the cell itself at batch 1 (benchmarks/step.py)."""
        if self.input_layers is not None:
            x = self.input_layers(x)
        B = x.shape[1]
        states = (self._unpack_state(self.initial_state(B, x.device, x.dtype)) if state is None
                  else self._check_state(state, B, x))
        if self.layer_norm or self._zoneout_rates_nonzero():
            output, states_out = self._eval_steps(x, states)
        else:
            weights = [w for layer in range(self.num_layers)
                       for w in self._layer_weights(layer, getattr(self, f"weight_hh_l{layer}"))]
            output, states_out = self._cell_steps(x, states, weights, self.num_layers,
                                                  self.sum_outputs)
        return output, self._pack_state(states_out)

    def _eval_steps(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """One eval time step, x [1, B, I], layer by layer through the reference loop's step
        (``_cell_step``: layer norm included) and zoneout's expectation; the output is the
        last layer's, or every layer's summed."""
        out, total, new = x[0], None, []
        for layer in range(self.num_layers):
            previous = [s[layer] for s in states]
            step = self._cell_step(self._input_gates(out, layer), previous, layer, None,
                                   getattr(self, f"weight_hh_l{layer}"))
            keep = [zoneout_keep(p.shape, rate, False, p)
                    for p, rate in zip(previous, self._zoneout_rates())]
            layer_state = [zoneout(p, n, k) for p, n, k in zip(previous, step, keep)]
            new.append(layer_state)
            out = layer_state[0]
            total = out if total is None or not self.sum_outputs else total + out
        return total.unsqueeze(0), [torch.stack(s) for s in zip(*new)]

    def _cell_steps(self, x, states, weights, num_layers, sum_outputs=False):
        """One time step, x [1, B, I], through torch.nn.LSTMCell's or GRUCell's kernel, layer
        by layer (the output is the last layer's, or every layer's summed): streaming
        generation with no backward to pay for, where the sequence kernel costs 3x the
        cell's time at batch 1 (benchmarks/step.py)."""
        per_layer = len(weights) // num_layers
        out, total, new = x[0], None, []
        for layer in range(num_layers):
            w_ih, w_hh, *biases = weights[layer * per_layer : (layer + 1) * per_layer]
            b_ih, b_hh = biases or (None, None)
            if self.num_gates == 4:
                h, c = _VF.lstm_cell(out, (states[0][layer], states[1][layer]), w_ih, w_hh,
                                     b_ih, b_hh)
                new.append((h, c))
            else:
                h = _VF.gru_cell(out, states[0][layer], w_ih, w_hh, b_ih, b_hh)
                new.append((h,))
            out = h
            total = h if total is None or not sum_outputs else total + h
        return total.unsqueeze(0), [torch.stack(s) for s in zip(*new)]


class _FusedPath:
    """The path with every step-changing trick off: torch.nn's fused kernel."""

    def _locked_between_layers(self) -> bool:
        return (self.dropout_mode == "locked" and self.dropout > 0 and self.training
                and self.num_layers > 1)

    # Dynamo runs torch.nn.LSTM and GRU eagerly (torch._dynamo.config.allow_rnn is False)
    # because tracing _VF.lstm fails on CPU ("expected Tensor() for op mkldnn_rnn_layer"); the
    # same graph break here lets torch.compile(rnnkit.LSTM(...)) work as it does for torch's.
    @torch.compiler.disable
    def _fused(self, x, data_sizes, states, weights, num_layers, dropout=0.0):
        training_dropout = self.training and dropout > 0
        if dispatch.streaming_step(x) and data_sizes is None and not training_dropout:
            return self._cell_steps(x, states, weights, num_layers)
        kernel = _VF.lstm if self.num_gates == 4 else _VF.gru
        states = [s.contiguous() for s in states]  # cuDNN refuses a strided state
        hx = tuple(states) if len(states) == 2 else states[0]
        if data_sizes is None:
            result = kernel(x, hx, weights, self.bias, num_layers, dropout, self.training,
                            False, False)
        else:
            result = kernel(x, data_sizes, hx, weights, self.bias, num_layers, dropout,
                            self.training, False)
        return result[0], list(result[1:])

    def _fused_forward(self, x, states, lengths, w_hh, mask_resets):
        """torch.nn's kernel, one call for the stack, or one per layer for summed outputs
        and locked dropout between layers. ``w_hh``: each layer's W_hh for this call."""
        packed, total_length = None, x.shape[0]
        T, B = x.shape[:2]
        if lengths is not None:
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            order = packed.sorted_indices
            states = [s.index_select(1, order) for s in states]
            x = packed.data
        sizes = packed.batch_sizes if packed is not None else None
        locked = self._locked_between_layers()
        if not self.sum_outputs and not locked:
            weights = [w for layer in range(self.num_layers)
                       for w in self._layer_weights(layer, w_hh[layer])]
            output, states_out = self._fused(x, sizes, states, weights, self.num_layers,
                                             self.dropout)
        else:
            output, per_layer = None, []
            for layer in range(self.num_layers):
                if layer > 0 and locked:
                    mask = self.sequence_masks.get(f"between_l{layer}", (B, x.shape[-1]),
                                                   self.dropout, x, mask_resets)
                    if packed is not None:  # the mask of each packed row
                        mask = pack_padded_sequence(mask.expand(T, -1, -1), lengths.cpu(),
                                                    enforce_sorted=False).data
                    x = x * mask
                elif layer > 0 and self.dropout > 0:
                    x = dropout(x, self.dropout, self.training)
                x, s = self._fused(x, sizes, [s[layer : layer + 1] for s in states],
                                   self._layer_weights(layer, w_hh[layer]), 1)
                output = x if output is None or not self.sum_outputs else output + x
                per_layer.append(s)
            states_out = [torch.cat(s) for s in zip(*per_layer)]
        if packed is not None:
            output, _ = pad_packed_sequence(
                PackedSequence(output, packed.batch_sizes, packed.sorted_indices,
                               packed.unsorted_indices),
                total_length=total_length,
            )
            states_out = [s.index_select(1, packed.unsorted_indices) for s in states_out]
        return output, states_out


class _LoopPath:
    """The per-layer time loop (layer norm, zoneout, recurrent dropout, resets): the fast loop
    (:mod:`rnnkit.fast_loop`) or the reference loop over :mod:`rnnkit.functional`."""

    def _recurrent_mask(self, layer: int, T: int, B: int, like: Tensor,
                        resets: Tensor | None) -> Tensor | None:
        """Recurrent-dropout (Semeniuta 2016) mask of one layer: [B, H] drawn for this call
        (``"per_call"``), [T, B, H] drawn for every step (``"per_step"``), or the stream's
        held mask (``"per_sequence"``), [T, B, H] when rows restart inside the call."""
        p = self.recurrent_dropout
        if self.recurrent_dropout_mode == "per_call" or p == 0.0 or not self.training:
            return dropout_mask((B, self.hidden_size), p, self.training, like)
        if self.recurrent_dropout_mode == "per_step":
            return dropout_mask((T, B, self.hidden_size), p, True, like)
        mask = self.sequence_masks.get(f"recurrent_l{layer}", (B, self.hidden_size), p, like,
                                       resets)
        return mask[0] if mask.shape[0] == 1 else mask

    def _fast_layer(self, gates_x, state, layer, candidate_mask, keep, resets, init, weight_hh,
                    why=""):
        """One layer through :mod:`rnnkit.fast_loop`: the state, zoneout keeps and initial
        state come in :attr:`state_names`' order (h, then the LSTM's c)."""
        run = fast_loop.lstm_layer if self.num_gates == 4 else fast_loop.gru_layer
        out, *new_state = run(gates_x, *state, weight_hh, self._layer_norms(layer),
                              fast_loop.Masks(candidate_mask, *keep),
                              fast_loop.Resets(resets, *init), why=why)
        return out, new_state

    def _loop_forward(self, x, states, valid, reset, w_hh, mask_resets, route):
        T, B, _ = x.shape
        H = self.hidden_size
        rates = self._zoneout_rates()
        resets = {}  # step -> rows [B, 1] that restart before it
        if reset is not None:
            resets = {int(t): reset[t].unsqueeze(1) for t in reset.any(1).nonzero()[:, 0]}
        # Only reset rows read the initial state: a call without resets (every step() call)
        # skips building it.
        init = (self._unpack_state(self.initial_state(B, x.device, self._state_dtype(x)))
                if resets else None)
        output, per_layer = None, []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self._dropout(x, f"between_l{layer}", self.dropout, mask_resets)
            keep = []
            for p in rates:
                k = zoneout_keep((T, B, H), p, self.training, x)
                if k is not None:
                    k = k.expand(T, *k.shape[1:])
                if valid is not None:  # past a row's end, keep the state unchanged
                    k = 1 - valid if k is None else torch.lerp(torch.ones_like(k), k, valid)
                keep.append(k)
            candidate_mask = self._recurrent_mask(layer, T, B, x, mask_resets)
            layer_init = [s[layer] for s in init] if init is not None else [None] * len(states)
            fast = route.path != dispatch.REFERENCE_LOOP
            run = functools.partial(self._fast_layer, why=str(route)) if fast \
                else self._reference_layer
            gates = self._input_gates(x, layer, fast)
            x, s = self._run_segments(run, gates, [s[layer] for s in states], layer,
                                      candidate_mask, keep, resets, layer_init, w_hh[layer])
            if valid is not None:
                x = x * valid
            output = x if output is None or not self.sum_outputs else output + x
            per_layer.append(s)
        return output, [torch.stack(s) for s in zip(*per_layer)]

    def _run_segments(self, run, gates, state, layer, candidate_mask, keep, resets, init,
                      weight_hh):
        """Run one layer; a [T, B, H] per-sequence candidate mask (which changes where rows
        reset) is cut at those steps into runs with one [B, H] mask each, the form the fast
        loop takes; per-step masks run the reference loop, which takes them whole."""
        if (candidate_mask is None or candidate_mask.dim() == 2
                or self.recurrent_dropout_mode == "per_step"):
            return run(gates, state, layer, candidate_mask, keep, resets, init, weight_hh)
        T = gates.shape[0]
        bounds = sorted({0, *resets, T})
        outputs = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            seg_resets = {t - a: m for t, m in resets.items() if a <= t < b}
            seg_keep = [None if k is None else k[a:b] for k in keep]
            out, state = run(gates[a:b], state, layer, candidate_mask[a], seg_keep, seg_resets,
                             init, weight_hh)
            outputs.append(out)
        return torch.cat(outputs), state

    def _reference_layer(self, gates_x, state, layer, candidate_mask, keep, resets, init,
                         weight_hh):
        """The plain loop: :mod:`rnnkit.functional` under autograd, one step at a time."""
        outputs = []
        for t in range(gates_x.shape[0]):
            if t in resets:
                state = [torch.where(resets[t], i, s) for i, s in zip(init, state)]
            mask = candidate_mask[t] if candidate_mask is not None and candidate_mask.dim() == 3 \
                else candidate_mask
            new = self._cell_step(gates_x[t], state, layer, mask, weight_hh)
            state = [zoneout(s, n, None if k is None else k[t])
                     for s, n, k in zip(state, new, keep)]
            outputs.append(state[0])
        return torch.stack(outputs), state

    _cell_step: Callable


class _Dispatch:
    """``forward``: checks the call, asks :func:`rnnkit.dispatch.route` for its path, and runs it
    between the input and output dropout."""

    def forward(self, input, state=None, *, lengths: Tensor | None = None,
                reset: Tensor | None = None):
        """Run the stack over a sequence.

        Args:
            input: [B, T, input_size] if batch_first else [T, B, input_size], or a
                PackedSequence (as torch.nn accepts).
            state: the state to start from (see ``initial_state``), or None for the module's
                initial state (zeros, or learned with ``learned_initial_state``).
            lengths: [B] valid length of each row; outputs past a row's end are 0 and the
                returned state is the one after its last valid step.
            reset: bool [B, T] (batch_first) or [T, B]; True at (row, t) restarts that row
                from the initial state before step t (an episode or document boundary).
        Returns:
            (output, state): output [B, T, H] / [T, B, H] (or packed) — the last layer's
            outputs, or the sum over layers with ``sum_outputs``; state as passed in.
        """
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError(f"{name}: pass lengths or a PackedSequence, not both")
            x, lengths = pad_packed_sequence(input)
        else:
            if not isinstance(input, Tensor) or input.dim() != 3:
                shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
                layout = "[B, T, input_size]" if self.batch_first else "[T, B, input_size]"
                raise ValueError(f"{name}: input must be 3-D {layout}, got shape {shape}")
            x = input.transpose(0, 1) if self.batch_first else input
        T, B, in_size = x.shape
        if in_size != self.input_size:
            raise ValueError(f"{name}: input has {in_size} features, expected input_size="
                             f"{self.input_size}")
        if T == 0:
            raise ValueError(f"{name}: input has no time steps (T=0)")
        plain = lengths is None and reset is None and not packed
        if plain and self._streaming_shortcut(x):  # before any other work: see _streaming_forward
            output, states_out = self._streaming_forward(x, state)
            return output.transpose(0, 1) if self.batch_first else output, states_out
        valid = self._valid_steps(lengths, T, B, x.device, x.dtype)
        reset_tb = self._check_reset(reset, T, B, x.device)
        if reset_tb is not None and valid is not None:
            # Past a row's end its state is frozen (the docstring's promise): a reset flag
            # there must not replace the returned state with the initial one.
            reset_tb = reset_tb & (valid[..., 0] > 0)
            reset_tb = reset_tb if bool(reset_tb.any()) else None
        route = dispatch.route(self, x, reset=reset_tb, plain=False)

        if state is None and self.training:
            self.sequence_masks.clear()  # new sequences: new locked masks
        mask_resets = reset_tb  # rows whose locked masks are redrawn (step 0 included)
        x = self._dropout(x, "input", self.input_dropout, mask_resets)
        if self.input_layers is not None:
            x = self.input_layers(x)
        if state is None:
            states = self._unpack_state(self.initial_state(B, x.device, self._state_dtype(x)))
        else:
            states = self._check_state(state, B, x)
        w_hh = [weight_drop(getattr(self, f"weight_hh_l{layer}"), self.weight_drop, self.training)
                for layer in range(self.num_layers)]
        if reset_tb is not None and bool(reset_tb[0].any()):
            # A reset before the first step is a different initial state, not a loop.
            init = self._unpack_state(self.initial_state(B, x.device, self._state_dtype(x)))
            states = [torch.where(reset_tb[0].view(1, B, 1), i, s) for i, s in zip(init, states)]
            reset_tb = reset_tb.clone()
            reset_tb[0] = False
            reset_tb = reset_tb if bool(reset_tb.any()) else None

        if route.path in dispatch.LOOPS:
            output, states_out = self._loop_forward(x, states, valid, reset_tb, w_hh, mask_resets,
                                                    route)
        else:
            output, states_out = self._fused_forward(x, states, lengths, w_hh, mask_resets)
        output = self._dropout(output, "output", self.output_dropout, mask_resets)

        if packed:
            output = pack_padded_sequence(output, lengths, enforce_sorted=False)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, self._pack_state(states_out)

    def route(self, input: Tensor, *, reset: Tensor | None = None) -> dispatch.Route:
        """Which path ``self(input, reset=reset)`` takes in the current mode, and why
        (:func:`rnnkit.dispatch.route`); ``input`` is shaped as for :meth:`forward`, or
        [B, input_size] as for :meth:`step`."""
        if input.dim() == 2:
            input = input.unsqueeze(1 if self.batch_first else 0)
        x = input.transpose(0, 1) if self.batch_first else input
        reset_tb = self._check_reset(reset, x.shape[0], x.shape[1], x.device)
        return dispatch.route(self, x, reset=reset_tb, plain=reset is None)

    def _dropout(self, x: Tensor, site: str, p: float, resets: Tensor | None) -> Tensor:
        """Dropout on a [T, B, F] sequence: per element and step (``dropout_mode="standard"``)
        or one mask per sequence and row shared over time (``"locked"``, Gal & Ghahramani
        2016), held in ``self.sequence_masks`` across calls and redrawn where rows reset."""
        if p == 0.0 or not self.training:
            return x
        if self.dropout_mode == "standard":
            return dropout(x, p, True)
        mask = self.sequence_masks.get(site, tuple(x.shape[1:]), p, x, resets)
        return x * mask

    def _loop_is_faster(self, x: Tensor) -> bool:
        """True where the fast loop beats torch's kernel even with every trick off."""
        return False

    def _fast_loop_applies(self) -> bool:
        return self.fast and not dispatch.func_transform_active()


class _RecurrentBase(_Dispatch, _Streaming, _FusedPath, _LoopPath, _State, _Parameters):
    """What LSTM and GRU share, one concern a class: :class:`_Parameters` (arguments,
    parameters, init), :class:`_State`, :class:`_Dispatch` (``forward`` and which path it
    takes), the two paths (:class:`_FusedPath`, :class:`_LoopPath`) and :class:`_Streaming`
    (``step``). A subclass sets ``num_gates``, ``state_names``, ``_zoneout_rates`` and
    ``_cell_step``."""


class LSTM(_RecurrentBase):
    r"""Multi-layer LSTM, a drop-in for :class:`torch.nn.LSTM` with switchable tricks.

    One step of layer l (gates in torch's order i, f, g, o)::

        i, f, g, o = split(N_x(W_ih x_t + b_ih) + N_h(W_hh h_{t-1} + b_hh))
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * (tanh(g) * m)        # m: recurrent dropout
        h_t = sigmoid(o) * tanh(N_c(c_t))

    where each N is a layer norm with its own gain and bias when ``layer_norm`` (Ba et al.
    2016: each input of a map normalized separately, and the cell before its tanh), else the
    identity. With zoneout (Krueger et al. 2017), each unit of c_t and h_t keeps its previous
    value with probability ``zoneout_cell`` / ``zoneout_hidden`` in training, and takes the
    expectation in eval.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout: as torch.nn.LSTM.
        layer_norm: S2, layer norm as above. The bias of each normalized map is its LN bias
            (``bias_ih_l*`` / ``bias_hh_l*``); the gains are ``ln_weight_{ih,hh}_l*`` and
            the cell LN is ``ln_weight_cell_l*`` / ``ln_bias_cell_l*``.
        input_layers: S3, number of feed-forward layers (Linear(hidden_size) + ELU) applied
            to the input before the first recurrence.
        sum_outputs: S4, the output is the sum of all layers' outputs, not only the last.
        learned_initial_state: S5, h0 and c0 are parameters ``initial_h`` / ``initial_c``
            [num_layers, hidden_size], used whenever no state is passed in.
        forget_bias: S6, the forget gate's total bias after init (1.0 is the usual choice;
            Gers et al. 2000, Jozefowicz et al. 2015). None leaves torch's init.
        recurrent_dropout: S7, Semeniuta et al. 2016, dropout on the candidate with one mask
            per sequence and layer.
        zoneout_cell, zoneout_hidden: S7, zoneout rates of c and h; None: ``zoneout``.
        zoneout: the rate of both where they are not given (the CLI's ``--zoneout``).
        recurrent_dropout_mode: when the recurrent-dropout mask is drawn. ``"per_call"``
            (default, the behaviour before this switch): one [B, H] mask per layer per
            forward call, shared by the call's steps, so a new one for each TBPTT chunk and
            each ``step()``. ``"per_sequence"``: one mask per stream row, kept across calls
            in ``sequence_masks`` until a call without state or a reset of the row.
            ``"per_step"``: a new mask at every step (Semeniuta et al. 2016 compare both);
            it runs the autograd loop, as the fast loop takes one mask per run.
        weight_drop: DropConnect on every W_hh (Wan et al. 2013; Merity et al. 2018's
            weight-dropped LSTM): each entry zeroed with probability p, the rest scaled by
            1/(1-p), one mask per forward call and layer, training only. Keeps the fused
            kernel (the dropped weights are passed to it) and torch.nn's state_dict keys.
        dropout_mode: ``"standard"`` (torch.nn's per-element, per-step dropout) or
            ``"locked"`` (variational dropout, Gal & Ghahramani 2016: one mask per sequence
            and row, shared over time and held across calls like ``per_sequence``). Applies
            to ``dropout`` (between layers), ``input_dropout`` and ``output_dropout``.
        input_dropout: dropout rate on the module's input (before ``input_layers``).
        output_dropout: dropout rate on the module's output.
        init: W_hh's init: ``"default"`` (torch.nn's uniform), ``"orthogonal"`` (each gate's
            block orthogonal) or ``"identity"`` (each gate's block I); :mod:`rnnkit.init`.
        chrono_init: T_max for chrono initialization (Tallec & Ollivier 2018): forget bias
            log(U(1, T_max - 1)) per unit, input bias its negative (GRU: update-gate bias,
            z being its keep gate). Excludes ``forget_bias`` / ``update_bias``; composes
            with ``init`` and ``reset_bias``.

    Locked-dropout and per-sequence masks live in ``module.sequence_masks``
    (:class:`rnnkit.regularizers.SequenceMasks`), not in the state, which stays torch.nn's
    tensors. A training call with ``state=None`` starts new sequences and redraws them; a
    call with a state continues the held ones (chunks of one stream, ``step()``); a row
    reset by ``reset`` gets new masks from that step on.
        fast: run tricks through :mod:`rnnkit.fast_loop` (True) or the plain autograd loop.
            The fast loop's backward is first-order only: for double backward
            (``create_graph=True``) use False. Under torch.func transforms (vmap, jvp,
            grad) and forward-mode AD the autograd loop runs whatever ``fast`` says.

    Shapes: input [T, B, I] ([B, T, I] with batch_first); state (h, c), each
    [num_layers, B, H]; output [T, B, H]. Also accepts ``lengths`` and ``reset`` (see
    :meth:`forward`).

    Example::

        >>> lstm = rnnkit.LSTM(8, 32, num_layers=2, batch_first=True, layer_norm=True)
        >>> out, (h, c) = lstm(torch.randn(4, 10, 8))
        >>> out.shape
        torch.Size([4, 10, 32])
    """

    num_gates = 4
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, forget_bias: float | None = None,
                 zoneout_cell: float | None = None, zoneout_hidden: float | None = None,
                 zoneout: float = 0.0, **tricks) -> None:
        _check_arguments("LSTM", tricks, forget_bias=forget_bias)
        _check_chrono_conflict("LSTM", "forget_bias", forget_bias, tricks)
        self.forget_bias = forget_bias
        zoneout = check_rate("zoneout", zoneout)
        self.zoneout_cell = check_rate("zoneout_cell", _given_or(zoneout_cell, zoneout))
        self.zoneout_hidden = check_rate("zoneout_hidden", _given_or(zoneout_hidden, zoneout))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **tricks)

    def _extra_layer_norm_params(self, layer: int, factory: dict) -> None:
        self._param(f"ln_weight_cell_l{layer}", (self.hidden_size,), factory)
        self._param(f"ln_bias_cell_l{layer}", (self.hidden_size,), factory)

    def _init_gate_biases(self) -> None:
        self._set_gate_bias("forget_bias", 1, self.forget_bias)

    def _zoneout_rates(self) -> tuple[float, ...]:
        return (self.zoneout_hidden, self.zoneout_cell)

    def _cell_norm(self, layer: int) -> functional.Norm:
        if not self.layer_norm:
            return None
        return getattr(self, f"ln_weight_cell_l{layer}"), getattr(self, f"ln_bias_cell_l{layer}")

    def _cell_step(self, gates_x, state, layer, candidate_mask, weight_hh):
        h, c = state
        bias_hh = getattr(self, f"bias_hh_l{layer}") if self.bias else None
        return functional.lstm_step(gates_x, h, c, weight_hh, bias_hh, self._hh_norm(layer),
                                    self._cell_norm(layer), candidate_mask)

    def extra_repr(self) -> str:
        return _extra_repr(self, ["forget_bias", "zoneout_cell", "zoneout_hidden"])


class GRU(_RecurrentBase):
    r"""Multi-layer GRU (Cho et al. 2014), a drop-in for :class:`torch.nn.GRU` with tricks.

    One step (torch's gate order r, z, n and its convention for z)::

        r = sigmoid(x_r + a_r),  z = sigmoid(x_z + a_z),  n = tanh(x_n + r * a_n)
        h_t = (1 - z) * (n * m) + z * h_{t-1}

    with ``x = N_x(W_ih x_t + b_ih)`` and ``a = N_h(W_hh h_{t-1} + b_hh)`` (layer norms N
    when ``layer_norm``, Ba et al. 2016), ``m`` the recurrent-dropout mask.

    Gate convention (S6): **z is the fraction of the previous state kept**, so a positive
    ``update_bias`` makes the cell remember more (the choice of the tips' author's own code,
    whose "update" has the opposite sign), and a negative ``reset_bias`` (the tips' -1) makes
    the candidate ignore more of the previous state.

    Args: as :class:`LSTM`, with ``update_bias`` / ``reset_bias`` (total gate bias after
    init, None leaves torch's init) instead of ``forget_bias`` and a single ``zoneout`` rate.
    State: h [num_layers, B, H].
    """

    num_gates = 3
    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, update_bias: float | None = None,
                 reset_bias: float | None = None, zoneout: float = 0.0, **tricks) -> None:
        _check_arguments("GRU", tricks, update_bias=update_bias, reset_bias=reset_bias)
        _check_chrono_conflict("GRU", "update_bias", update_bias, tricks)
        self.update_bias = update_bias
        self.reset_bias = reset_bias
        self.zoneout = check_rate("zoneout", zoneout)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **tricks)

    def _init_gate_biases(self) -> None:
        self._set_gate_bias("reset_bias", 0, self.reset_bias)
        self._set_gate_bias("update_bias", 1, self.update_bias)

    def _zoneout_rates(self) -> tuple[float, ...]:
        return (self.zoneout,)

    def _loop_is_faster(self, x: Tensor) -> bool:
        # torch's CPU GRU backward runs ~10 autograd ops per step; the compiled step does one.
        # With no backward to pay for, one step (streaming generation) is faster in torch's
        # cell kernel (_cell_steps): 1.9x the bare GRUCell's time against 2.8x through the
        # compiled loop at batch 1 (benchmarks/step.py).
        if dispatch.streaming_step(x):
            return False
        return self._fast_loop_applies() and fast_loop.compiled_steps(x)

    def _cell_step(self, gates_x, state, layer, candidate_mask, weight_hh):
        bias_hh = getattr(self, f"bias_hh_l{layer}") if self.bias else None
        h = functional.gru_step(gates_x, state[0], weight_hh, bias_hh, self._hh_norm(layer),
                                candidate_mask)
        return [h]

    def extra_repr(self) -> str:
        return _extra_repr(self, ["update_bias", "reset_bias", "zoneout"])


# The other cell's arguments, and what to pass instead (None: nothing corresponds).
_OTHER_CELL = {
    "LSTM": {"update_bias": "forget_bias", "reset_bias": None},
    "GRU": {"forget_bias": "update_bias", "zoneout_cell": "zoneout", "zoneout_hidden": "zoneout"},
}


def _given_or(value: float | None, default: float) -> float:
    return default if value is None else value


def _check_arguments(name: str, tricks: dict, **biases: float | None) -> None:
    """A TypeError naming an argument the module does not take (and the one to use: the other
    cell's name, or a close spelling); a ValueError for a gate bias or ``chrono_init`` that is
    not a finite number (NaN would make every output NaN)."""
    known = inspect.signature(_RecurrentBase.__init__).parameters
    for arg in tricks:
        if arg in known:
            continue
        if arg in _OTHER_CELL[name]:
            other = "GRU" if name == "LSTM" else "LSTM"
            use = _OTHER_CELL[name][arg]
            instead = f"; use {use}" if use else f"; the {name} has nothing like it"
            raise TypeError(f"{name}: {arg} is an argument of rnnkit.{other}{instead}")
        close = difflib.get_close_matches(arg, [*known, *biases, "zoneout"], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise TypeError(f"{name}: unexpected argument {arg!r}{hint}")
    for arg, value in {**biases, "chrono_init": tricks.get("chrono_init")}.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise ValueError(f"{name}: {arg} must be a finite number, got {value!r}")


def _check_chrono_conflict(name: str, arg: str, value, tricks: dict) -> None:
    """chrono_init sets the keep gate's bias per unit; a constant for it as well is a
    contradiction, not a composition."""
    if value is not None and tricks.get("chrono_init") is not None:
        raise ValueError(f"{name}: chrono_init={tricks['chrono_init']} sets the {arg.split('_')[0]}"
                         f" gate's bias; pass one of chrono_init and {arg}={value}, not both")


def _extra_repr(module: _RecurrentBase, extra: list[str]) -> str:
    parts = [f"{module.input_size}, {module.hidden_size}"]
    defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0,
                "layer_norm": False, "sum_outputs": False, "learned_initial_state": False,
                "recurrent_dropout": 0.0, "recurrent_dropout_mode": "per_call",
                "weight_drop": 0.0, "dropout_mode": "standard", "input_dropout": 0.0,
                "output_dropout": 0.0, "init": "default", "chrono_init": None}
    for name, default in defaults.items():
        if getattr(module, name) != default:
            parts.append(f"{name}={getattr(module, name)}")
    for name in extra:
        value = getattr(module, name)
        if value not in (None, 0.0):
            parts.append(f"{name}={value}")
    return ", ".join(parts)
