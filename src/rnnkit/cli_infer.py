"""``rnnkit sample`` and ``rnnkit eval``: use a trained run."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch

from rnnkit import rundir
from rnnkit.cli_config import EvalSettings, SampleSettings, TrainSettings, build_settings
from rnnkit.data.errors import DataError
from rnnkit.models import SequenceModel
from rnnkit.tasks import Task, TextTask, bits, score, task_from_description
from rnnkit.train import load_checkpoint, model_weights


def load_model(run: str | Path, checkpoint: str = "best", device: str = "cpu"
               ) -> tuple[SequenceModel, Task]:
    """The run's model with the weights of ``best.pt`` (or ``last.pt``; the averaged ones when
    the run kept an average, --ema-decay), in eval mode."""
    from rnnkit.cli_train import resolve_device

    path = rundir.find_run(str(run))
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
    return model.to(resolve_device(device)).eval(), task


def sample(s: SampleSettings) -> None:
    model, task = load_model(s.run, s.checkpoint, s.device)
    if isinstance(task, TextTask):
        device = next(model.parameters()).device
        task.vocab.encode(s.prime)  # an unknown character fails here, before any output
        gen = torch.Generator(device=device).manual_seed(s.seed)
        sys.stdout.write(s.prime)
        for ch in task.generate(model, s.prime, s.length, s.temperature, gen):
            sys.stdout.write(ch)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    if s.prime:
        raise DataError("--prime is for text models; a forecast starts after the CSV's last row")
    run = rundir.find_run(s.run)
    files = rundir.read_task(run)["files"]
    context = torch.cat([task.read_file(f) for f in files])  # the series the model trained on
    pred = task.forecast(model, context, s.length)
    out = Path(s.output) if s.output else run / "forecast.csv"
    write_forecast(out, out.with_suffix(".png"), task.columns, context.numpy(), pred, None,
                   title=f"open-loop forecast of {s.length} steps")
    print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)


def evaluate(s: EvalSettings) -> float:
    model, task = load_model(s.run, s.checkpoint, s.device)
    data = task.read_file(s.file)
    nats = score(model, data, streams=s.batch_size)
    line = f"{s.file}: {nats:.4f} nats/{task.unit}"
    if isinstance(task, TextTask):
        line += f", {bits(nats):.4f} bits/{task.unit}"
    print(f"{line} over {len(data) - 1} {task.unit}s")
    return nats


def write_forecast(csv_path: Path, png_path: Path, columns: list[str], context: np.ndarray,
                   forecast: np.ndarray, truth: np.ndarray | None, title: str) -> None:
    """The forecast as CSV (step after the context, one column per series, and the true values
    when known) and a plot of the context's tail, the truth and the forecast."""
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *columns, *([f"{c}_true" for c in columns] if truth is not None
                                             else [])])
        for i, row in enumerate(forecast):
            extra = list(truth[i]) if truth is not None and i < len(truth) else []
            writer.writerow([i + 1, *(f"{v:.6g}" for v in row), *(f"{v:.6g}" for v in extra)])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tail = context[-3 * len(forecast):]
    fig, axes = plt.subplots(len(columns), 1, figsize=(9, 2.5 * len(columns)), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[:, 0], columns, strict=True)):
        ax.plot(np.arange(-len(tail) + 1, 1), tail[:, k], color="gray", lw=0.8, label="context")
        if truth is not None:
            ax.plot(np.arange(1, len(truth) + 1), truth[:, k], color="black", lw=0.8,
                    label="truth")
        ax.plot(np.arange(1, len(forecast) + 1), forecast[:, k], color="C1", lw=1.2,
                label="forecast")
        ax.set_ylabel(name)
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="upper left", fontsize="small")
    axes[-1, 0].set_xlabel("steps after the context")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)

