"""The command line: ``rnnkit train | sample | eval | ablate``.

Every option of every command is a field of a settings dataclass (rnnkit.cli.settings); this
module only parses, dispatches, and turns the errors a user can cause into one line on
stderr and exit status 1 (2 for a malformed command line, as argparse does).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from rnnkit.cli.settings import (
    AblateSettings,
    BacktestSettings,
    ConfigError,
    EvalSettings,
    ExportSettings,
    ForecastSettings,
    SampleSettings,
    TrainSettings,
    add_arguments,
    build_settings,
    load_config_file,
)
from rnnkit.data.errors import DataError
from rnnkit.train import CheckpointError

USER_ERRORS = (DataError, ConfigError, CheckpointError)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not the usage block plus a line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser. Descriptions are shown as written; the help of each option is
    %-formatted by argparse, which add_arguments escapes, so a plain % is right in both."""
    parser = _Parser(prog="rnnkit", description="Train and use recurrent networks (LSTM, GRU).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train a char language model (text) or a forecaster (CSV)",
        description="Train on text files (a character language model), on CSV columns "
        "(--task forecast: a next-step model), or with no file on Python's own help text.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="FILE", help="TOML or YAML file of settings; "
                       "flags given on the command line win (default: none)")
    train.add_argument("--resume", metavar="RUN", help="continue the run RUN (a directory or a "
                       "name under runs/) from its last checkpoint (default: none)")
    train.add_argument("--restart-schedule", action="store_true", help="with --resume and a "
                       "new budget: follow the learning-rate schedule over the whole new budget, "
                       "so the rate may rise (default: anneal from the rate the run stopped at "
                       "to the new budget's end)")
    add_arguments(train, TrainSettings)

    sample = commands.add_parser(
        "sample", help="generate text, or forecast a CSV model open-loop",
        description="Text models: stream characters one step at a time. Forecast models: an "
        "open-loop forecast after the training file's last row, as CSV and PNG.",
    )
    add_arguments(sample, SampleSettings)

    evaluate = commands.add_parser("eval", help="the model's loss on a file (bits/char for text)")
    add_arguments(evaluate, EvalSettings)

    export = commands.add_parser(
        "export", help="the recurrent network as torch.nn, TorchScript and ONNX",
        description="Write the run's recurrent network for use without rnnkit: a plain "
        "torch.nn.LSTM/GRU state_dict when no trick changes its step, and a one-step model "
        "(state in, state out) as TorchScript and ONNX.")
    add_arguments(export, ExportSettings)

    forecast = commands.add_parser(
        "forecast", help="train a forecaster on a dated CSV (or use a trained one) and "
        "forecast with intervals",
        description="A DeepAR-style forecaster (rnnkit.forecasting, docs/forecasting.md): "
        "FILE.csv trains one on every row and forecasts after the last date; RUN forecasts "
        "from --context FILE without retraining. Writes CSV (the mean and quantiles) and a "
        "fan chart.")
    add_arguments(forecast, ForecastSettings)
    backtest = commands.add_parser(
        "backtest", help="rolling-origin evaluation beside Naive and SeasonalNaive",
        description="Train and forecast at W origins at the end of the file; print MAE, "
        "RMSE, MASE, sMAPE, CRPS and 80% interval coverage of rnnkit's forecaster, Naive and "
        "SeasonalNaive.")
    add_arguments(backtest, BacktestSettings)
    ablate = commands.add_parser(
        "ablate", help="measure what each trick buys the default model (test-split losses)",
        description="Train the default model of 'rnnkit train' and the same model with each "
        "trick toggled, under one budget and the same seeds; report each trick's effect on a "
        "held-out test split with a 95% interval over seeds (see docs/ablate.md).",
    )
    add_arguments(ablate, AblateSettings)
    return parser


def _train(args: argparse.Namespace, flags: dict) -> int:
    from rnnkit.cli.train import auto_size_note, run_training, settings_for

    config = load_config_file(args.config) if args.config else {}
    if args.restart_schedule and not args.resume:
        raise ConfigError("--restart-schedule goes with --resume RUN (a new run starts its "
                          "schedule anyway)")
    settings, run = settings_for(flags, config, str(args.config), args.resume)
    given = set(flags) | {str(k).replace("-", "_") for k in config}
    note = "" if run else auto_size_note(settings, given)
    summary = run_training(settings, run, args.restart_schedule, note)
    if summary["stop_reason"].startswith("stopped"):  # e.g. every step's gradient non-finite
        raise DataError(f"{summary['stop_reason']} (the checkpoints of {summary['run']} are "
                        "those of the last good steps)")
    return 130 if summary["stop_reason"] == "interrupted" else 0  # Ctrl-C, checkpoint saved


# command -> (module, function, settings): imported when the command runs, so that
# `rnnkit --help` and the other commands stay quick.
COMMANDS = {
    "sample": ("rnnkit.cli.infer", "sample", SampleSettings),
    "eval": ("rnnkit.cli.infer", "evaluate", EvalSettings),
    "export": ("rnnkit.cli.export", "export", ExportSettings),
    "forecast": ("rnnkit.cli.forecast", "forecast", ForecastSettings),
    "backtest": ("rnnkit.cli.forecast", "run_backtest", BacktestSettings),
    "ablate": ("rnnkit.cli.ablate", "run_study", AblateSettings),
}


def _run(command: str, flags: dict) -> int:
    module, name, cls = COMMANDS[command]
    run = getattr(importlib.import_module(module), name)
    settings = build_settings(cls, {}, flags)
    if command == "ablate":  # --quick's presets yield to the flags given
        run(settings, set(flags))
    else:
        run(settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 user error, 2 bad usage, 130 Ctrl-C)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return int(stop.code or 0)
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "resume",
                                                             "restart_schedule")}
    try:
        if args.command == "train":
            return _train(args, flags)
        return _run(args.command, flags)
    except USER_ERRORS as err:
        print(f"rnnkit {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (`rnnkit sample RUN | head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the exit flush cannot fail again
        return 0
    except OSError as err:  # a full disk, a missing or read-only directory: say which file
        where = f": {err.filename}" if err.filename else ""
        print(f"rnnkit {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
