"""What ``rnnkit`` trains from files: a character language model (:mod:`.text`) or a
next-step forecaster of CSV columns (:mod:`.forecast`).

A task reads its files into sequences, builds its model, describes itself for the run
directory (``task.json``), and uses a trained model: samples or forecasts, reports, scores.
Callers use only the :class:`Task` interface, never the concrete class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from rnnkit.data.errors import DataError
from rnnkit.models import SequenceModel
from rnnkit.tasks.forecast import ForecastTask
from rnnkit.tasks.text import TextTask

__all__ = ["ModelSettings", "Task", "TASKS", "load_task", "score", "task_from_description"]


class ModelSettings(Protocol):
    """The settings a task builds its model from (the CLI's TrainSettings has them)."""

    cell: str
    embed_dim: int
    hidden_size: int
    num_layers: int
    dropout: float
    embed_dropout: float
    layer_norm: bool
    input_layers: int
    sum_outputs: bool
    learned_initial_state: bool
    forget_bias: float
    recurrent_dropout: float
    zoneout: float


class Task(Protocol):
    kind: str  # "text" or "forecast": the key of TASKS, saved in task.json
    unit: str  # what one step is: "char" or "step"

    def describe(self) -> dict[str, Any]:
        """What task.json holds to rebuild the task (vocabulary, columns)."""

    def summary(self) -> str:
        """The data in a few words, e.g. '65 distinct characters'."""

    def build_model(self, s: ModelSettings, train: Sequence[Tensor]) -> SequenceModel:
        """A fresh model; ``train`` is the training split (empty when loading weights)."""

    def read_file(self, path: str, unknown: str = "error") -> tuple[Tensor, int]:
        """A file as one sequence the model reads, and how many steps it skipped
        (``unknown="skip"``: symbols the model has not seen)."""

    def loss_text(self, nats: float) -> str:
        """A loss in the task's units, e.g. '1.4000 nats/char (2.020 bits/char)'."""

    def notes(self, s: ModelSettings) -> list[str]:
        """Lines that warn of settings that do nothing for this task."""

    def write_example(self, model: SequenceModel, run: Path, step: int, seed: int, length: int,
                      train: Sequence[Tensor], val: Sequence[Tensor]) -> str:
        """After an evaluation: write a sample or forecast into the run directory; returns a
        line to print (may be empty)."""

    def use(self, model: SequenceModel, run: Path, files: Sequence[str], prime: str, length: int,
            temperature: float, seed: int, output: str) -> None:
        """``rnnkit sample``: stream a sample (text) or write a forecast (CSV and PNG)."""

    def next_command(self, run: Path) -> str:
        """What to run after training."""


TASKS: dict[str, Any] = {"text": TextTask, "forecast": ForecastTask}


def load_task(kind: str, files: Sequence[str], columns: Sequence[str]
              ) -> tuple[Task, list[Tensor]]:
    """The task ``kind`` and its data as a list of sequences (one per file)."""
    return TASKS[kind].from_files(files, list(columns))


def task_from_description(d: dict[str, Any]) -> Task:
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in TASKS:
        raise DataError(f"task.json: kind must be one of {sorted(TASKS)}, got {kind!r}")
    return TASKS[kind].from_description(d)


@torch.no_grad()
def score(model: SequenceModel, seq: Tensor, streams: int = 16, chunk: int = 256) -> float:
    """Mean next-step loss (nats per step) over a whole sequence: cut into ``streams``
    contiguous pieces read in parallel, each with its state carried from chunk to chunk."""
    if len(seq) < 2:
        raise DataError("nothing to score: the file has fewer than 2 steps")
    model.eval()
    device = next(model.parameters()).device
    pieces = torch.tensor_split(torch.arange(len(seq) - 1), min(streams, len(seq) - 1))
    longest = max(len(p) for p in pieces)
    index = torch.zeros(len(pieces), longest, dtype=torch.long)
    mask = torch.zeros(len(pieces), longest, dtype=torch.bool)
    for row, piece in enumerate(pieces):
        index[row, : len(piece)] = piece
        mask[row, : len(piece)] = True
    inputs, targets = seq[index].to(device), seq[index + 1].to(device)
    mask = mask.to(device)
    total, state = 0.0, None
    for start in range(0, longest, chunk):
        params, state = model(inputs[:, start : start + chunk], state)
        loss = model.loss(params, targets[:, start : start + chunk])
        total += float(loss[mask[:, start : start + chunk]].sum())
    return total / (len(seq) - 1)
