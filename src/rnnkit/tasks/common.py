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
    # the AWD-LSTM switches, passed only when set so that models saved before them still load
    optional = {"recurrent_dropout_mode": "per_call", "weight_drop": 0.0,
                "dropout_mode": "standard", "input_dropout": 0.0, "output_dropout": 0.0,
                "init": "default"}
    for name, off in optional.items():
        if getattr(s, name, off) != off:
            tricks[name] = getattr(s, name)
    if getattr(s, "chrono_init", 0.0):
        tricks["chrono_init"] = s.chrono_init
    if s.cell == "lstm":
        zoneout_cell, zoneout_hidden = (getattr(s, "zoneout_cell", None),
                                        getattr(s, "zoneout_hidden", None))
        tricks.update(zoneout_cell=s.zoneout if zoneout_cell is None else zoneout_cell,
                      zoneout_hidden=s.zoneout if zoneout_hidden is None else zoneout_hidden)
        if not tricks.get("chrono_init"):  # chrono sets the forget bias itself
            tricks["forget_bias"] = s.forget_bias
    else:
        tricks.update(zoneout=s.zoneout, update_bias=getattr(s, "update_bias", None),
                      reset_bias=getattr(s, "reset_bias", None))
        if tricks.get("chrono_init"):
            tricks.pop("update_bias")
    return tricks
