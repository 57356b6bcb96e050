"""Many short sequences: does a learned initial state (S5) beat the zero state?

The claim: when the data is many short sequences, each starting from a reset state, the zero
state is a bad start and a learned one (``learned_initial_state=True``) helps, most on the
first steps of each sequence.

The task (rnnkit.data.episodes.sine_episodes): episodes of 32 steps of a noisy sine (noise sd
0.1) whose amplitude, frequency and phase are drawn per episode; one-step-ahead prediction, MSE
at every step. Each run trains one small model (rnnkit.LSTM with forget bias 1, or rnnkit.GRU,
hidden 64, one layer, a linear head at every step) for a fixed number of optimizer steps (Adam
3e-3, batch 32 episodes, gradient norm clipped to 1), a fresh batch every step from a
generator seeded by the run's seed; every batch starts from the module's initial state (no
state is passed in): zeros, or the learned one. The two arms of a seed are paired: the same
batches and the same initial weights (the learned state starts at 0 and draws no random
numbers, so the rest of the weights are drawn alike).

Scored on held-out episodes: a validation set (generator seed 20000) every 500 steps (the
JSON's ``validation_curve``, on which the budgets were chosen) and a test set (seed 10000) at
each budget of ``--budgets`` (the same runs, read at two step counts); nothing was chosen on
the test set. Metrics: the MSE over the first k = 1, 3, 5 steps of each episode, and over all
32. The effect is the per-seed difference (learned - zeros) with a 95% t-interval over seeds
(``rnnkit.cli.ablate_report.paired_effect``, ``verdict``); negative means the learned state
helps. Beside it, an estimate of the best possible first-step MSE (``first_step_floor``: the
conditional mean of the second observation given the first, binned over a million episodes).
Steps per second are reported too: the budget is in steps, so a busy machine changes speed,
never the numbers.

    nice python benchmarks/short_sequences.py               # the study (about 6 min, 1 thread)
    python benchmarks/short_sequences.py --quick            # a smoke test (seconds)
    python benchmarks/short_sequences.py --summarize        # the table of the written JSON

Prints a table and writes benchmarks/results/short-sequences.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import rnnkit
from rnnkit.cli.ablate_report import number, paired_effect, verdict
from rnnkit.data.episodes import sine_episodes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "short-sequences.json"
LENGTH = 32
NOISE = 0.1
HIDDEN = 64
BATCH = 32
LR = 3e-3
CLIP = 1.0
BUDGETS = (1000, 5000)  # test metrics after these many steps (the last is the run's length)
EVAL_EVERY = 500  # validation metrics every this many steps
EVAL_SIZE = 2000
VALIDATION_SEED = 20_000
TEST_SEED = 10_000
FLOOR_SEED = 30_000
FIRST_K = (1, 3, 5)
CELLS = ("lstm", "gru")
ARMS = ("zeros", "learned")
METRICS = tuple(f"first_{k}" for k in FIRST_K) + ("all",)

Episodes = tuple[torch.Tensor, torch.Tensor]


def make_rnn(cell: str, learned: bool) -> nn.Module:
    """The recurrent layer: input 1 channel, hidden 64, batch first; LSTM forget bias 1."""
    if cell == "gru":
        return rnnkit.GRU(1, HIDDEN, batch_first=True, learned_initial_state=learned)
    if cell == "lstm":
        return rnnkit.LSTM(1, HIDDEN, batch_first=True, forget_bias=1.0,
                           learned_initial_state=learned)
    raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")


class Predictor(nn.Module):
    """A recurrent layer and a linear head at every step: ``[B, T, 1] -> [B, T, 1]``, each
    call from the layer's initial state (zeros or learned)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


def build(cell: str, arm: str, seed: int) -> Predictor:
    """The model of one run; both arms of a seed get the same initial weights."""
    torch.manual_seed(seed)
    return Predictor(make_rnn(cell, arm == "learned"))


@torch.no_grad()
def mse_per_step(model: Predictor, episodes: Episodes) -> list[float]:
    """The MSE at each step, averaged over episodes (inputs and targets ``[N, T, 1]``):
    T values."""
    x, y = episodes
    model.eval()
    err = ((model(x) - y) ** 2).mean(dim=(0, 2))
    model.train()
    return [float(v) for v in err]


