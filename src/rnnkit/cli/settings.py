"""The CLI's settings as dataclasses, and how flags and config files map onto their fields.

One dataclass per command; every field has a ``help`` that ``--help`` shows with its default.
Precedence: dataclass default < ``--config`` file (TOML or YAML) < command-line flags.
A field's name is its flag (``chunk_length`` is ``--chunk-length``), its key in a config file
and, for training, the name of the :class:`rnnkit.train.TrainConfig` field it sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from rnnkit.train.presets import LARGE_FROM_SECONDS, MODEL_SIZES, NEXT_STEP, TRAINING


class ConfigError(ValueError):
    """A config file or flag value that cannot be used; the message names the key and value."""


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, **kw: Any) -> Any:
    meta = {"help": help, "choices": choices, **kw}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


SEED_MAX = 2**63 - 1


def _require(settings: Any, rules: dict[str, tuple[float, float, str]]) -> None:
    """Every number must be finite (and a seed fit in 64 bits); each named field must lie in
    [low, high]. The message names the flag and the value."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"{f.name} ({flag}) must be a finite number, got {value!r}")
    if hasattr(settings, "seed"):
        rules = {**rules, "seed": (0, SEED_MAX, f"in [0, {SEED_MAX}]")}
    for name, (low, high, expected) in rules.items():
        value = getattr(settings, name)
        if not low <= value <= high:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{name} ({flag}) must be {expected}, got {value!r}")


POSITIVE, NON_NEGATIVE = (1, math.inf, ">= 1"), (0, math.inf, ">= 0")
# Sizes past these cannot be meant: they would hang or exhaust memory before one step.
LAYERS = (0, 100, "in [0, 100]")
WIDTH = (1, 1_000_000, "in [1, 1000000]")
LENGTH = (0, 10_000_000, "in [0, 10000000]")
THREADS = (0, 4096, "in [0, 4096] (0: the cores this process may use)")


def set_threads(threads: int) -> int:
    """``torch.set_num_threads``: ``threads``, or for 0 the cores this process may use divided
    among the processes torchrun started on this machine (LOCAL_WORLD_SIZE). Oversubscribed
    threads slow training down many times on a busy machine. Returns the number."""
    if not threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(threads)
    return threads
FRACTION = (0.0, 0.99, "in [0, 1)")
DECAY = (0.0, math.nextafter(1.0, 0.0), "in [0, 1)")

# The presets and tuned training defaults live in the library (rnnkit.train.presets); the
# fields below take their defaults from there. ONE_LAYER: the older name of NEXT_STEP.
ONE_LAYER = NEXT_STEP
_BY_SIZE = "set by --model-size"
_SMALL = MODEL_SIZES["small"]  # the fields' defaults


def _describe(size: dict[str, Any]) -> str:
    """A preset in words for --help, e.g. 'layer-norm LSTM 512, dropout 0.2, chunks of 128'."""
    norm = "layer-norm " if size["layer_norm"] else ""
    embed = f", embedding dropout {size['embed_dropout']:g}" if size["embed_dropout"] else ""
    decay = f", weight decay {size['weight_decay']:g}" if size["weight_decay"] else ""
    decay += f", weight average {size['ema_decay']:g}" if size["ema_decay"] else ""
    epochs = f", at most {size['max_epochs']:g} epochs" if size["max_epochs"] else ""
    layers = (f"{size['num_layers']} layers of " if size["num_layers"] > 1 else "")
    summed = " with summed outputs" if size["sum_outputs"] else ""
    return (f"{norm}{size['cell'].upper()} {layers}{size['hidden_size']}{summed} on "
            f"{size['embed_dim']}-dim "
            f"embeddings, dropout {size['dropout']:g}{embed}{decay}, chunks of "
            f"{size['chunk_length']}{epochs}")


