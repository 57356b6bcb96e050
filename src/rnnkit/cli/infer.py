"""``rnnkit sample`` and ``rnnkit eval``: use a trained run."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from rnnkit.cli import rundir
from rnnkit.cli.settings import (
    ConfigError,
    EvalSettings,
    SampleSettings,
    TrainSettings,
    build_settings,
    set_threads,
)
from rnnkit.data.errors import DataError
from rnnkit.models import SequenceModel
from rnnkit.tasks import Task, score, task_from_description
from rnnkit.train import load_checkpoint, model_weights
from rnnkit.train.trainer import resolve_device


def load_model(run: str | Path, checkpoint: str = "best", device: str = "cpu"
               ) -> tuple[SequenceModel, Task]:
    """The run's model with the weights of ``best.pt`` (or ``last.pt``; the averaged ones when
    the run kept an average, --ema-decay), in eval mode."""
    path = _trained_run(str(run))
    settings = build_settings(TrainSettings, rundir.read_settings(path), {},
                              str(path / rundir.CONFIG))
    task = task_from_description(rundir.read_task(path))
    file = path / f"{checkpoint}.pt"
    if checkpoint == "best" and not file.exists() and (path / "last.pt").exists():
        print(f"note: {path} has no best.pt (no evaluation yet); using last.pt", file=sys.stderr)
        file = path / "last.pt"
    ckpt = load_checkpoint(file, map_location="cpu")
    model = task.build_model(settings, [])
    model.load_state_dict(model_weights(ckpt))
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise DataError(f"{file}: the weights are not finite (the run diverged); train again "
                        "with a lower --lr or with clipping")
    try:
        where = resolve_device(device)
    except ValueError as err:
        raise ConfigError(f"--device {device}: {err}") from None
    return model.to(where).eval(), task


def _trained_run(run: str) -> Path:
    """``rundir.find_run``, but a forecaster's run (rnnkit forecast) is named as one, with the
    commands that read it, instead of "no run"."""
    try:
        return rundir.find_run(run)
    except DataError:
        from rnnkit.cli.forecast import META

        for candidate in (Path(run), Path("runs") / run):
            if (candidate / META).is_file():
                raise DataError(
                    f"{candidate} is a forecaster's run (rnnkit forecast); sample, eval and "
                    f"export read runs of rnnkit train: forecast with `rnnkit forecast {run}` "
                    f"(--context FILE for newer data), or score it with `rnnkit backtest "
                    f"{run}`") from None
        raise


def sample(s: SampleSettings) -> None:
    set_threads(s.threads)
    model, task = load_model(s.run, s.checkpoint, s.device)
    run = _trained_run(s.run)
    try:
        task.use(model, run, rundir.read_task(run).get("files", []), s.prime, s.length,
                 s.temperature, s.seed, s.output)
    except ValueError as err:  # e.g. the logits of a diverged model are not finite
        raise DataError(str(err)) from None


def evaluate(s: EvalSettings) -> float:
    set_threads(s.threads)
    model, task = load_model(s.run, s.checkpoint, s.device)
    data, skipped = task.read_file(s.file, s.unknown)
    nats = score(model, data, streams=s.batch_size)
    line = f"{s.file}: {task.loss_text(nats)} over {len(data) - 1} {task.unit}s"
    if skipped:
        line += f" ({skipped} {task.unit}s the model has not seen were skipped)"
    print(line)
    return nats
