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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["MODEL_SIZES", "LARGE_FROM_SECONDS", "NEXT_STEP", "TRAINING", "EVAL_SHARE",
           "TextPlan", "epoch_steps", "eval_batches", "model_options", "plan_text",
           "seconds_per_step"]

# The model presets of --model-size: small and large chosen by benchmarks/charlm.py and
# ablation.py on tinyshakespeare with 2 CPU threads; medium, the small one widened to 320 with
# the large one's light regularizers, for budgets that train it long enough (plan_text;
# docs/char-defaults.md, "The medium preset"). Model fields, plus the training fields each
# size sets.
_SMALL: dict[str, Any] = {
    "cell": "gru", "embed_dim": 64, "hidden_size": 192, "num_layers": 2, "sum_outputs": True,
    "layer_norm": False, "forget_bias": 1.0, "dropout": 0.0, "embed_dropout": 0.0,
    "weight_decay": 0.0, "ema_decay": 0.0, "chunk_length": 64, "max_epochs": 0.0}
# The large preset's light regularizers (weight averaging, embedding and weight decay), which
# the medium preset has too and the small one takes from LIGHT_FROM_PASSES on (LIGHT).
_LIGHT: dict[str, Any] = {"embed_dropout": 0.1, "weight_decay": 0.1, "ema_decay": 0.995}
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "small": _SMALL,
    # with the large preset's light regularizers: without them it scored 1.4658 where it
    # scored 1.3750 with them (stdlib_code, 600 s, 1 thread, ~4 passes, validation split)
    "medium": {**_SMALL, "hidden_size": 320, **_LIGHT},
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

# An evaluation reads at most this share of the batches trained on between two evaluations
# (the first batches of each of its streams): evaluating a character costs about a third of
# training on it, so evaluations take ~4% of the time, however large the validation split.
# Read whole, the 180 KB split of a 1.6 MB text took 8.8 s of every 47 s at 1 thread
# (docs/char-defaults.md, "What an evaluation costs").
EVAL_SHARE = 1 / 8


def eval_batches(eval_every: int) -> int:
    """The batches an evaluation reads at most with an evaluation every ``eval_every`` steps."""
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    return max(1, math.ceil(eval_every * EVAL_SHARE))


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


# --model-size auto on a text with a time budget (plan_text). The large preset when the budget
# buys it this many steps: 300 s (LARGE_FROM_SECONDS) at 2 threads on the machine the presets
# were measured on, where it runs 3.4 steps/s (docs/char-defaults.md).
LARGE_MIN_STEPS = 1000
# ... but the medium preset in its place where the large one makes fewer than
# MEDIUM_UNTIL_LARGE_STEPS steps and the medium one at least MEDIUM_MIN_STEPS in fewer than
# MEDIUM_MAX_PASSES passes. At 600 s on one thread (about 3000 steps of the medium preset,
# 1000-1100 of the large) the medium one led the large one on the validation splits of the
# three larger development corpora (4-19 passes), and trailed it, regularized, on the 300 KB
# one (25 passes), where the large one's dropout 0.4 fits better; at 2 threads on
# tinyshakespeare (1607 steps of the large one) the large one led (docs/char-defaults.md,
# "The medium preset"): the bound sits between 1200 and 1600 steps.
MEDIUM_MIN_STEPS = 2000
MEDIUM_MAX_PASSES = 22.0
MEDIUM_UNTIL_LARGE_STEPS = 1400
# Passes over the training text past which the preset's own regularization overfits, and the
# fields that replace it there, chosen on the development corpora's validation splits
# (benchmarks/corpora.py, docs/char-defaults.md).
REGULARIZE_FROM_PASSES = 16.0
REGULARIZED: dict[str, dict[str, Any]] = {
    "small": {"dropout": 0.3, **_LIGHT},
    "large": {"dropout": 0.4, "embed_dropout": 0.1, "weight_decay": 0.1},
}
REGULARIZED["medium"] = REGULARIZED["small"]  # the small model, wider
# From this many passes to REGULARIZE_FROM_PASSES the small model takes the large preset's
# light regularizers (weight averaging, embedding dropout, weight decay) without dropout:
# better than the bare preset at 6-10 passes, worse at 3 (tinyshakespeare, where the weight
# average lags a model still learning fast); docs/char-defaults.md, "The light branch".
LIGHT_FROM_PASSES = 5.0
LIGHT: dict[str, dict[str, Any]] = {
    "small": _LIGHT,
    "medium": {},  # the medium and large presets have them already
    "large": {},
}
# Where the large preset would make REGULARIZE_FROM_PASSES passes or more (it overfits the
# text: regularized, its best checkpoint comes at ~12 passes), its two-layer version, which
# makes under half its steps, is trained instead when it still makes DEEP_MIN_STEPS steps in
# fewer than REGULARIZE_FROM_PASSES passes: the budget goes into depth, not into dropout.
# shakespeare_300k, 600 s, 2 threads, validation split, seed 0: one layer with dropout 0.4
# (1200 steps, ~20 passes) 1.3410, with dropout 0.5 1.3451; two layers with dropout 0.3 (510
# steps) 1.3330, with dropout 0.2 (554 steps, ~9 passes) 1.3197 (docs/char-defaults.md,
# "Two layers in place of dropout").
DEEP: dict[str, Any] = {"num_layers": 2, "dropout": 0.2}
DEEP_MIN_STEPS = 500
# Where the budget buys more passes than the epoch cap of "large", the cap would stop it with
# budget left (at 600 s on pydoc_topics, 1 thread: after 277 s, its best checkpoint its last);
# evaluations without a better validation loss stop it instead (best.pt is kept).
PATIENCE = 5