@dataclass
class TrainSettings:
    """Everything ``rnnkit train`` needs; the run directory stores the resolved copy."""

    # --- data ---
    files: list[str] = _opt([], "text or CSV files", positional=True,
                            shown="Python's own help text (pydoc_data.topics)")
    task: str = _opt("auto", "text: char language model; forecast: next-step model of CSV "
                     "columns; auto: forecast for .csv files, else text",
                     choices=("auto", "text", "forecast"))
    columns: list[str] = _opt([], "CSV columns to model (names or 0-based indices)",
                              shown="every numeric column not named like a time stamp")
    val_fraction: float = _opt(0.1, "last fraction of the data held out for validation")
    # --- run ---
    name: str = _opt("", "run name: the run directory is RUNS_DIR/NAME",
                     shown="the first file's stem, with -2, -3, ... if taken")
    runs_dir: str = _opt("runs", "where run directories are made")
    device: str = _opt("auto", "auto takes a GPU when there is one",
                       choices=("auto", "cpu", "cuda"))
    seed: int = _opt(0, "random seed for initialization, batching and sampling")
    threads: int = _opt(0, "CPU threads of this process; 0: the cores it may use, divided among "
                        "the processes of this machine (torchrun)")
    # --- model (the field defaults are the "small" model; see MODEL_SIZES) ---
    model_size: str = _opt("auto", "model preset for cell, embed_dim, hidden_size, num_layers, "
                           "sum_outputs, layer_norm, "
                           "forget_bias, dropout, embed_dropout, weight_decay, ema_decay, "
                           "chunk_length and max_epochs (flags for those win): "
                           + "; ".join(f"{k} = {_describe(v)}" for k, v in MODEL_SIZES.items())
                           + "; auto = on text with a time budget, the size and "
                           "regularization planned for the text's size, the budget and this "
                           "machine's speed (the start says it); large with only a step or "
                           "epoch budget; small for a CSV",
                           choices=("auto", *MODEL_SIZES))
    cell: str = _opt(_SMALL["cell"], "recurrent cell", choices=("lstm", "gru"), shown=_BY_SIZE)
    embed_dim: int = _opt(_SMALL["embed_dim"], "character embedding size (text)",
                          shown=_BY_SIZE)
    hidden_size: int = _opt(_SMALL["hidden_size"], "units per recurrent layer", shown=_BY_SIZE)
    num_layers: int = _opt(_SMALL["num_layers"], "stacked recurrent layers", shown=_BY_SIZE)
    dropout: float = _opt(_SMALL["dropout"], "dropout between layers, and before the output "
                          "head (text)", shown=_BY_SIZE)
    embed_dropout: float = _opt(_SMALL["embed_dropout"], "dropout on the character embeddings "
                                "(text)", shown=_BY_SIZE)
    layer_norm: bool = _opt(_SMALL["layer_norm"],
                            "layer normalization on every recurrent linear map", shown=_BY_SIZE)
    input_layers: int = _opt(0, "feed-forward layers before the recurrence")
    sum_outputs: bool = _opt(_SMALL["sum_outputs"], "output the sum of all layers' outputs",
                             shown=_BY_SIZE)
    learned_initial_state: bool = _opt(True, "train the initial state h0 (and c0)")
    forget_bias: float = _opt(_SMALL["forget_bias"], "initial LSTM forget-gate bias",
                              shown=_BY_SIZE)
    update_bias: float | None = _opt(None, "GRU update-gate bias after init (z keeps the state: "
                                     "+1 remembers more)", shown="torch's init")
    reset_bias: float | None = _opt(None, "GRU reset-gate bias after init (the tips' -1)",
                                    shown="torch's init")
    recurrent_dropout: float = _opt(0.0, "dropout on the candidate update (Semeniuta 2016)")
    recurrent_dropout_mode: str = _opt("per_call", "when the recurrent-dropout mask is drawn: "
                                       "per_call (each chunk), per_sequence (held until a "
                                       "stream resets), per_step", choices=("per_call",
                                       "per_sequence", "per_step"))
    zoneout: float = _opt(0.0, "zoneout rate on the hidden (and cell) state")
    zoneout_cell: float | None = _opt(None, "LSTM: zoneout rate of the cell state",
                                      shown="--zoneout")
    zoneout_hidden: float | None = _opt(None, "LSTM: zoneout rate of the hidden state",
                                        shown="--zoneout")
    weight_drop: float = _opt(0.0, "DropConnect on every W_hh, one mask per chunk (Merity 2018)")
    dropout_mode: str = _opt("standard", "standard (a mask per step) or locked (one mask per "
                             "sequence, Gal 2016) for --dropout, --input-dropout and "
                             "--output-dropout", choices=("standard", "locked"))
    input_dropout: float = _opt(0.0, "dropout on the recurrent stack's input")
    output_dropout: float = _opt(0.0, "dropout on the recurrent stack's output")
    embed_dropout_mode: str = _opt("entries", "entries (each embedding entry) or words (whole "
                                   "rows of the embedding matrix, Gal 2016)",
                                   choices=("entries", "words"))
    init: str = _opt("default", "W_hh init per gate block", choices=("default", "orthogonal",
                                                                      "identity"))
    chrono_init: float = _opt(0.0, "chrono init of the gate biases for dependencies up to this "
                              "many steps (Tallec & Ollivier 2018); 0: off")
    ar: float = _opt(0.0, "activation regularization: ar * mean(h^2) of the last layer's "
                     "outputs (Merity 2018); teacher forcing only")
    tar: float = _opt(0.0, "temporal activation regularization: tar * mean((h_t - h_t-1)^2)")
    # --- training (defaults: rnnkit.train.presets.TRAINING, and the preset's fields) ---
    batch_size: int = _opt(TRAINING["batch_size"], "parallel streams per batch")
    chunk_length: int = _opt(_SMALL["chunk_length"], "truncated-BPTT chunk length (steps per "
                             "gradient)", shown=_BY_SIZE)
    lr: float = _opt(TRAINING["lr"], "Adam learning rate")
    weight_decay: float = _opt(_SMALL["weight_decay"], "decoupled weight decay of AdamW "
                               "(Loshchilov & Hutter 2019) on every parameter; 0: plain Adam",
                               shown=_BY_SIZE)
    ema_decay: float = _opt(_SMALL["ema_decay"], "evaluate, save and sample an exponential "
                            "moving average of the weights with this decay per step (Polyak "
                            "averaging); 0: the trained weights", shown=_BY_SIZE)
    lr_schedule: str = _opt(TRAINING["lr_schedule"], "learning rate over the budget (steps or "
                            "time): constant, or cosine decay to min_lr_ratio * lr",
                            choices=("constant", "cosine"))
    min_lr_ratio: float = _opt(TRAINING["min_lr_ratio"],
                               "the cosine schedule's final fraction of lr")
    clip: str = _opt(TRAINING["clip"], "gradient clipping: none, norm (at clip_max_norm) or auto "
                     "(AutoClip at clip_percentile of the observed norms)",
                     choices=("none", "norm", "auto"))
    clip_max_norm: float = _opt(TRAINING["clip_max_norm"], "clipping threshold of --clip norm")
    clip_percentile: float = _opt(TRAINING["clip_percentile"], "percentile of --clip auto")
    max_time: float = _opt(TRAINING["max_time"], "training budget in seconds (0: no limit)")
    max_steps: int = _opt(TRAINING["max_steps"], "training budget in optimizer steps (0: no limit)")
    max_epochs: float = _opt(_SMALL["max_epochs"], "training budget in passes over the "
                             "training data (0: no limit)", shown=_BY_SIZE)
    eval_every: int = _opt(TRAINING["eval_every"], "evaluate, checkpoint and sample every N steps")
    eval_max_batches: int | None = _opt(None, "batches of the validation split an evaluation "
                                        "reads at most (0: all of it)",
                                        shown="eval_every / 8: ~4% of the time")
    patience: int = _opt(TRAINING["patience"], "stop after N evaluations without a better "
                         "validation loss (0: off)")
    sample_length: int = _opt(200, "characters (or steps) generated at each evaluation")
    objective: str = _opt("teacher", "training loss", choices=(
        "teacher", "open_loop", "scheduled_sampling", "professor"))
    objective_args: str = _opt("", "objective parameters, e.g. 'horizon=8; weight=0.5'")
    progress: bool = _opt(True, "show a progress bar")
    plot: bool = _opt(True, "draw plot.png (losses, gradient norm) at each evaluation")

    def __post_init__(self) -> None:
        _require(self, {
            **dict.fromkeys(("batch_size", "chunk_length", "eval_every"), POSITIVE),
            **dict.fromkeys(("embed_dim", "hidden_size"), WIDTH),
            "num_layers": (1, 100, "in [1, 100]"),
            "threads": THREADS,
            "input_layers": LAYERS,
            "sample_length": LENGTH,
            **dict.fromkeys(("max_time", "max_steps", "max_epochs", "patience", "clip_max_norm",
                             "weight_decay"), NON_NEGATIVE),
            **dict.fromkeys(("val_fraction", "dropout", "embed_dropout", "recurrent_dropout",
                             "zoneout", "weight_drop", "input_dropout", "output_dropout"),
                            FRACTION),
            **dict.fromkeys(("ar", "tar", "chrono_init"), NON_NEGATIVE),
            "ema_decay": DECAY,
            "lr": (1e-12, math.inf, "> 0"),
            "min_lr_ratio": (0.0, 1.0, "in [0, 1]"),
            "clip_percentile": (0.0, 100.0, "in [0, 100]"),
        })
        for name in ("zoneout_cell", "zoneout_hidden"):
            value = getattr(self, name)
            if value is not None and not FRACTION[0] <= value <= FRACTION[1]:
                raise ConfigError(f"{name} (--{name.replace('_', '-')}) must be in [0, 1), got "
                                  f"{value!r}")
        if self.eval_max_batches is not None and self.eval_max_batches < 0:
            raise ConfigError(f"eval_max_batches (--eval-max-batches) must be >= 0 (0: all), "
                              f"got {self.eval_max_batches!r}")
        if self.chrono_init and self.chrono_init < 2:
            raise ConfigError(f"chrono_init (--chrono-init) must be 0 (off) or >= 2 steps, got "
                              f"{self.chrono_init!r}")
        if (self.ar or self.tar) and self.objective != "teacher":
            raise ConfigError(f"--ar and --tar work with --objective teacher, got "
                              f"{self.objective!r}")
        if self.clip == "norm" and self.clip_max_norm <= 0:
            raise ConfigError(f"clip_max_norm (--clip-max-norm) must be > 0 with --clip norm, got "
                              f"{self.clip_max_norm!r}; use --clip none to turn clipping off")


