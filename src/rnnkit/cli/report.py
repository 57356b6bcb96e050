"""What ``rnnkit train`` tells the user: the start lines, a line per evaluation (with a sample
or forecast written by the task), and the closing lines."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rnnkit.tasks import Task
from rnnkit.train import Trainer
from rnnkit.train.presets import MODEL_SIZES


class EvalReport:
    """The trainer's ``on_eval`` hook: print the losses, write a sample or a forecast."""

    def __init__(self, task: Task, run: Path, seed: int, sample_length: int,
                 train: Sequence[torch.Tensor], val: Sequence[torch.Tensor]) -> None:
        self.task, self.run, self.seed, self.sample_length = task, run, seed, sample_length
        self.train, self.val = train, val

    def __call__(self, trainer: Trainer, record: dict[str, float]) -> None:
        line = f"step {record['step']:>6}  train {record['train_loss']:.4f}"
        if "loss" in record:
            line += f"  val {self.task.loss_text(record['loss'])}"
        tqdm.write(line, file=sys.stderr)
        if self.sample_length > 0:
            model = trainer.eval_model
            try:
                said = self.task.write_example(model, self.run, int(record["step"]), self.seed,
                                               self.sample_length, self.train, self.val)
            except ValueError as err:  # e.g. non-finite outputs: say so, keep training
                said = f"  | no sample: {err}"
            finally:
                model.train()
            if said:
                tqdm.write(said, file=sys.stderr)


def announce(task: Task, s: Any, run: Path, model: torch.nn.Module, n_train: int, n_val: int,
             device: str, max_steps: int, by_epochs: bool) -> None:
    params = sum(p.numel() for p in model.parameters())
    source = ", ".join(s.files) or "Python's help topics (pydoc_data.topics)"
    epochs = f" ({s.max_epochs:g} epochs)" if by_epochs else ""
    budget = " and ".join(filter(None, [s.max_time and f"{s.max_time:g} s",
                                        max_steps and f"{max_steps} steps{epochs}"]))
    print(f"data: {source}: {n_train} train / {n_val} validation {task.unit}s, "
          f"{task.summary()}", file=sys.stderr)
    size = f" ({s.model_size})" if s.model_size in MODEL_SIZES else ""
    norm = ", layer norm" if s.layer_norm else ""
    print(f"model{size}: {s.cell.upper()} {s.num_layers}x{s.hidden_size}{norm}, "
          f"{params / 1e6:.2f}M parameters, chunks of {s.chunk_length}, on {device}; budget "
          f"{budget}; run directory {run}", file=sys.stderr)
    for note in task.notes(s):
        print(note, file=sys.stderr)


def finish(task: Task, summary: dict[str, Any], run: Path) -> None:
    best = summary.get("best_eval_loss")
    line = (f"done: {summary['steps']} steps ({summary['stop_reason']}) in "
            f"{summary['elapsed']:.0f} s")
    if best is not None and math.isfinite(best):
        line += f"; best validation loss {task.loss_text(best)}"
    print(line, file=sys.stderr)
    print(f"run directory: {run} (plot.png, metrics.jsonl, best.pt, last.pt)", file=sys.stderr)
    if summary["stop_reason"] == "interrupted":
        print(f"continue with: rnnkit train --resume {run}", file=sys.stderr)
    print(f"next: {task.next_command(run)}", file=sys.stderr)