@dataclass(frozen=True)
class TextPlan:
    """What ``--model-size auto`` trains on a text: a preset, the fields it changes, why."""

    size: str
    changes: dict[str, Any] = field(default_factory=dict)
    passes: float = 0.0
    reason: str = ""


def plan_text(train_chars: int, max_time: float, steps_per_second: dict[str, float],
              batch_size: int = TRAINING["batch_size"],
              deep_steps_per_second: Callable[[], float] | None = None) -> TextPlan:
    """The preset and regularization for ``train_chars`` characters of training text and a
    budget of ``max_time`` seconds, given each preset's measured ``steps_per_second``.

    The large model when the budget buys it LARGE_MIN_STEPS steps, else the small one; the
    medium one in their place where the large one makes fewer than MEDIUM_UNTIL_LARGE_STEPS
    steps and the medium one MEDIUM_MIN_STEPS in fewer than MEDIUM_MAX_PASSES passes. The
    expected passes over the text (steps x batch_size x chunk_length / train_chars) decide
    the regularization: past REGULARIZE_FROM_PASSES the preset overfits (it memorizes a
    small text), so REGULARIZED[size] replaces its dropout and weight decay; from
    LIGHT_FROM_PASSES on, LIGHT[size] (weight averaging, embedding dropout and weight decay,
    no dropout).
    Where the large model would pass REGULARIZE_FROM_PASSES, ``deep_steps_per_second()`` (the
    step rate of the large preset with DEEP's two layers, timed only then) decides whether
    DEEP replaces the regularization: when it makes DEEP_MIN_STEPS steps in fewer passes.
    Patience replaces the large preset's epoch cap wherever the budget buys more passes than
    the cap: a budget the user gave is spent while validation still improves (the best
    checkpoint is kept)."""
    if train_chars < 1:
        raise ValueError(f"train_chars must be >= 1, got {train_chars}")
    if max_time <= 0:
        raise ValueError(f"max_time must be > 0, got {max_time}")
    for size in MODEL_SIZES:
        if not steps_per_second.get(size, 0) > 0:
            raise ValueError(f"steps_per_second[{size!r}] must be > 0, got "
                             f"{steps_per_second.get(size)}")

    def passes_in(steps: float, size: str) -> float:
        return steps * batch_size * MODEL_SIZES[size]["chunk_length"] / train_chars

    def passes_of(size: str) -> float:
        return passes_in(max_time * steps_per_second[size], size)

    large_steps = max_time * steps_per_second["large"]
    if (large_steps < MEDIUM_UNTIL_LARGE_STEPS
            and max_time * steps_per_second["medium"] >= MEDIUM_MIN_STEPS
            and passes_of("medium") < MEDIUM_MAX_PASSES):
        size = "medium"
    else:
        size = "large" if large_steps >= LARGE_MIN_STEPS else "small"
    passes = passes_of(size)
    where = (f"{_kilobytes(train_chars)} of training text, ~{passes:.0f} passes in "
             f"{max_time:g} s")
    cap = MODEL_SIZES[size]["max_epochs"]
    if passes < REGULARIZE_FROM_PASSES:
        light = LIGHT[size] if passes >= LIGHT_FROM_PASSES else {}
        what = (f"the {size} model with " + ", ".join(f"{k} {v:g}" for k, v in light.items())
                if light else f"the {size} model as preset")
        if cap and passes > cap:  # the cap would end training with budget left
            return TextPlan(size, {**light, "max_epochs": 0.0, "patience": PATIENCE}, passes,
                            f"{where}: {what}, past its {cap:g} epochs while validation "
                            f"improves (patience {PATIENCE})")
        return TextPlan(size, dict(light), passes, f"{where}: {what}")
    if size == "large" and deep_steps_per_second is not None:
        deep_steps = max_time * deep_steps_per_second()
        deep_passes = passes_in(deep_steps, size)
        if deep_steps >= DEEP_MIN_STEPS and deep_passes < REGULARIZE_FROM_PASSES:
            words = ", ".join(f"{k} {v:g}" for k, v in DEEP.items())
            changes = dict(DEEP)
            if cap and deep_passes > cap:  # the cap would end training with budget left
                changes.update(max_epochs=0.0, patience=PATIENCE)
            return TextPlan(size, changes, deep_passes,
                            f"{_kilobytes(train_chars)} of training text, ~{deep_passes:.0f} "
                            f"passes in {max_time:g} s: the large model with {words} (one "
                            f"layer would make ~{passes:.0f} passes)")
    changes = dict(REGULARIZED[size])
    if cap:
        changes.update(max_epochs=0.0, patience=PATIENCE)
    words = ", ".join(f"{k} {v:g}" for k, v in REGULARIZED[size].items())
    return TextPlan(size, changes, passes, f"{where}: the {size} model with {words}")


def _kilobytes(chars: int) -> str:
    return f"{chars / 1e6:.1f} MB" if chars >= 1e6 else f"{chars / 1e3:.0f} KB"


def seconds_per_step(model: nn.Module, vocab_size: int, batch_size: int, chunk_length: int,
                     steps: int = 2) -> float:
    """Wall seconds of one forward and backward pass of a next-character ``model`` (one that
    maps ids ``[B, T]`` to ``(logits, state)``) on random ids ``[batch_size, chunk_length]``:
    the fastest of ``steps`` after one warm-up. The optimizer step is left out (it is small
    next to the pass through time). Gradients are cleared after."""
    ids = torch.randint(vocab_size, (batch_size, chunk_length + 1))
    times = []
    model.train()
    for _ in range(steps + 1):
        start = time.perf_counter()
        logits = model(ids[:, :-1])[0]
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                    ids[:, 1:].reshape(-1)).backward()
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return min(times[1:])