def task_kind(settings: TrainSettings) -> str:
    """``text`` or ``forecast``; ``auto`` means forecast when a file is a .csv."""
    if settings.task != "auto":
        return settings.task
    return "forecast" if any(f.lower().endswith(".csv") for f in settings.files) else "text"


def _written_for_any_cell(name: str, value: Any) -> bool:
    """Whether ``value`` is what rnnkit itself writes for a cell-only field in every run's
    config.yaml, whatever the cell: null, the field's default or a preset's value."""
    default = TrainSettings.__dataclass_fields__[name].default
    return value is None or value == default or any(
        size.get(name) == value for size in MODEL_SIZES.values())


def resolve_model_size(settings: TrainSettings, given: set[str] | None = None,
                       from_file: set[str] = frozenset()) -> TrainSettings:
    """Fill the preset's fields that were not ``given`` and name the preset in
    ``settings.model_size`` (so a saved config says what ran). ``given=None``: every field that
    differs from its default counts as given. ``from_file``: the fields only a config file
    set; there, the other cell's option holding the value a run's own config.yaml holds for it
    is passed over (so that file can be passed back with --config)."""
    if given is None:
        defaults = TrainSettings()
        given = {f.name for f in dataclasses.fields(settings)
                 if getattr(settings, f.name) != getattr(defaults, f.name)}
    size = settings.model_size
    # auto without a plan (rnnkit.cli.train.plan_auto_text plans for text with a time budget
    # when its data loads): the budget alone decides. The presets were measured on text;
    # forecasting keeps the small one.
    if size == "auto":
        long_budget = not settings.max_time or settings.max_time >= LARGE_FROM_SECONDS
        size = "large" if long_budget and task_kind(settings) == "text" else "small"
    text = task_kind(settings) == "text"
    for name, value in MODEL_SIZES[size].items():
        if not text:
            value = NEXT_STEP.get(name, value)
        # a step budget the user gives is a training length: the preset's epochs do not cut it
        if name not in given and not (name == "max_epochs" and settings.max_steps):
            setattr(settings, name, value)
    settings.model_size = size
    if settings.chrono_init and given & {"forget_bias", "update_bias"}:
        raise ConfigError("--chrono-init sets the forget (LSTM) or update (GRU) gate bias itself; "
                          "drop --forget-bias / --update-bias")
    for name in sorted(given & CELL_ONLY.keys()):
        if name in from_file and _written_for_any_cell(name, getattr(settings, name)):
            continue
        if settings.cell != CELL_ONLY[name]:
            raise ConfigError(f"--{name.replace('_', '-')} is for --cell {CELL_ONLY[name]}; "
                              f"this model's cell is {settings.cell}")
    return settings


