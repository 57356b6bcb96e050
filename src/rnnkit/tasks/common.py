"""What both tasks share: the structural tricks as rnnkit.LSTM / GRU keyword arguments."""

from __future__ import annotations

from typing import Any


def rnn_tricks(s: Any) -> dict[str, Any]:
    """The settings' structural tricks (``s``: a tasks.ModelSettings) as keyword arguments of
    rnnkit.LSTM / GRU."""
    tricks: dict[str, Any] = {
        "dropout": s.dropout if s.num_layers > 1 else 0.0,
        "layer_norm": s.layer_norm,
        "input_layers": s.input_layers,
        "sum_outputs": s.sum_outputs,
        "learned_initial_state": s.learned_initial_state,
        "recurrent_dropout": s.recurrent_dropout,
    }
    if s.cell == "lstm":
        tricks.update(forget_bias=s.forget_bias, zoneout_cell=s.zoneout, zoneout_hidden=s.zoneout)
    else:
        tricks.update(zoneout=s.zoneout)
    return tricks
