"""The tuned defaults of ``rnnkit train``, in the library: model presets and training settings.

The command line reads every value here; a library user gets the same in one call::

    from rnnkit.train import TrainConfig
    from rnnkit.train.presets import model_options
    cfg = TrainConfig.preset("small")            # what `rnnkit train FILE` trains with
    cfg = TrainConfig.preset("large", train_steps=len(ids) - 1)  # its 6-epoch cap as steps
    options = model_options("small")             # cell, sizes, dropout, ... of the model

The measurements behind each value are in docs/cli.md ("Why two sizes") and docs/benchmarks.md.
The forecaster's defaults (``rnnkit forecast``) are the library's too: ForecastConfig as
rnnkit.forecasting.windows.default_config fits it to the data, which the CLI calls.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MODEL_SIZES", "LARGE_FROM_SECONDS", "NEXT_STEP", "TRAINING", "epoch_steps",
           "model_options"]

# The two model presets of --model-size, chosen by benchmarks/charlm.py and ablation.py on
# tinyshakespeare with 2 CPU threads. Model fields, plus the training fields each size sets.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "small": {"cell": "gru", "embed_dim": 64, "hidden_size": 192, "num_layers": 2,
              "sum_outputs": True, "layer_norm": False,
              "forget_bias": 1.0, "dropout": 0.0, "embed_dropout": 0.0, "weight_decay": 0.0,
              "ema_decay": 0.0, "chunk_length": 64, "max_epochs": 0.0},
    "large": {"cell": "lstm", "embed_dim": 128, "hidden_size": 512, "num_layers": 1,
              "sum_outputs": False, "layer_norm": True,
              "forget_bias": 0.0, "dropout": 0.2, "embed_dropout": 0.1, "weight_decay": 0.1,
              "ema_decay": 0.995, "chunk_length": 128, "max_epochs": 6.0},
}
# --model-size auto takes "large" for text with a time budget of this many seconds or more.
LARGE_FROM_SECONDS = 300.0
# The CSV next-step model (task "forecast") keeps one layer of 384: the summed layers of
# "small" were measured on text (docs/evidence/).
NEXT_STEP: dict[str, Any] = {"num_layers": 1, "sum_outputs": False, "hidden_size": 384}

# The training settings every size shares, tuned with the presets (docs/cli.md): Adam 4e-3,
# cosine decay to 5% over the budget, clipping at norm 1, 32 streams, an evaluation every
# 100 steps, no early stopping (the budget ends the run), 180 s.
TRAINING: dict[str, Any] = {
    "batch_size": 32, "lr": 4e-3, "lr_schedule": "cosine", "min_lr_ratio": 0.05,
    "clip": "norm", "clip_max_norm": 1.0, "clip_percentile": 10.0,
    "max_time": 180.0, "max_steps": 0, "eval_every": 100, "patience": 0,
}

def model_options(size: str = "small", task: str = "text") -> dict[str, Any]:
    """The model fields of preset ``size`` (``"small"`` or ``"large"``) for ``task``
    (``"text"``, or ``"forecast"``: the CSV next-step model, one layer of 384)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"size must be one of {sorted(MODEL_SIZES)}, got {size!r}")
    if task not in ("text", "forecast"):
        raise ValueError(f"task must be 'text' or 'forecast', got {task!r}")
    values = dict(MODEL_SIZES[size])
    if task == "forecast":
        values.update(NEXT_STEP)
    return values


def epoch_steps(max_epochs: float, train_steps: int, batch_size: int, chunk_length: int) -> int:
    """Optimizer steps of ``max_epochs`` passes over ``train_steps`` steps of training data,
    as the batcher reads it: ``train_steps // batch_size`` steps per stream in whole chunks."""
    per_epoch = max(1, train_steps // batch_size // chunk_length)
    return max(1, math.ceil(max_epochs * per_epoch))
