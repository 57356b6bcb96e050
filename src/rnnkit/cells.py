"""LSTMCell and GRUCell: one step, drop-in for torch.nn.LSTMCell / GRUCell, with tricks.

The step math is :mod:`rnnkit.functional`; sequences are :class:`rnnkit.LSTM` /
:class:`rnnkit.GRU`, which run the same math in a loop (or PyTorch's fused kernel).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit import functional
from rnnkit.regularizers import check_rate, zoneout, zoneout_keep


def init_recurrent_parameters(named_parameters, hidden_size: int, layer_norm: bool) -> None:
    """torch.nn's init, uniform in +-1/sqrt(hidden_size); layer-norm gains 1; layer-norm
    biases (and with layer norm, the maps' biases, which are their LN biases) and learned
    initial states 0."""
    bound = 1.0 / math.sqrt(hidden_size)
    for name, p in named_parameters:
        if name.startswith("ln_weight"):
            nn.init.ones_(p)
        elif name.startswith(("ln_bias", "initial_")) or (layer_norm and name.startswith("bias")):
            nn.init.zeros_(p)
        else:
            nn.init.uniform_(p, -bound, bound)


@torch.no_grad()
def set_gate_bias(bias_ih: Tensor, bias_hh: Tensor, gate: int, H: int, value: float) -> None:
    """Make gate ``gate``'s total bias (bias_ih + bias_hh) equal ``value`` (S6); H units."""
    bias_ih[gate * H : (gate + 1) * H] = value
    bias_hh[gate * H : (gate + 1) * H] = 0.0


def _check_bias(module: nn.Module, arg: str, value: float) -> None:
    if not module.bias:
        raise ValueError(f"{type(module).__name__}: {arg}={value} needs bias=True")


class _CellBase(nn.Module):
    num_gates: int

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 layer_norm: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in [("input_size", input_size), ("hidden_size", hidden_size)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1, got {value!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.layer_norm = bias, layer_norm
        G = self.num_gates * hidden_size
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size, **factory))
        self.bias_ih = nn.Parameter(torch.empty(G, **factory)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(G, **factory)) if bias else None
        if layer_norm:
            self.ln_weight_ih = nn.Parameter(torch.empty(G, **factory))
            self.ln_weight_hh = nn.Parameter(torch.empty(G, **factory))

    def reset_parameters(self) -> None:
        """torch.nn's uniform init; with layer norm gains 1 and biases 0; then gate biases."""
        init_recurrent_parameters(self.named_parameters(), self.hidden_size, self.layer_norm)

    def _set_gate_bias(self, arg: str, gate: int, value: float | None) -> None:
        if value is not None:
            _check_bias(self, arg, value)
            set_gate_bias(self.bias_ih, self.bias_hh, gate, self.hidden_size, value)

    def _input_gates(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input must be [B, {self.input_size}], "
                             f"got shape {tuple(x.shape)}")
        norm = (self.ln_weight_ih, self.bias_ih) if self.layer_norm else None
        return functional.projection(x, self.weight_ih, self.bias_ih, norm)

    def _hh_norm(self) -> functional.Norm:
        return (self.ln_weight_hh, self.bias_hh) if self.layer_norm else None

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)


class LSTMCell(_CellBase):
    """One LSTM step, a drop-in for :class:`torch.nn.LSTMCell`.

    Equations: :func:`rnnkit.functional.lstm_step` (layer norm per Ba et al. 2016 with
    ``layer_norm``), then zoneout (Krueger et al. 2017) with rates ``zoneout_cell`` /
    ``zoneout_hidden``: Bernoulli keep masks in training, their expectation in eval.

    Shapes: input [B, input_size]; hx (h, c) each [B, hidden_size] or None (zeros).
    ``candidate_mask`` [B, H]: a recurrent-dropout mask the caller samples once per sequence.

    Example::

        >>> cell = rnnkit.LSTMCell(8, 16, layer_norm=True, forget_bias=1.0)
        >>> h, c = cell(torch.randn(4, 8))
    """

    num_gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 layer_norm: bool = False, forget_bias: float | None = None,
                 zoneout_cell: float = 0.0, zoneout_hidden: float = 0.0, device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, layer_norm=layer_norm, device=device,
                         dtype=dtype)
        self.forget_bias = forget_bias
        self.zoneout_cell = check_rate("zoneout_cell", zoneout_cell)
        self.zoneout_hidden = check_rate("zoneout_hidden", zoneout_hidden)
        if layer_norm:
            factory = {"device": device, "dtype": dtype}
            self.ln_weight_cell = nn.Parameter(torch.empty(hidden_size, **factory))
            self.ln_bias_cell = nn.Parameter(torch.empty(hidden_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self._set_gate_bias("forget_bias", 1, self.forget_bias)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None,
                candidate_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        gates_x = self._input_gates(input)
        h, c = hx if hx is not None else (self._zeros(input), self._zeros(input))
        cell_norm = (self.ln_weight_cell, self.ln_bias_cell) if self.layer_norm else None
        h_new, c_new = functional.lstm_step(gates_x, h, c, self.weight_hh, self.bias_hh,
                                            self._hh_norm(), cell_norm, candidate_mask)
        keep_h = zoneout_keep(tuple(h.shape), self.zoneout_hidden, self.training, h)
        keep_c = zoneout_keep(tuple(c.shape), self.zoneout_cell, self.training, c)
        return zoneout(h, h_new, keep_h), zoneout(c, c_new, keep_c)


class GRUCell(_CellBase):
    """One GRU step, a drop-in for :class:`torch.nn.GRUCell`.

    Equations: :func:`rnnkit.functional.gru_step` (z is the fraction of the previous state
    kept: positive ``update_bias`` remembers more), then zoneout with rate ``zoneout``.
    Shapes: input [B, input_size]; hx [B, hidden_size] or None (zeros).
    """

    num_gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 layer_norm: bool = False, update_bias: float | None = None,
                 reset_bias: float | None = None, zoneout: float = 0.0, device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, layer_norm=layer_norm, device=device,
                         dtype=dtype)
        self.update_bias, self.reset_bias = update_bias, reset_bias
        self.zoneout = check_rate("zoneout", zoneout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self._set_gate_bias("reset_bias", 0, self.reset_bias)
        self._set_gate_bias("update_bias", 1, self.update_bias)

    def forward(self, input: Tensor, hx: Tensor | None = None,
                candidate_mask: Tensor | None = None) -> Tensor:
        gates_x = self._input_gates(input)
        h = hx if hx is not None else self._zeros(input)
        h_new = functional.gru_step(gates_x, h, self.weight_hh, self.bias_hh, self._hh_norm(),
                                    candidate_mask)
        return zoneout(h, h_new, zoneout_keep(tuple(h.shape), self.zoneout, self.training, h))