def metrics(per_step: list[float]) -> dict[str, float]:
    """MSE over the first k steps (k in FIRST_K) and over all steps."""
    out = {f"first_{k}": statistics.fmean(per_step[:k]) for k in FIRST_K}
    out["all"] = statistics.fmean(per_step)
    return out


def train_step(model: Predictor, opt: torch.optim.Optimizer, stream: torch.Generator) -> float:
    """One optimizer step on a fresh batch of episodes, from the initial state; its loss."""
    x, y = sine_episodes(BATCH, LENGTH, stream, noise=NOISE)
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    return float(loss.detach())


def train_one(cell: str, arm: str, seed: int, budgets: list[int],
              sets: dict[str, Episodes]) -> dict[str, Any]:
    """Train one model for ``budgets[-1]`` steps; its validation curve, its validation and
    test metrics (and per-step test MSE) at each budget, and its speed."""
    model = build(cell, arm, seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    stream = torch.Generator().manual_seed(seed)
    run: dict[str, Any] = {"cell": cell, "arm": arm, "seed": seed, "steps": budgets[-1],
                           "validation_curve": [], "at": {}}
    seconds = 0.0
    for step in range(1, budgets[-1] + 1):
        start = time.perf_counter()
        run["train_mse_last"] = train_step(model, opt, stream)
        seconds += time.perf_counter() - start
        if step % EVAL_EVERY == 0 or step in budgets:
            run["validation_curve"].append(
                {"step": step, **metrics(mse_per_step(model, sets["validation"]))})
        if step in budgets:
            test = mse_per_step(model, sets["test"])
            run["at"][str(step)] = {"validation": run["validation_curve"][-1],
                                    "test": metrics(test), "test_mse_per_step": test}
    run["steps_per_second"] = budgets[-1] / seconds
    return run


def first_step_floor(test: Episodes, n: int = 1_000_000, bins: int = 400) -> float:
    """An estimate of the best first-step test MSE any model can reach: the mean of the
    target given the first input, binned on ``n`` fresh episodes (its own seed), scored on
    the test set's first step. Binning adds a little error, so the true floor is at most
    about this."""
    x, y = sine_episodes(n, 2, FLOOR_SEED, noise=NOISE)
    x0, y0 = x[:, 0, 0].double(), y[:, 0, 0].double()
    edges = torch.quantile(x0[:: max(1, n // 100_000)], torch.linspace(0, 1, bins + 1,
                                                                       dtype=torch.float64))
    which = torch.bucketize(x0, edges[1:-1])
    sums = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, y0)
    counts = torch.bincount(which, minlength=bins).double()
    means = sums / counts.clamp(min=1)
    tx, ty = test[0][:, 0, 0].double(), test[1][:, 0, 0].double()
    guess = means[torch.bucketize(tx, edges[1:-1])]
    return float(((guess - ty) ** 2).mean())


def summarize(runs: list[dict[str, Any]], cells: list[str], budgets: list[int]
              ) -> list[dict[str, Any]]:
    """One row per (budget, cell, metric): test MSE of each arm, the paired effect (learned
    minus zeros) and its verdict."""
    rows = []
    for budget in budgets:
        for cell in cells:
            mine = {arm: [r for r in runs if r["cell"] == cell and r["arm"] == arm]
                    for arm in ARMS}
            for metric in METRICS:
                score = {arm: {r["seed"]: r["at"][str(budget)]["test"][metric]
                               for r in mine[arm]} for arm in ARMS}
                rows.append(_row(budget, cell, metric, score, mine))
    return rows


def _row(budget: int, cell: str, metric: str, score: dict[str, dict[int, float]],
         runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    mean, low, high, n = paired_effect(score["learned"], score["zeros"])
    zeros_mean = statistics.fmean(score["zeros"].values())
    return {
        "steps": budget, "cell": cell, "metric": metric, "seeds": n,
        **{f"{arm}_mean": statistics.fmean(score[arm].values()) for arm in ARMS},
        **{f"{arm}_per_seed": [score[arm][k] for k in sorted(score[arm])] for arm in ARMS},
        "difference": mean, "ci_low": low, "ci_high": high,
        "relative": None if mean is None else mean / zeros_mean,
        "verdict": verdict(low, high),
        **{f"{arm}_steps_per_second": statistics.fmean(r["steps_per_second"] for r in runs[arm])
           for arm in ARMS},
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| steps | cell | test MSE over | zeros | learned | learned minus zeros [95% CI] "
             "| relative | steps/s (zeros, learned) | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        over = "all 32 steps" if r["metric"] == "all" else \
            f"first {r['metric'].split('_')[1]}"
        diff = (f"{number(r['difference'], sign=True)} [{number(r['ci_low'], sign=True)}, "
                f"{number(r['ci_high'], sign=True)}]")
        rel = "-" if r["relative"] is None else f"{100 * r['relative']:+.1f}%"
        lines.append(f"| {r['steps']} | {r['cell']} | {over} | {number(r['zeros_mean'])} | "
                     f"{number(r['learned_mean'])} | {diff} | {rel} | "
                     f"{r['zeros_steps_per_second']:.0f}, {r['learned_steps_per_second']:.0f} "
                     f"| {r['verdict']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated: lstm, gru")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)),
                   help="steps at which the test set is scored, increasing; the last is "
                        "the run's length")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for every arm")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=OUT, help="the JSON to write (or read)")
    p.add_argument("--summarize", action="store_true",
                   help="print the table of the runs in --out; train nothing")
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 seeds, 10 and 20 "
                   "steps, written to /tmp/short-sequences-quick.json")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """The cells and budgets to run, from the arguments (SystemExit on bad ones)."""
    if args.quick:
        args.seeds, args.budgets = 2, "10,20"
        args.out = Path("/tmp/short-sequences-quick.json")
    cells = [c.strip() for c in args.cells.split(",")]
    if not cells or any(c not in CELLS for c in cells):
        raise SystemExit(f"--cells: expected any of {', '.join(CELLS)}, got {args.cells!r}")
    try:
        budgets = [int(v) for v in args.budgets.split(",")]
    except ValueError:
        budgets = []
    if not budgets or budgets[0] < 1 or budgets != sorted(set(budgets)):
        raise SystemExit(f"--budgets: expected increasing step counts >= 1, "
                         f"got {args.budgets!r}")
    if args.seeds < 1:
        raise SystemExit(f"--seeds: must be >= 1, got {args.seeds}")
    return cells, budgets


