"""Run directories: ``runs/<name>/`` holds everything one training run writes.

Layout (the trainer writes the checkpoints, metrics and plot; the CLI the rest)::

    config.yaml     the resolved settings (pass it back with --config)
    task.json       what the model reads and predicts: the vocabulary or the CSV columns
    metrics.jsonl   one JSON record per logged step and per evaluation
    best.pt last.pt checkpoints (best validation loss, latest)
    plot.png        losses and gradient norm
    samples.txt     text generated at each evaluation (text models)
    forecasts/      open-loop forecasts at each evaluation (forecast models)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rnnkit.data.errors import DataError

CONFIG = "config.yaml"
TASK = "task.json"


def find_run(run: str, runs_dir: str = "runs") -> Path:
    """A run given as a directory path or as a name under ``runs_dir``."""
    for candidate in (Path(run), Path(runs_dir) / run):
        if (candidate / TASK).is_file():
            return candidate
    raise DataError(f"no run {run!r}: neither {run} nor {Path(runs_dir) / run} holds a "
                    f"{TASK} written by 'rnnkit train'")


def pick_name(runs_dir: str, name: str, fallback: str) -> Path:
    """``runs_dir/name``; an explicit name that exists is refused (nothing is overwritten),
    a default name gets the first free suffix: fallback, fallback-2, fallback-3, ..."""
    root = Path(runs_dir)
    if name:
        path = root / name
        if path.exists():
            raise DataError(f"run directory {path} already exists; choose another --name, "
                            f"or continue it with --resume {path}")
        return path
    path, k = root / fallback, 2
    while path.exists():
        path, k = root / f"{fallback}-{k}", k + 1
    return path


def create(path: Path, settings: dict[str, Any], task: dict[str, Any]) -> None:
    """Make the directory (it must not exist) and write the config and task files."""
    path.mkdir(parents=True, exist_ok=False)
    (path / CONFIG).write_text(yaml.safe_dump(settings, sort_keys=False))
    (path / TASK).write_text(json.dumps(task) + "\n")


def read_settings(path: Path) -> dict[str, Any]:
    return yaml.safe_load((path / CONFIG).read_text()) or {}


def read_task(path: Path) -> dict[str, Any]:
    return json.loads((path / TASK).read_text())