@dataclass
class SampleSettings:
    """``rnnkit sample RUN``: generate from a trained run."""

    run: str = _opt("", "run directory (or name under runs/)", positional=True)
    prime: str = _opt("", "text the model reads first; the sample continues it (text models)",
                      shown="none: start as after a newline")
    length: int = _opt(500, "characters (text) or steps (forecast) to generate")
    temperature: float = _opt(1.0, "softmax temperature; lower is more conservative, 0 always "
                              "takes the most likely character")
    seed: int = _opt(0, "random seed")
    checkpoint: str = _opt("best", "which checkpoint", choices=("best", "last"))
    output: str = _opt("", "forecast: CSV path; the plot goes beside it as .png",
                       shown="RUN/forecast.csv")
    threads: int = _opt(0, "CPU threads; 0: the cores this process may use")
    device: str = _opt("auto", "auto takes a GPU when there is one",
                       choices=("auto", "cpu", "cuda"))

    def __post_init__(self) -> None:
        _require(self, {"length": (1, LENGTH[1], "in [1, 10000000]"),
                        "temperature": NON_NEGATIVE, "threads": THREADS})


@dataclass
class EvalSettings:
    """``rnnkit eval RUN FILE``: the model's loss on a file."""

    run: str = _opt("", "run directory (or name under runs/)", positional=True)
    file: str = _opt("", "text or CSV file to score", positional=True)
    checkpoint: str = _opt("best", "which checkpoint", choices=("best", "last"))
    batch_size: int = _opt(16, "sequences scored in parallel")
    unknown: str = _opt("error", "a character the model has not seen: error, or skip it (and "
                        "say how many)", choices=("error", "skip"))
    threads: int = _opt(0, "CPU threads; 0: the cores this process may use")
    device: str = _opt("auto", "auto takes a GPU when there is one",
                       choices=("auto", "cpu", "cuda"))

    def __post_init__(self) -> None:
        _require(self, {"batch_size": POSITIVE, "threads": THREADS})