def held_out() -> dict[str, Episodes]:
    """The validation and test episodes (their generators are not the training streams')."""
    return {"validation": sine_episodes(EVAL_SIZE, LENGTH, VALIDATION_SEED, noise=NOISE),
            "test": sine_episodes(EVAL_SIZE, LENGTH, TEST_SEED, noise=NOISE)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cells, budgets = plan(args)
    if args.summarize:
        if not args.out.exists():
            raise SystemExit(f"--summarize: no results at {args.out}; run the study first")
        result = json.loads(args.out.read_text())
        print(table(result["rows"]))
        print(f"first-step floor (estimate): {result['first_step_floor_mse']:.4f}")
        return
    torch.set_num_threads(args.threads)
    sets = held_out()
    runs = []
    begin = time.perf_counter()
    for cell in cells:
        for seed in range(args.seeds):
            for arm in ARMS:
                run = train_one(cell, arm, seed, budgets, sets)
                runs.append(run)
                test = run["at"][str(budgets[-1])]["test"]
                print(f"{cell} seed={seed} {arm:8s} test MSE first 1 {test['first_1']:.4f}, "
                      f"all {test['all']:.4f} ({run['steps_per_second']:.0f} steps/s)",
                      flush=True)
    rows = summarize(runs, cells, budgets)
    floor = first_step_floor(sets["test"])
    print(table(rows))
    print(f"first-step floor (estimate): {floor:.4f}")
    result = {
        "task": f"sine episodes (rnnkit.data.episodes.sine_episodes), length {LENGTH}, "
                f"noise {NOISE}, one-step-ahead MSE",
        "noise_floor_mse": NOISE ** 2, "first_step_floor_mse": floor,
        "model": f"one layer, hidden {HIDDEN}, linear head at every step; LSTM forget bias 1",
        "training": {"optimizer": "Adam", "lr": LR, "batch": BATCH, "clip_norm": CLIP,
                     "budgets": budgets, "seeds": args.seeds},
        "held_out": {"validation": f"{EVAL_SIZE} episodes from seed {VALIDATION_SEED}",
                     "test": f"{EVAL_SIZE} episodes from seed {TEST_SEED}"},
        "machine": f"{platform.machine()}, torch {torch.__version__}, "
                   f"{args.threads} thread(s)",
        "wall_seconds": time.perf_counter() - begin,
        "command": "nice python benchmarks/short_sequences.py",
        "rows": rows, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
