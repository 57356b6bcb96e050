"""Export a trained rnnkit.LSTM / GRU for inference outside rnnkit.

- :func:`to_torch`: a plain :class:`torch.nn.LSTM` / :class:`torch.nn.GRU` with the same
  weights, when the module's inference step is torch.nn's (no layer norm, zoneout, input
  layers, summed outputs or learned initial state; train-only regularizers are fine).
- :func:`to_step`: a one-step module, ``(x_t, state) -> (y_t, state)``, with every
  inference-time trick (layer norm, zoneout's expectation, input layers, summed outputs, the
  learned initial state), written in plain tensor ops so that ``torch.jit.script`` compiles
  it and ``torch.onnx.export`` exports it (the legacy exporter, ``dynamo=False``, needs no
  package beyond torch; torch's default dynamo exporter needs ``onnxscript``).

Both give the module's *eval-mode* numbers: dropout of any kind, weight drop and recurrent
dropout are the identity in eval and are left out.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from rnnkit import functional
from rnnkit.regularizers import zoneout
from rnnkit.rnn import GRU, LSTM, _RecurrentBase

__all__ = ["to_torch", "to_step", "to_onnx", "LSTMStep", "GRUStep"]


def step_changing_tricks(module: _RecurrentBase) -> list[str]:
    """The switches of ``module`` that make its eval-mode forward differ from torch.nn's."""
    tricks = [name for name in ("layer_norm", "sum_outputs", "learned_initial_state")
              if getattr(module, name)]
    if module.input_layers is not None:
        tricks.append(f"input_layers={len(module.input_layers) // 2}")
    for name in ("zoneout", "zoneout_cell", "zoneout_hidden"):
        if getattr(module, name, 0.0) > 0:
            tricks.append(f"{name}={getattr(module, name)}")
    return tricks


def to_torch(module: _RecurrentBase) -> nn.LSTM | nn.GRU:
    """A torch.nn.LSTM / GRU with ``module``'s weights (state_dict keys are the same).

    Outputs equal ``module``'s in eval mode. Between-layer ``dropout`` is copied when its
    mode is "standard" (torch.nn's); the other regularizers (weight_drop, locked, input,
    output and recurrent dropout) only act in training and are left out.

    Raises:
        ValueError naming each trick that changes the inference step (layer_norm, zoneout,
        input_layers, sum_outputs, learned_initial_state): use :func:`to_step` for those.
    """
    if not isinstance(module, (LSTM, GRU)):
        raise TypeError(f"to_torch takes an rnnkit.LSTM or GRU, got {type(module).__name__}")
    tricks = step_changing_tricks(module)
    if tricks:
        raise ValueError(f"to_torch: {type(module).__name__} uses {', '.join(tricks)}, which "
                         "torch.nn has no equivalent for; export it with to_step instead")
    cls = nn.LSTM if isinstance(module, LSTM) else nn.GRU
    ref = module.weight_hh_l0
    dropout = module.dropout if module.dropout_mode == "standard" else 0.0
    plain = cls(module.input_size, module.hidden_size, module.num_layers, module.bias,
                module.batch_first, dropout, device=ref.device, dtype=ref.dtype)
    plain.load_state_dict(module.state_dict())
    return plain.train(module.training)


def _param(t: Tensor | None, fill: float, size: int, like: Tensor) -> nn.Parameter:
    """A copy of ``t``, or a constant of ``size`` where the module has none (no bias, no
    layer norm), so every layer has the same attributes for TorchScript."""
    if t is None:
        return nn.Parameter(torch.full((size,), fill, dtype=like.dtype, device=like.device),
                            requires_grad=False)
    return nn.Parameter(t.detach().clone())


