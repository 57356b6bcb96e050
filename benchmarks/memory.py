"""Long-range memory: do forget bias, chrono init, the cell and the TBPTT chunk matter?

The adding problem (rnnkit.data.synthetic.adding_problem; Hochreiter & Schmidhuber 1997):
two marked values in a sequence of ``length`` steps, the first in the first half, so a model
must hold a value for at least ``length // 2`` steps; the target is their sum. A model with
no memory scores MSE 1/6 = 0.167 (predicting the mean, 1.0); one that keeps only the second
value scores 1/12 = 0.083.

Each run trains one small model (rnnkit.LSTM / GRU, hidden 64, one layer, a linear head on
the last step's output) for a fixed number of optimizer steps (Adam, batch 32, gradient
norm clipped to 1), a fresh batch every step from a generator seeded by the run's seed, and
then scores its MSE on a held-out test batch of 1000 sequences drawn from its own seed
(never a training batch); a run with test MSE under 0.01 counts as solved. The settings,
each against the default (LSTM, forget bias 1, as ``rnnkit train``'s small preset sets it),
paired by seed:

- ``forget_bias_0``: LSTM forget-gate bias 0 (S6's claim: 1 helps memory)
- ``chrono``: chrono init with T_max = length (Tallec & Ollivier 2018), LSTM
- ``gru``: a GRU of the same width (torch's init)
- ``chunk_half``: the default trained with truncated BPTT of ``length // 2`` steps: the
  first half runs without gradient and its state is detached, so no gradient reaches the
  first marker (the claim: a chunk shorter than the dependency cannot learn it)
- ``gru_chunk_half``: the GRU with that chunk, against the GRU (the same claim on a model
  that learns the task with full BPTT)
- ``curriculum`` / ``gru_curriculum``: a TBPTT curriculum (the chunk grows during training,
  as ``TrainConfig.chunk_schedule`` does): gradient through the last ``length // 4`` steps
  for the first third of the steps, ``length // 2`` for the second, the full length for the
  last; against the default / the GRU (the claim: short chunks first buy speed and lose
  nothing once the chunk covers the dependency)
- ``gru_layer_norm`` / ``gru_no_clip``: the GRU with layer norm, or without gradient
  clipping, against the GRU

The effect is the per-seed difference of test MSE (setting - default) with a 95% t-interval
over seeds (``rnnkit.cli.ablate_report.paired_effect``, ``verdict``); ``gru_chunk_half``
and ``gru_curriculum`` are paired with ``gru`` instead. Steps per second are
reported beside: the budget is in steps, so a busy machine changes speed, never the numbers.

    nice python benchmarks/memory.py                       # the study (about 35 min on 1 thread)
    python benchmarks/memory.py --quick                    # a smoke test (seconds)
    python benchmarks/memory.py --lengths 100 --seeds 3 --settings default,chrono

Prints a table and writes benchmarks/results/memory.json.
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
from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "memory.json"
HIDDEN = 64
BATCH = 32
LR = 3e-3
CLIP = 1.0
TEST_SIZE = 1000
# A run "solves" the task when its test MSE is under this: far below 1/12, the MSE of a model
# that keeps only the second value, so both values were held.
SOLVED_MSE = 0.01

# setting -> (what it changes, against the default)
SETTINGS = {
    "default": "LSTM, forget bias 1, full BPTT",
    "forget_bias_0": "forget bias 1 -> 0",
    "chrono": "forget bias 1 -> chrono init (T_max = length)",
    "gru": "cell lstm -> gru",
    "chunk_half": "full BPTT -> TBPTT chunk of length // 2",
    "gru_chunk_half": "against gru: full BPTT -> TBPTT chunk of length // 2",
    "curriculum": "full BPTT -> chunks of length // 4, // 2, then full (a third of the steps each)",
    "gru_curriculum": "against gru: full BPTT -> the same curriculum",
    "gru_layer_norm": "against gru: layer norm on the gates (S2)",
    "gru_no_clip": "against gru: gradient clipping at norm 1 -> none",
}
# the setting each is paired with, where it is not the default
REFERENCE = {"gru_chunk_half": "gru", "gru_curriculum": "gru", "gru_layer_norm": "gru",
             "gru_no_clip": "gru"}


def make_rnn(setting: str, length: int) -> nn.Module:
    """The recurrent layer of ``setting`` (input 2 channels, hidden 64, batch first)."""
    if setting.startswith("gru"):
        return rnnkit.GRU(2, HIDDEN, batch_first=True, layer_norm=setting == "gru_layer_norm")
    if setting == "chrono":
        return rnnkit.LSTM(2, HIDDEN, batch_first=True, chrono_init=float(length))
    return rnnkit.LSTM(2, HIDDEN, batch_first=True,
                       forget_bias=0.0 if setting == "forget_bias_0" else 1.0)


class Regressor(nn.Module):
    """A recurrent layer and a linear head on the last step's output: ``[B, T, 2] -> [B, 1]``."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor, grad_steps: int | None = None) -> torch.Tensor:
        """With ``grad_steps``, only the last ``grad_steps`` steps carry gradient (TBPTT: the
        rest runs without it and its state is detached)."""
        state = None
        if grad_steps is not None and grad_steps < x.shape[1]:
            with torch.no_grad():
                _, state = self.rnn(x[:, :-grad_steps])
            x = x[:, -grad_steps:]
        out, _ = self.rnn(x, state)
        return self.head(out[:, -1])