@dataclass
class AblateSettings:
    """``rnnkit ablate [FILE]``: the default model of ``rnnkit train`` against the same model
    with each trick toggled, under one budget and the same seeds, scored on a held-out test
    split (see rnnkit.cli.ablate)."""

    files: list[str] = _opt([], "one text file, or a dated CSV (a series study: rnnkit's "
                            "forecaster, scored by rolling-origin MASE)", positional=True,
                            shown="Python's own help text (pydoc_data.topics)")
    budget: float = _opt(0.0, "training budget of every run in seconds (give this or --steps)")
    steps: int = _opt(0, "training budget of every run in optimizer steps (give this or "
                      "--budget)")
    seeds: int = _opt(3, "seeds per setting; the differences to the default are paired by seed")
    tricks: list[str] = _opt([], "tricks to toggle (names from the table in docs/ablate.md)",
                             shown="every trick (with --quick: a few)")
    test_fraction: float = _opt(0.1, "fraction of the file held out as the test split "
                                "(no run sees it; the report's losses are on it)")
    test_at: str = _opt("end", "text: where the test split is cut: the file's end, or its "
                        "start (when its end was already used to choose settings)",
                        choices=("end", "start"))
    out: str = _opt("", "output directory: one JSON per finished run (a rerun skips those), "
                    "report.md, plots", shown="runs/ablate-STEM")
    jobs: int = _opt(0, "runs at once; 0: the cores this process may use")
    threads: int = _opt(0, "CPU threads of each run; 0: the cores divided among the --jobs runs")
    backend: str = _opt("local", "local: processes on this machine; ray: Ray tasks (pip install "
                        "'rnnkit[ray]'; RAY_ADDRESS joins a cluster)", choices=("local", "ray"))
    device: str = _opt("cpu", "device of every run", choices=("auto", "cpu", "cuda"))
    quick: bool = _opt(False, "smoke check: a tiny model, a slice of the data, 2 seeds, a few "
                       "tricks, 40 steps (flags given win)")
    progress: bool = _opt(True, "show a progress bar over the study")
    # --- a series study (a CSV file) ---
    target: str = _opt("", "CSV: the column to forecast", shown="the first numeric column")
    date_column: str = _opt("", "CSV: the date column", shown="the first named like a date")
    id_column: str = _opt("", "CSV, long format: the column naming each series",
                          shown="none: one series")
    fill: str = _opt("none", "CSV: missing values: none (an error naming the rows) or "
                     "interpolate", choices=("none", "interpolate"))
    horizon: int | None = _opt(None, "CSV: steps forecast at each origin", shown="as rnnkit "
                               "forecast: two seasons of (half-)hourly data, one season "
                               "otherwise, 10 for yearly")
    windows: int = _opt(3, "CSV: test origins, H rows apart at the end of each series (the "
                        "test split: W * H rows no run trains on)")
    season: int | None = _opt(None, "CSV: steps in a season, as rnnkit forecast's --season",
                              shown="the frequency's; without dates, inferred")
    future_covariates: list[str] = _opt([], "CSV: covariate columns known for the horizon too, "
                                        "as rnnkit forecast's")
    past_covariates: list[str] = _opt([], "CSV: covariate columns observed with the target "
                                      "only, as rnnkit forecast's")
    static_covariates: list[str] = _opt([], "CSV: covariate columns with one value per series, "
                                        "as rnnkit forecast's")

    def __post_init__(self) -> None:
        _check_horizon_and_season(self)
        _require(self, {"budget": NON_NEGATIVE, "steps": NON_NEGATIVE, "windows": (1, 1000,
                                                                               "in [1, 1000]"),
                        "seeds": (1, 1000, "in [1, 1000]"), "jobs": (0, 4096, "in [0, 4096]"),
                        "threads": THREADS,
                        "test_fraction": (0.01, 0.5, "in [0.01, 0.5]")})


