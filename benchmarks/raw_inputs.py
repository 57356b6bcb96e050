"""Raw continuous inputs: do feed-forward input layers (S3) help? And layer norm, clipping?

The claim (S3): an MLP applied to each step's raw input before the recurrence
(``input_layers=k``: k x (Linear(hidden) + ELU)) projects the data into a space with easier
dynamics, and helps most where the inputs are raw continuous measurements, not embeddings.

The task: one-step-ahead prediction of every column of a real multivariate series from the
vector of all its columns, standardized with the training part's mean and sd only. The rows
are split in time order: the last 20% is the test part, the 15% before it the validation
part, the rest the training part. Training windows of ``window`` steps lie wholly in the
training part (inputs rows s .. s+W-1, targets s+1 .. s+W, a loss at every step); a held-out
row t is predicted from the ``window`` rows before it (the last step's output), so its
inputs may reach back into earlier parts, never its target. Data sets (../shared/data/):

- ``uschange``: fpp/uschange.csv, quarterly % changes of US consumption, income,
  production, savings and unemployment, 187 rows, window 16
- ``seattle-weather``: seattle-weather.csv, daily precipitation, temp_max, temp_min and
  wind, 1461 rows, window 24

Each run trains one small model (rnnkit.LSTM with forget bias 1, or rnnkit.GRU, hidden 32,
one layer, a linear head at every step) for ``--steps`` optimizer steps (600; Adam 3e-3,
batch 32 windows drawn with replacement by a generator seeded by the run's seed, gradient
norm clipped to 1), scoring the validation part every 10 steps. Its test MSE is read at the
best validation check (early stopping; the primary metric) and at the last step. The
learning rate and the budget were chosen on the validation parts only (seed 0: 3e-3 beat
1e-3 and 3e-4 for the default on all four data-cell pairs; in 4000-step runs every arm's
best validation check came by step 175). The arms, each against ``default`` and paired by
seed (the same batches, and the same initial weights of every part the two share: W_hh, the
biases (not under layer norm, whose biases start at 0), W_ih where its shape is the same,
the head):

- ``default``: no input layers, no layer norm, clipping at norm 1
- ``input_layers_1``, ``input_layers_2``: one or two feed-forward input layers (S3)
- ``layer_norm``: layer norm in the recurrence (S2)
- ``no_clip``: no gradient clipping

The effect is the per-seed difference of test MSE (arm - default) with a 95% t-interval over
seeds (``rnnkit.cli.ablate_report.paired_effect``, ``verdict``); negative means the arm
helps. Beside it: the MSE of persistence (the last row's value) and of the training mean
(0), and steps per second. The budget is in steps, so a busy machine changes speed, never
the numbers.

    nice python benchmarks/raw_inputs.py                 # the study (about 2 min, 1 thread)
    python benchmarks/raw_inputs.py --quick              # a smoke test (seconds)
    python benchmarks/raw_inputs.py --summarize          # the table of the written JSON

Prints a table and writes benchmarks/results/raw-inputs.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import rnnkit
from rnnkit.cli.ablate_report import number, paired_effect, verdict
from rnnkit.data.series import load_csv

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "raw-inputs.json"
QUICK_OUT = Path("/tmp/raw-inputs-quick.json")
HIDDEN = 32
BATCH = 32
LR = 3e-3
CLIP = 1.0
STEPS = 600
EVAL_EVERY = 10
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.15
CELLS = ("lstm", "gru")
# arm -> (what it changes against the default, its constructor overrides, clipped?)
ARMS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "default": ("no input layers, no layer norm, clip norm 1", {}, True),
    "input_layers_1": ("one feed-forward input layer (S3)", {"input_layers": 1}, True),
    "input_layers_2": ("two feed-forward input layers (S3)", {"input_layers": 2}, True),
    "layer_norm": ("layer norm in the recurrence (S2)", {"layer_norm": True}, True),
    "no_clip": ("no gradient clipping", {}, False),
}
PARTS = ("validation", "test")


@dataclass(frozen=True)
class Dataset:
    """A CSV file, the columns read from it, and the window length of its windows."""

    path: Path
    columns: tuple[str, ...]
    window: int


DATASETS = {
    "uschange": Dataset(DATA / "fpp" / "uschange.csv",
                        ("Consumption", "Income", "Production", "Savings", "Unemployment"), 16),
    "seattle-weather": Dataset(DATA / "seattle-weather.csv",
                               ("precipitation", "temp_max", "temp_min", "wind"), 24),
}

Windows = tuple[torch.Tensor, torch.Tensor]


def split_rows(n: int) -> tuple[int, int]:
    """Where the validation and the test parts start, for ``n`` rows in time order: the test
    part is the last 20%, the validation part the 15% before it."""
    if n < 10:
        raise ValueError(f"a series needs at least 10 rows to split, got {n}")
    test_start = n - round(n * TEST_FRACTION)
    return test_start - round(n * VALIDATION_FRACTION), test_start


def standardize(values: torch.Tensor, train_end: int) -> torch.Tensor:
    """``values`` [T, C] minus the mean, over the sd, of its first ``train_end`` rows, per
    column (the training part's statistics only)."""
    train = values[:train_end]
    sd = train.std(dim=0)
    if (sd == 0).any():
        raise ValueError(f"a column is constant on the training rows: sd {sd.tolist()}")
    return (values - train.mean(dim=0)) / sd


def training_windows(x: torch.Tensor, end: int, window: int) -> Windows:
    """Every window whose targets lie before row ``end``: inputs ``[N, W, C]`` (rows s ..
    s+W-1) and targets ``[N, W, C]`` (rows s+1 .. s+W)."""
    starts = range(0, end - window)
    if not starts:
        raise ValueError(f"window {window} leaves no training window in {end} rows")
    return (torch.stack([x[s:s + window] for s in starts]),
            torch.stack([x[s + 1:s + window + 1] for s in starts]))


def held_out_windows(x: torch.Tensor, start: int, end: int, window: int) -> Windows:
    """The rows ``start`` .. ``end - 1`` as targets ``[N, C]``, each with the ``window``
    rows before it as inputs ``[N, W, C]``."""
    if start < window or end <= start:
        raise ValueError(f"held-out rows {start}..{end} need {window} rows before them")
    rows = range(start, end)
    return torch.stack([x[t - window:t] for t in rows]), x[start:end]


def load(name: str, root: Path | None = None) -> dict[str, Any]:
    """One data set, standardized and cut: training windows, validation and test windows,
    the split rows, and the persistence and training-mean MSE of each held-out part."""
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {', '.join(DATASETS)}, got {name!r}")
    spec = DATASETS[name]
    path = spec.path if root is None else root / spec.path.relative_to(DATA)
    values = torch.as_tensor(load_csv(path, list(spec.columns)).values, dtype=torch.float32)
    val_start, test_start = split_rows(len(values))
    x = standardize(values, val_start)
    held = {"validation": held_out_windows(x, val_start, test_start, spec.window),
            "test": held_out_windows(x, test_start, len(x), spec.window)}
    baselines = {part: {"persistence": float(((inp[:, -1] - y) ** 2).mean()),
                        "training_mean": float((y ** 2).mean())}
                 for part, (inp, y) in held.items()}
    return {"name": name, "train": training_windows(x, val_start, spec.window), **held,
            "rows": {"train": val_start, "validation": test_start - val_start,
                     "test": len(x) - test_start},
            "columns": list(spec.columns), "window": spec.window, "baselines": baselines}


class Predictor(nn.Module):
    """A recurrent layer and a linear head at every step: ``[B, T, C] -> [B, T, C]``."""

    def __init__(self, rnn: nn.Module, channels: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(HIDDEN, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


def make_rnn(cell: str, channels: int, overrides: dict[str, Any]) -> nn.Module:
    """The recurrent layer: ``channels`` inputs, hidden 32, batch first; LSTM forget bias 1."""
    if cell == "gru":
        return rnnkit.GRU(channels, HIDDEN, batch_first=True, **overrides)
    if cell == "lstm":
        return rnnkit.LSTM(channels, HIDDEN, batch_first=True, forget_bias=1.0, **overrides)
    raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")


def build(cell: str, arm: str, channels: int, seed: int) -> Predictor:
    """The model of one run. Every parameter it shares with the default's model (same name
    and shape) starts from the default's value, except the biases under layer norm (its LN
    biases start at 0); what only the arm has is drawn from the seed."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {', '.join(ARMS)}, got {arm!r}")
    torch.manual_seed(seed)
    reference = Predictor(make_rnn(cell, channels, {}), channels)
    torch.manual_seed(seed)
    overrides = ARMS[arm][1]
    model = Predictor(make_rnn(cell, channels, overrides), channels)
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name not in own or own[name].shape != p.shape:
                continue
            if overrides.get("layer_norm") and name.startswith("rnn.bias_"):
                continue
            own[name].copy_(p)
    return model


@torch.no_grad()
def score(model: Predictor, windows: Windows) -> float:
    """The MSE of the last step's prediction (inputs ``[N, W, C]``, targets ``[N, C]``),
    averaged over rows and columns."""
    x, y = windows
    model.eval()
    err = float(((model(x)[:, -1] - y) ** 2).mean())
    model.train()
    return err


def train_step(model: Predictor, opt: torch.optim.Optimizer, train: Windows,
               stream: torch.Generator, clip: bool) -> tuple[float, float]:
    """One optimizer step on a batch of training windows drawn from ``stream``; its loss and
    the gradient's norm before clipping (measured, and left alone, when ``clip`` is off)."""
    x, y = train
    pick = torch.randint(len(x), (BATCH,), generator=stream)
    loss = ((model(x[pick]) - y[pick]) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), CLIP if clip else float("inf"))
    opt.step()
    return float(loss.detach()), float(norm)


def train_one(data: dict[str, Any], cell: str, arm: str, seed: int, steps: int,
              lr: float = LR, eval_every: int = EVAL_EVERY) -> dict[str, Any]:
    """Train one model for ``steps`` steps; its validation curve, its validation and test MSE
    at the best validation check and at the last step, its largest gradient norm (and the
    share of steps over the clipping threshold), and its speed."""
    channels = data["train"][0].shape[-1]
    model = build(cell, arm, channels, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    stream = torch.Generator().manual_seed(seed)
    clip = ARMS[arm][2]
    curve: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    seconds, over, top = 0.0, 0, 0.0
    for step in range(1, steps + 1):
        start = time.perf_counter()
        train_mse, norm = train_step(model, opt, data["train"], stream, clip)
        seconds += time.perf_counter() - start
        over, top = over + (norm > CLIP), max(top, norm)
        if step % eval_every == 0 or step == steps:
            val = score(model, data["validation"])
            curve.append({"step": step, "train_batch_mse": train_mse, "validation": val})
            if best is None or val < best[0]:
                best = (val, step, copy.deepcopy(model.state_dict()))
    assert best is not None
    last = {part: score(model, data[part]) for part in PARTS}
    model.load_state_dict(best[2])
    at_best = {part: score(model, data[part]) for part in PARTS}
    return {"data": data["name"], "cell": cell, "arm": arm, "seed": seed, "steps": steps,
            "best_step": best[1], "at_best": at_best, "at_last": last,
            "validation_curve": curve, "steps_per_second": steps / seconds,
            "steps_with_grad_norm_over_clip": over / steps, "max_grad_norm": top,
            "parameters": sum(p.numel() for p in model.parameters())}


def summarize(runs: list[dict[str, Any]], baselines: dict[str, dict[str, Any]]
              ) -> list[dict[str, Any]]:
    """One row per (data set, cell, arm other than default, read point): each side's mean
    test MSE, the paired effect (arm minus default) and its verdict."""
    rows = []
    keys = sorted({(r["data"], r["cell"]) for r in runs}, key=lambda k: (
        list(DATASETS).index(k[0]), CELLS.index(k[1])))
    for data, cell in keys:
        mine = [r for r in runs if r["data"] == data and r["cell"] == cell]
        persistence = baselines[data]["test"]["persistence"]
        for arm in [a for a in ARMS if a != "default"]:
            if not any(r["arm"] == arm for r in mine):
                continue
            for read in ("at_best", "at_last"):
                rows.append(_row(mine, data, cell, arm, read, persistence))
    return rows


def _row(runs: list[dict[str, Any]], data: str, cell: str, arm: str, read: str,
         persistence: float) -> dict[str, Any]:
    side = {a: [r for r in runs if r["arm"] == a] for a in ("default", arm)}
    test = {a: {r["seed"]: r[read]["test"] for r in side[a]} for a in side}
    mean, low, high, n = paired_effect(test[arm], test["default"])
    default_mean = statistics.fmean(test["default"].values())
    arm_mean = statistics.fmean(test[arm].values())
    return {
        "data": data, "cell": cell, "arm": arm, "read": read, "seeds": n,
        "default_mean": default_mean, "arm_mean": arm_mean,
        "default_per_seed": [test["default"][k] for k in sorted(test["default"])],
        "arm_per_seed": [test[arm][k] for k in sorted(test[arm])],
        "difference": mean, "ci_low": low, "ci_high": high,
        "relative": None if mean is None else mean / default_mean,
        "verdict": verdict(low, high),
        "persistence": persistence,
        "default_over_persistence": default_mean / persistence,
        "arm_over_persistence": arm_mean / persistence,
        "default_steps_per_second": statistics.fmean(
            r["steps_per_second"] for r in side["default"]),
        "arm_steps_per_second": statistics.fmean(r["steps_per_second"] for r in side[arm]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| data | cell | arm | read at | default | arm | arm minus default [95% CI] "
             "| relative | / persistence (default, arm) | steps/s (default, arm) | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = (f"{number(r['difference'], sign=True)} [{number(r['ci_low'], sign=True)}, "
                f"{number(r['ci_high'], sign=True)}]")
        rel = "-" if r["relative"] is None else f"{100 * r['relative']:+.1f}%"
        read = "best validation" if r["read"] == "at_best" else "last step"
        lines.append(
            f"| {r['data']} | {r['cell']} | {r['arm']} | {read} | {number(r['default_mean'])} | "
            f"{number(r['arm_mean'])} | {diff} | {rel} | {r['default_over_persistence']:.2f}, "
            f"{r['arm_over_persistence']:.2f} | {r['default_steps_per_second']:.0f}, "
            f"{r['arm_steps_per_second']:.0f} | {r['verdict']} |")
    return "\n".join(lines)


def baseline_lines(baselines: dict[str, dict[str, Any]]) -> str:
    """The persistence and training-mean MSE of each data set's test part, one line each."""
    return "\n".join(
        f"{name} test: persistence {b['test']['persistence']:.4f}, training mean "
        f"{b['test']['training_mean']:.4f} (rows: {b['rows']})" for name, b in baselines.items())


def _names(text: str, known: tuple[str, ...] | list[str], flag: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names or any(v not in known for v in names):
        raise SystemExit(f"{flag}: expected any of {', '.join(known)}, got {text!r}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=",".join(DATASETS), help="comma-separated data sets")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated: lstm, gru")
    p.add_argument("--arms", default=",".join(ARMS),
                   help="comma-separated arms (default is always run)")
    p.add_argument("--steps", type=int, default=STEPS, help="optimizer steps per run")
    p.add_argument("--lr", type=float, default=LR, help="Adam's learning rate")
    p.add_argument("--eval-every", type=int, default=EVAL_EVERY,
                   help="steps between validation checks")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for every arm")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None,
                   help=f"the JSON to write (or read); default {OUT.relative_to(ROOT)}")
    p.add_argument("--summarize", action="store_true",
                   help="print the table of the runs in --out; train nothing")
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 seeds, 30 steps, "
                   f"written to {QUICK_OUT} unless --out is given")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], list[str], list[str]]:
    """The data sets, cells and arms to run, from the arguments (SystemExit on bad ones)."""
    if args.quick:
        args.seeds, args.steps = 2, 30
    if args.out is None:
        args.out = QUICK_OUT if args.quick else OUT
    data = _names(args.data, list(DATASETS), "--data")
    cells = _names(args.cells, CELLS, "--cells")
    arms = _names(args.arms, list(ARMS), "--arms")
    arms = ["default"] + [a for a in arms if a != "default"]
    if args.eval_every < 1 or args.steps < args.eval_every:
        raise SystemExit(f"--steps and --eval-every: need steps >= eval_every >= 1, got "
                         f"{args.steps} and {args.eval_every}")
    if not args.lr > 0:
        raise SystemExit(f"--lr: must be > 0, got {args.lr}")
    if args.seeds < 1:
        raise SystemExit(f"--seeds: must be >= 1, got {args.seeds}")
    return data, cells, arms


def run_study(args: argparse.Namespace, data_names: list[str], cells: list[str],
              arms: list[str]) -> dict[str, Any]:
    """Every run of the study, the rows of its table and what it ran on."""
    begin = time.perf_counter()
    runs, baselines = [], {}
    for name in data_names:
        data = load(name)
        baselines[name] = {**data["baselines"],
                           **{k: data[k] for k in ("rows", "columns", "window")}}
        for cell in cells:
            for seed in range(args.seeds):
                for arm in arms:
                    run = train_one(data, cell, arm, seed, args.steps, args.lr,
                                    args.eval_every)
                    runs.append(run)
                    print(f"{name} {cell} seed={seed} {arm:15s} test MSE at best validation "
                          f"{run['at_best']['test']:.4f} (step {run['best_step']}), last "
                          f"{run['at_last']['test']:.4f} ({run['steps_per_second']:.0f} "
                          f"steps/s)", flush=True)
    return {
        "task": "one-step-ahead prediction of every column from all columns, standardized "
                "with the training part's statistics; MSE in standardized units",
        "data": baselines,
        "split": f"time order: test the last {TEST_FRACTION:.0%}, validation the "
                 f"{VALIDATION_FRACTION:.0%} before it, training the rest",
        "model": f"one layer, hidden {HIDDEN}, linear head at every step; LSTM forget bias 1",
        "arms": {a: ARMS[a][0] for a in arms},
        "training": {"optimizer": "Adam", "lr": args.lr, "batch": BATCH, "clip_norm": CLIP,
                     "steps": args.steps, "eval_every": args.eval_every,
                     "seeds": args.seeds},
        "machine": f"{platform.machine()}, torch {torch.__version__}, "
                   f"{args.threads} thread(s)",
        "wall_seconds": time.perf_counter() - begin,
        "command": "nice python benchmarks/raw_inputs.py",
        "rows": summarize(runs, baselines), "runs": runs,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data_names, cells, arms = plan(args)
    if args.summarize:
        if not args.out.exists():
            raise SystemExit(f"--summarize: no results at {args.out}; run the study first")
        result = json.loads(args.out.read_text())
        print(table(result["rows"]))
        print(baseline_lines(result["data"]))
        return
    torch.set_num_threads(args.threads)
    result = run_study(args, data_names, cells, arms)
    print(table(result["rows"]))
    print(baseline_lines(result["data"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