def grad_steps(setting: str, length: int, step: int, steps: int) -> int | None:
    """How many last steps of a sequence carry gradient at optimizer step ``step`` of
    ``steps`` (None: all of them, full BPTT)."""
    if setting.endswith("chunk_half"):
        return length // 2
    if setting.endswith("curriculum"):
        third = 3 * step // steps
        return (length // 4, length // 2, None)[third]
    return None


def train_one(setting: str, length: int, seed: int, steps: int) -> dict[str, Any]:
    """Train one model of ``setting`` for ``steps`` steps; its test MSE and speed."""
    torch.manual_seed(seed)
    model = Regressor(make_rnn(setting, length))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    stream = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(steps):
        x, y = adding_problem(BATCH, length, stream)
        loss = ((model(x, grad_steps(setting, length, step, steps)) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if setting != "gru_no_clip":
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    seconds = time.perf_counter() - start
    return {"setting": setting, "length": length, "seed": seed, "steps": steps,
            "test_mse": test_mse(model, length, seed), "train_mse_last": float(loss.detach()),
            "steps_per_second": steps / seconds}


@torch.no_grad()
def test_mse(model: Regressor, length: int, seed: int) -> float:
    """MSE on 1000 held-out sequences (their generator is not the training stream's)."""
    x, y = adding_problem(TEST_SIZE, length, seed=10_000 + seed)
    model.eval()
    return float(((model(x) - y) ** 2).mean())


def summarize(runs: list[dict[str, Any]], settings: list[str], lengths: list[int]
              ) -> list[dict[str, Any]]:
    """One row per (length, setting): MSE over seeds, the paired effect and its verdict."""
    rows = []
    for length in lengths:
        for setting in settings:
            reference = REFERENCE.get(setting, "default")
            default = {r["seed"]: r["test_mse"] for r in runs
                       if r["length"] == length and r["setting"] == reference}
            mine = [r for r in runs if r["length"] == length and r["setting"] == setting]
            mse = {r["seed"]: r["test_mse"] for r in mine}
            values = list(mse.values())
            mean, low, high, n = paired_effect(mse, default)
            rows.append({
                "length": length, "setting": setting, "reference": reference,
                "change": SETTINGS[setting],
                "seeds": len(values), "test_mse_mean": statistics.fmean(values),
                "test_mse_sd": statistics.stdev(values) if len(values) > 1 else None,
                "test_mse_per_seed": [mse[k] for k in sorted(mse)],
                "solved": sum(v < SOLVED_MSE for v in values),
                "difference": None if setting == "default" else mean,
                "ci_low": None if setting == "default" else low,
                "ci_high": None if setting == "default" else high,
                "verdict": "" if setting == "default" else verdict(low, high),
                "steps_per_second": statistics.fmean(r["steps_per_second"] for r in mine),
            })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| length | setting | change | test MSE, mean ± sd | solved / seeds "
             "| difference [95% CI] | steps/s | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = ("(reference)" if r["setting"] == "default" else
                f"{number(r['difference'], sign=True)} [{number(r['ci_low'], sign=True)}, "
                f"{number(r['ci_high'], sign=True)}]")
        lines.append(f"| {r['length']} | {r['setting']} | {r['change']} | "
                     f"{number(r['test_mse_mean'])} ± {number(r['test_mse_sd'])} | "
                     f"{r['solved']} / {r['seeds']} | "
                     f"{diff} | {r['steps_per_second']:.1f} | {r['verdict']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", default="100,300", help="sequence lengths, comma-separated")
    p.add_argument("--steps", default="1500,1000",
                   help="optimizer steps per run, one per length (or one for all)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for every setting")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help=f"comma-separated, 'default' first; of {', '.join(SETTINGS)}")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=OUT, help="the JSON to write")
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 seeds, 20 steps, "
                   "length 20, written to /tmp/memory-quick.json")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[int], list[int], list[str]]:
    """Lengths, steps per length and settings from the arguments (SystemExit on bad ones)."""
    if args.quick:
        args.seeds, args.out = 2, Path("/tmp/memory-quick.json")
        return [20], [20], list(SETTINGS)
    lengths = [int(v) for v in args.lengths.split(",")]
    steps = [int(v) for v in args.steps.split(",")]
    if len(steps) == 1:
        steps = steps * len(lengths)
    settings = [s.strip() for s in args.settings.split(",")]
    if len(steps) != len(lengths):
        raise SystemExit(f"--steps: give one value or one per length ({len(lengths)}), "
                         f"got {args.steps!r}")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or settings[0] != "default":
        raise SystemExit(f"--settings: expected 'default' first, then any of "
                         f"{', '.join(SETTINGS)}; got {args.settings!r}")
    orphans = [s for s in settings if REFERENCE.get(s, "default") not in settings]
    if orphans:
        raise SystemExit(f"--settings: {orphans[0]} is paired with "
                         f"{REFERENCE[orphans[0]]}; add it to --settings")
    return lengths, steps, settings


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    lengths, steps, settings = plan(args)
    torch.set_num_threads(args.threads)
    runs = []
    begin = time.perf_counter()
    for length, n_steps in zip(lengths, steps, strict=True):
        for seed in range(args.seeds):
            for setting in settings:
                run = train_one(setting, length, seed, n_steps)
                runs.append(run)
                print(f"T={length} seed={seed} {setting:14s} test MSE {run['test_mse']:.4f} "
                      f"({run['steps_per_second']:.1f} steps/s)", flush=True)
    rows = summarize(runs, settings, lengths)
    print(table(rows))
    result = {
        "task": "adding problem (rnnkit.data.synthetic.adding_problem)",
        "no_memory_mse": ADDING_BASELINE_MSE, "second_value_only_mse": 1 / 12,
        "solved_below_mse": SOLVED_MSE,
        "model": f"one layer, hidden {HIDDEN}, linear head on the last step",
        "training": {"optimizer": "Adam", "lr": LR, "batch": BATCH, "clip_norm": CLIP,
                     "steps": dict(zip(map(str, lengths), steps, strict=True))},
        "test": f"{TEST_SIZE} sequences from seed 10000 + run seed",
        "machine": f"{platform.machine()}, torch {torch.__version__}, "
                   f"{args.threads} thread(s)",
        "wall_seconds": time.perf_counter() - begin,
        "command": "nice python benchmarks/memory.py",
        "rows": rows, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