def _check_horizon_and_season(s: Any) -> None:
    """The series options a forecast, a backtest and a series study share."""
    if s.horizon is not None and not 1 <= s.horizon <= 100_000:
        raise ConfigError(f"horizon (--horizon) must be in [1, 100000], got {s.horizon}")
    if s.season is not None and not 1 <= s.season <= 100_000:
        raise ConfigError(f"season (--season) must be in [1, 100000] (1: no season), got "
                          f"{s.season}")


# Fields whose None means "not set" (a file may say null).
OPTIONAL = {"update_bias", "reset_bias", "zoneout_cell", "zoneout_hidden", "horizon",
            "ensemble", "eval_max_batches", "statistical"}
# Options that do something for one cell only: given for the other, they are an error.
CELL_ONLY = {"forget_bias": "lstm", "zoneout_cell": "lstm", "zoneout_hidden": "lstm",
             "update_bias": "gru", "reset_bias": "gru"}

# Names of earlier versions, still read from config files (and old run directories) and
# accepted as flags: old name -> field.
ALIASES = {"chunk_len": "chunk_length", "clip_norm": "clip_max_norm", "lr_final": "min_lr_ratio"}


@dataclass
class ExportSettings:
    """``rnnkit export RUN``: the recurrent network for use without rnnkit."""

    run: str = _opt("", "run directory (or name under runs/)", positional=True)
    checkpoint: str = _opt("best", "which checkpoint", choices=("best", "last"))
    output: str = _opt("", "directory for torch_nn.pt, step.ts, step.onnx and parts.pt",
                       shown="RUN/export")

    def __post_init__(self) -> None:
        _require(self, {})


