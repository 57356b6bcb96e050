"""The forecast task: next-step prediction of numeric CSV columns (a Gaussian over the next
row), open-loop forecasts written as CSV and PNG."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.errors import DataError
from rnnkit.data.series import load_csv
from rnnkit.models import SequenceModel
from rnnkit.rollout import forecast
from rnnkit.tasks.common import rnn_tricks


@dataclass
class ForecastTask:
    """Next-step prediction of numeric CSV columns (a Gaussian over the next row)."""

    columns: list[str]
    kind: str = "forecast"
    unit: str = "step"

    @classmethod
    def from_files(cls, files: Sequence[str], columns: Sequence[str] = ()
                   ) -> tuple[ForecastTask, list[Tensor]]:
        if not files:
            raise DataError("--task forecast needs a CSV file")
        first = load_csv(files[0], list(columns) or None)
        series = [first] + [load_csv(f, first.columns) for f in files[1:]]
        return cls(first.columns), [torch.from_numpy(s.values) for s in series]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": self.columns}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> ForecastTask:
        return cls(list(d["columns"]))

    def summary(self) -> str:
        return f"columns {', '.join(self.columns)}"

    def build_model(self, s: Any, train: Sequence[Tensor]) -> SequenceModel:
        # the normalizer is fitted on the training split; a loaded model gets it from its weights
        fit = torch.cat(list(train)) if train else None
        return SequenceModel.forecaster(len(self.columns), s.hidden_size, s.num_layers, s.cell,
                                        train_data=fit, **rnn_tricks(s))

    def read_file(self, path: str, unknown: str = "error") -> tuple[Tensor, int]:
        """The file's columns ``[T, F]`` (every cell must be a number: nothing is skipped)."""
        return torch.from_numpy(load_csv(path, self.columns).values), 0

    def loss_text(self, nats: float) -> str:
        return f"{nats:.4f} nats/{self.unit}"

    def notes(self, s: Any) -> list[str]:
        notes = [f"note: this trains a next-step model of the columns; for a dated series, "
                 f"`rnnkit forecast {s.files[0] if s.files else 'FILE'}` trains rnnkit's "
                 "forecaster (seasonal lags, calendar features, intervals, short series) and "
                 "`rnnkit backtest` compares it with the naive forecasts (docs/forecasting.md)"]
        if s.dropout > 0 and s.num_layers == 1:
            notes.append(f"note: --dropout {s.dropout:g} does nothing here: a forecast model "
                         "drops out only between layers, and it has 1 (see --num-layers, "
                         "--recurrent-dropout, --zoneout)")
        return notes

    @torch.no_grad()
    def forecast(self, model: SequenceModel, context: Tensor, horizon: int) -> np.ndarray:
        """The open-loop mean forecast ``[horizon, F]`` after reading ``context [T, F]``."""
        model.eval()
        device = next(model.parameters()).device
        params, _ = forecast(model, context.unsqueeze(0).to(device), horizon, mode="mean")
        return model.predict(params)[0].cpu().numpy()

    def write_example(self, model: SequenceModel, run: Path, step: int, seed: int, length: int,
                      train: Sequence[Tensor], val: Sequence[Tensor]) -> str:
        """Forecast the validation split from the end of the training split:
        ``forecasts/step_N.csv`` beside the truth, and ``forecasts/latest.png``."""
        context = train[-1]
        truth = torch.cat(list(val))[:length] if val else None
        pred = self.forecast(model, context, len(truth) if truth is not None else length)
        folder = run / "forecasts"
        folder.mkdir(exist_ok=True)
        # the plot is forecasts/latest.png: RUN/forecast.png is what `rnnkit sample` writes
        write_forecast(folder / f"step_{step:07d}.csv", folder / "latest.png", self.columns,
                       context.numpy(), pred, None if truth is None else truth.numpy(),
                       title=f"open-loop forecast after step {step}")
        return ""

    def use(self, model: SequenceModel, run: Path, files: Sequence[str], prime: str, length: int,
            temperature: float, seed: int, output: str) -> None:
        """Forecast ``length`` steps after the training files' last row: CSV and PNG."""
        if prime:
            raise DataError("--prime is for text models; a forecast starts after the CSV's last "
                            "row")
        context = torch.cat([self.read_file(f)[0] for f in files])  # the series it trained on
        pred = self.forecast(model, context, length)
        out = Path(output) if output else run / "forecast.csv"
        if not out.parent.is_dir():
            raise DataError(f"--output {out}: the directory {out.parent} does not exist")
        write_forecast(out, out.with_suffix(".png"), self.columns, context.numpy(), pred, None,
                       title=f"open-loop forecast of {length} steps")
        print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)

    def next_command(self, run: Path) -> str:
        return f"rnnkit sample {run} --length 100  (writes forecast.csv and .png)"


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