class _LayerStep(nn.Module):
    """One layer's weights for one step, run through :mod:`rnnkit.functional`'s step (the
    module's own reference math); ``layer_norm`` says whether its norms apply."""

    def __init__(self, module: _RecurrentBase, layer: int) -> None:
        super().__init__()
        w_ih = getattr(module, f"weight_ih_l{layer}")
        G, H = w_ih.shape[0], module.hidden_size
        get = lambda name: getattr(module, f"{name}_l{layer}", None)  # noqa: E731
        self.layer_norm: bool = module.layer_norm
        self.weight_ih = nn.Parameter(w_ih.detach().clone())
        self.weight_hh = nn.Parameter(get("weight_hh").detach().clone())
        self.bias_ih = _param(get("bias_ih"), 0.0, G, w_ih)
        self.bias_hh = _param(get("bias_hh"), 0.0, G, w_ih)
        self.ln_weight_ih = _param(get("ln_weight_ih"), 1.0, G, w_ih)
        self.ln_weight_hh = _param(get("ln_weight_hh"), 1.0, G, w_ih)
        self.ln_weight_cell = _param(get("ln_weight_cell"), 1.0, H, w_ih)
        self.ln_bias_cell = _param(get("ln_bias_cell"), 0.0, H, w_ih)

    def _norm(self, gain: Tensor, bias: Tensor) -> functional.Norm:
        """(gain, bias) with layer norm, else None."""
        if self.layer_norm:
            return gain, bias
        return None

    def input_gates(self, x: Tensor) -> Tensor:
        """The input map of one step, x [B, I] -> [B, G*H]."""
        return functional.projection(x, self.weight_ih, self.bias_ih,
                                     self._norm(self.ln_weight_ih, self.bias_ih))

    def lstm(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`rnnkit.functional.lstm_step` on ``x``'s input map: (h', c')."""
        return functional.lstm_step(self.input_gates(x), h, c, self.weight_hh, self.bias_hh,
                                    self._norm(self.ln_weight_hh, self.bias_hh),
                                    self._norm(self.ln_weight_cell, self.ln_bias_cell))

    def gru(self, x: Tensor, h: Tensor) -> Tensor:
        """:func:`rnnkit.functional.gru_step` on ``x``'s input map: h'."""
        return functional.gru_step(self.input_gates(x), h, self.weight_hh, self.bias_hh,
                                   self._norm(self.ln_weight_hh, self.bias_hh))


def _eval_keep(p: float, like: Tensor) -> Tensor:
    """Zoneout's eval-mode keep (its expectation, as regularizers.zoneout_keep gives it)."""
    return torch.full((1, 1), p, dtype=like.dtype, device=like.device)


class _StepBase(nn.Module):
    def __init__(self, module: _RecurrentBase) -> None:
        super().__init__()
        if not isinstance(module, _RecurrentBase):
            raise TypeError(f"to_step takes an rnnkit.LSTM or GRU, got {type(module).__name__}")
        self.layers = nn.ModuleList(_LayerStep(module, k) for k in range(module.num_layers))
        self.input_layers = (copy.deepcopy(module.input_layers).eval()
                             if module.input_layers is not None else nn.Identity())
        self.sum_outputs: bool = module.sum_outputs
        self.num_layers: int = module.num_layers
        self.hidden_size: int = module.hidden_size
        ref = module.weight_hh_l0
        states = module.initial_state(1, ref.device, ref.dtype)
        states = states if isinstance(states, tuple) else (states,)
        for name, s in zip(module.state_names, states):  # [L, 1, H], zeros or learned
            self.register_buffer(f"initial_{name}", s.detach().clone())

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, hidden_size={self.hidden_size}"


class LSTMStep(_StepBase):
    """One eval-mode step of an rnnkit.LSTM (see :func:`to_step`).

    forward(x [B, input_size], h [L, B, H], c [L, B, H]) -> (y [B, H], h, c).
    """

    def __init__(self, module: LSTM) -> None:
        super().__init__(module)
        # not in the state_dict: a constant of the module's eval step, not a weight
        ref = module.weight_hh_l0
        self.register_buffer("keep_h", _eval_keep(module.zoneout_hidden, ref), persistent=False)
        self.register_buffer("keep_c", _eval_keep(module.zoneout_cell, ref), persistent=False)

    @torch.jit.export
    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The module's initial (h, c), each [L, batch_size, H]."""
        shape = [self.num_layers, batch_size, self.hidden_size]
        return self.initial_h.expand(shape), self.initial_c.expand(shape)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.input_layers(x)
        hs, cs = [], []
        out = torch.zeros_like(h[0])
        for k, layer in enumerate(self.layers):
            h_new, c_new = layer.lstm(x, h[k], c[k])
            h_new = zoneout(h[k], h_new, self.keep_h)
            c_new = zoneout(c[k], c_new, self.keep_c)
            hs.append(h_new)
            cs.append(c_new)
            out = out + h_new if self.sum_outputs else h_new
            x = h_new
        return out, torch.stack(hs), torch.stack(cs)


class GRUStep(_StepBase):
    """One eval-mode step of an rnnkit.GRU (see :func:`to_step`).

    forward(x [B, input_size], h [L, B, H]) -> (y [B, H], h).
    """

    def __init__(self, module: GRU) -> None:
        super().__init__(module)
        ref = module.weight_hh_l0
        self.register_buffer("keep_h", _eval_keep(module.zoneout, ref), persistent=False)

    @torch.jit.export
    def initial_state(self, batch_size: int) -> Tensor:
        """The module's initial h, [L, batch_size, H]."""
        return self.initial_h.expand([self.num_layers, batch_size, self.hidden_size])

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        x = self.input_layers(x)
        hs = []
        out = torch.zeros_like(h[0])
        for k, layer in enumerate(self.layers):
            h_new = zoneout(h[k], layer.gru(x, h[k]), self.keep_h)
            hs.append(h_new)
            out = out + h_new if self.sum_outputs else h_new
            x = h_new
        return out, torch.stack(hs)


def to_step(module: _RecurrentBase) -> LSTMStep | GRUStep:
    """A one-step inference module with ``module``'s weights (copied) and eval-mode math,
    scriptable (``torch.jit.script``) and exportable to ONNX.

    LSTM: ``y, h, c = step(x, h, c)``; GRU: ``y, h = step(x, h)``; x [B, input_size], states
    [num_layers, B, H], y [B, H] (the last layer's h, or the sum over layers with
    ``sum_outputs``). ``step.initial_state(B)`` is the module's initial state.
    """
    if isinstance(module, LSTM):
        return LSTMStep(module).eval()
    if isinstance(module, GRU):
        return GRUStep(module).eval()
    raise TypeError(f"to_step takes an rnnkit.LSTM or GRU, got {type(module).__name__}")


def to_onnx(module: _RecurrentBase, path: str) -> list[str]:
    """Write :func:`to_step` of ``module`` as an ONNX model at ``path`` (torch's legacy
    exporter: no package beyond torch) with a dynamic batch; returns its input names:
    ``x [B, input_size]`` and the states ``h`` (and ``c``) ``[num_layers, B, H]``; the outputs
    are ``y`` and ``h_next`` (and ``c_next``)."""
    import warnings

    step = to_step(module)
    state = step.initial_state(2)
    state = state if isinstance(state, tuple) else (state,)
    names = ["h", "c"][: len(state)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(step, (torch.zeros(2, module.input_size), *state), path, dynamo=False,
                          input_names=["x", *names],
                          output_names=["y", *(n + "_next" for n in names)],
                          dynamic_axes={"x": {0: "batch"}, **{n: {1: "batch"} for n in names}})
    return ["x", *names]