@dataclass
class _SeriesColumns:
    """Which columns of a CSV hold the series (shared by forecast and backtest)."""

    target: str = _opt("", "the column to forecast", shown="the first numeric column")
    date_column: str = _opt("", "the date column", shown="the first named like a date")
    id_column: str = _opt("", "long format: the column naming each series (one model for all)",
                          shown="none: one series")
    fill: str = _opt("none", "missing values: none (an error naming the rows) or interpolate",
                     choices=("none", "interpolate"))
    horizon: int | None = _opt(None, "steps to forecast", shown="two seasons of (half-)hourly "
                               "data, one season otherwise, 10 for yearly")
    season: int | None = _opt(None, "steps in a season: the seasonal lag, SeasonalNaive's and "
                              "MASE's m; 1: no season. Replaces the season of the dates' "
                              "frequency", shown="the frequency's (hourly 24, monthly 12, ...); "
                              "without dates, inferred from the autocorrelation")
    samples: int = _opt(200, "sample paths per series (quantiles and CRPS come from them)")
    max_time: float = _opt(60.0, "training budget in seconds (per fit)")
    seed: int = _opt(0, "random seed")
    threads: int = _opt(0, "CPU threads; 0: the cores this process may use")
    ensemble: int | None = _opt(None, "models trained from seeds seed, seed + 1, ... (each "
                                "1/K of --max-time); a forecast pools their sample paths: "
                                "wider intervals where they disagree (docs/forecasting.md)",
                                shown="the library's: 3 when several series train together, "
                                "else 1")
    combine: str = _opt("validation", "validation: forecasts mix the network's sample paths "
                        "with a statistical forecast's (--statistical) and the seasonal-naive "
                        "forecast's, the shares "
                        "chosen on the validation windows (without them: a third the network's, "
                        "the rest split between the two by their errors at rolling origins); "
                        "off: the network alone",
                        choices=("validation", "off"))
    statistical: str | None = _opt(None, "the statistical forecast in that mixture: the Theta "
                                   "method or the damped trend (Gardner & McKenzie 1985)",
                                   shown="theta", choices=("theta", "damped_trend"))
    future_covariates: list[str] = _opt([], "covariate columns known for the horizon too (a "
                                        "holiday flag, a planned price): read at each step; "
                                        "a forecast reads the horizon's from --future FILE")
    past_covariates: list[str] = _opt([], "covariate columns observed with the target only: "
                                      "read one step late, never after the context")
    static_covariates: list[str] = _opt([], "covariate columns with one value per series: a "
                                        "number, or text as a category")

    def _check(self, extra: dict[str, tuple[float, float, str]]) -> None:
        _check_horizon_and_season(self)
        ensemble = {} if self.ensemble is None else {"ensemble": (1, 100, "in [1, 100]")}
        _require(self, {"samples": (1, 100_000, "in [1, 100000]"), "max_time": NON_NEGATIVE,
                        "threads": THREADS, **ensemble, **extra})


@dataclass
class ForecastSettings(_SeriesColumns):
    """``rnnkit forecast FILE|RUN``: train a forecaster on a CSV file and forecast after its
    end, or forecast with a trained one from new data."""

    source: str = _opt("", "a CSV file to train on, or a run a forecaster was trained in",
                       positional=True)
    context: str = _opt("", "a trained run: the CSV to forecast after (the same columns)",
                        shown="the file it trained on")
    future: str = _opt("", "CSV of the --future-covariates' values at the forecast's steps, "
                       "with the date (and id) column of the training file", shown="none")
    quantiles: list[str] = _opt(["0.1", "0.5", "0.9"], "quantile levels written as "
                                "<target>_q<level> columns")
    output: str = _opt("", "CSV path; the fan chart goes beside it as .png",
                       shown="RUN/forecast.csv")
    name: str = _opt("", "run name of a new forecaster", shown="forecast-<file stem>")
    runs_dir: str = _opt("runs", "where run directories are made")

    def __post_init__(self) -> None:
        self._check({})


@dataclass
class BacktestSettings(_SeriesColumns):
    """``rnnkit backtest FILE``: rolling-origin evaluation beside Naive and SeasonalNaive."""

    file: str = _opt("", "CSV file, or a forecast run (its file, columns and horizon)",
                     positional=True)
    windows: int = _opt(3, "origins, each H steps after the previous")
    output: str = _opt("", "JSON of every metric by method, horizon step and window; a PNG "
                       "of the metrics by step goes beside it",
                       shown="RUN/backtest.json for a run, else backtest-<file stem>.json")
    runs_dir: str = _opt("runs", "where a run named by its name is looked for")

    def __post_init__(self) -> None:
        self._check({"windows": (1, 1000, "in [1, 1000]")})


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    """The field's type; for ``X | None`` (None: "not set", only as a default or in a file) X."""
    tp = typing.get_type_hints(cls)[f.name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if type(None) in typing.get_args(tp) and len(args) == 1 else tp


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argument per field. Defaults stay out of the namespace (SUPPRESS) so we can tell
    which flags were given and let them win over the config file."""
    for f in dataclasses.fields(cls):
        tp = _field_type(cls, f)
        meta = f.metadata
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = meta.get("shown") or ("none" if default in ([], "") else default)
        required = meta.get("positional") and not _is_list(tp)
        help_text = meta["help"] if required else f"{meta['help']} (default: {shown})"
        # argparse %-formats help (for %(default)s): a plain "80%" must reach it as "80%%"
        kw: dict[str, Any] = {"help": help_text.replace("%", "%%"), "default": argparse.SUPPRESS}
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        if meta.get("positional"):
            kw["metavar"] = f.name.upper()
            if _is_list(tp):
                kw["nargs"] = "*"
            parser.add_argument(f.name, **kw)
            continue
        flags = ["--" + name.replace("_", "-") for name in
                 (f.name, *(old for old, new in ALIASES.items() if new == f.name))]
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif _is_list(tp):  # one comma-separated value, so it cannot swallow the positionals
            kw["type"] = _comma_list
            kw["metavar"] = "A,B,..."
        else:
            kw["type"] = tp
            kw["metavar"] = None if meta.get("choices") else f.name.upper()
        parser.add_argument(*flags, dest=f.name, **kw)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (.toml) or YAML (.yaml/.yml) file into a flat dict of settings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read it: {err.strerror}") from None
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: expected .toml, .yaml or .yml")
    except (ValueError, yaml.YAMLError) as err:
        if isinstance(err, ConfigError):
            raise
        first = str(err).splitlines()[0]
        raise ConfigError(f"config file {path}: cannot parse: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {data!r}")
    return data


def _check_value(key: str, value: Any, tp: Any, source: str) -> Any:
    if value is None and key.replace("-", "_") in OPTIONAL:
        return None
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{source}: key {key!r} must be {expected}, "
                           f"got {type(value).__name__} {value!r}")

    if _is_list(tp):
        if isinstance(value, str):
            value = _comma_list(value)
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise wrong("a list of strings")
        return [str(v) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise wrong("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if not isinstance(value, tp):
        raise wrong(f"a {tp.__name__}")
    return value


def build_settings(cls: type, file_values: dict[str, Any], flag_values: dict[str, Any],
                   source: str = "config") -> Any:
    """Defaults, then ``file_values`` (checked: unknown keys and wrong types refused), then
    ``flag_values`` (already typed by argparse)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for raw_key, value in file_values.items():
        key = str(raw_key).replace("-", "_")
        key = ALIASES.get(key, key) if key not in fields else key
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown key {raw_key!r}{hint}")
        f = fields[key]
        value = _check_value(raw_key, value, _field_type(cls, f), source)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: key {raw_key!r} must be one of {list(choices)}, "
                              f"got {value!r}")
        values[key] = value
    values.update(flag_values)
    return cls(**values)


def settings_to_dict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)
