"""Multi-step objectives (O6) judged by free-running rollouts: are long rollouts more accurate?

The claim: training with a multi-step objective -- open loop (Chiappa et al. 2017), scheduled
sampling (Bengio et al. 2015), professor forcing (Lamb, Goyal et al. 2016) -- instead of
teacher forcing makes free-running rollouts more accurate many steps out. The one-step loss
cannot show it (teacher forcing optimizes that loss by definition), so the metric here is the
RMSE of free-running rollouts: the model reads a context of true values up to an origin, then
feeds back its own mean predictions; scored at horizons 1, 10, 50 and 100 steps after the
origin, over many origins (every 10th step) of a held-out part, in data units and relative to
persistence (the last observed value).

Each run trains one small forecaster (``SequenceModel.forecaster``: rnnkit LSTM 1 x 64,
Gaussian head, normalizer fitted on the training part) from scratch with the rnnkit Trainer
for a fixed number of optimizer steps (Adam 3e-3 with a cosine decay to 0.1x, batch 32
streams, TBPTT chunk 48, the Trainer's AutoClip), one objective per arm, set as
``benchmarks/multistep.py`` sets them: teacher forcing (the reference); open loop, horizon
ramped 2 -> 24, weight 0.5, a rollout from every 4th step; scheduled sampling, eps ramped 0 ->
0.5, gradients through the fed-back values; professor forcing, weight 0.5. The ramps span the
first half of the budget. The arms of a seed are paired: the same initial weights (seeded
before the model is built) and the same batches (the streams are cut the same way and read in
order).

Data (time order; the last 20% is the test part, the 10% before it the validation part, the
rest trains): Lorenz-63 (rnnkit.data.lorenz: 20,000 rows, dt 0.01, every 2nd step kept, so a
row is 0.02 time units and 100 steps are about 2 Lyapunov times; context 100 steps) and
../shared/data/seattle-temps.csv (hourly temperature, F, 8,759 rows; context 168 hours).

The effect is the per-seed difference of test RMSE (objective minus teacher forcing) at each
horizon with a 95% t-interval over seeds (``rnnkit.cli.ablate_report.paired_effect``,
``verdict``); negative means the objective's rollouts are more accurate. Beside it, the ratio
of the RMSEs (the geometric mean over seeds, with the interval of the mean log ratio). The
validation part is scored every ``steps // 8`` steps (``validation_curve`` in the JSON); the
budget was sized on it and on speed, never on the test part. Steps per second are reported
too: the budget is in steps, so a busy machine changes speed, never the numbers.

    nice python benchmarks/rollouts.py               # the study (about 20 min, 1 thread)
    python benchmarks/rollouts.py --quick            # a smoke test (seconds)
    python benchmarks/rollouts.py --summarize        # the table of the written JSON

Prints a table and writes benchmarks/results/rollouts.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from multistep import SEATTLE, objectives

from rnnkit.cli.ablate_report import number, paired_effect, verdict
from rnnkit.data.lorenz import lorenz63
from rnnkit.data.series import load_csv
from rnnkit.models import SequenceModel
from rnnkit.objectives import make_objective
from rnnkit.rollout import rollout_errors
from rnnkit.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "rollouts.json"
HORIZONS = (1, 10, 50, 100)
HIDDEN = 64
BATCH = 32
CHUNK = 48
LR = 3e-3
LR_SCHEDULE = "cosine"  # chosen on validation against "constant" (docs/evidence/rollouts.md)
STEPS = 800  # sized on speed and the validation curves of seed 0 (docs/evidence/rollouts.md)
VALIDATION_START = 0.7  # fraction of the rows before the validation part
TEST_START = 0.8  # ... before the test part (the last 20%)
ORIGIN_STRIDE = 10
ARMS = ("teacher", "open_loop", "scheduled_sampling", "professor")
REFERENCE = "teacher"
DATASETS = ("lorenz63", "seattle-temps")


@dataclass
class Data:
    """One series and how it is cut: ``values [N, F]`` float32 in data units."""

    name: str
    values: np.ndarray
    context: int
    units: str

    @property
    def cuts(self) -> tuple[int, int]:
        """The first row of the validation part and of the test part."""
        n = len(self.values)
        return round(n * VALIDATION_START), round(n * TEST_START)

    @property
    def train(self) -> np.ndarray:
        return self.values[:self.cuts[0]]

    def origins(self, part: str, stride: int) -> list[int]:
        """Rollout origins (index of the last observed row) whose scored rows, up to the
        longest horizon, all lie in ``part`` ("validation" or "test")."""
        validation, test = self.cuts
        start, end = {"validation": (validation, test), "test": (test, len(self.values))}[part]
        first = max(start - 1, self.context - 1)
        found = list(range(first, end - max(HORIZONS), stride))
        if not found:
            raise ValueError(f"{self.name}: the {part} part (rows {start}..{end - 1}) is too "
                             f"short for a rollout of {max(HORIZONS)} steps")
        return found


def load_data(name: str) -> Data:
    """One of DATASETS (ValueError naming any other)."""
    if name == "lorenz63":
        return Data(name, lorenz63(20_000, dt=0.01, every=2, seed=0), 100, "x, y, z")
    if name == "seattle-temps":
        return Data(name, load_csv(SEATTLE, ["temp"]).values, 168, "F")
    raise ValueError(f"unknown data set {name!r}; use one of {', '.join(DATASETS)}")


def score(model: SequenceModel, data: Data, origins: list[int]) -> dict[str, dict[str, float]]:
    """Per horizon: RMSE of the free-running rollouts from ``origins`` (pooled over origins
    and features, data units), persistence's RMSE and their ratio."""
    series = torch.from_numpy(data.values)
    errors = rollout_errors(model, series, origins, data.context, max(HORIZONS))  # [O, H, F]
    index = torch.tensor(origins)
    out = {}
    for h in HORIZONS:
        rmse = float(errors[:, h - 1].pow(2).mean().sqrt())
        base = float((series[index] - series[index + h]).pow(2).mean().sqrt())
        out[str(h)] = {"rmse": rmse, "persistence": base, "relative": rmse / base}
    return out


def training_mean_rmse(data: Data, origins: list[int]) -> float:
    """RMSE of always predicting the training part's mean, over the rows the rollouts from
    ``origins`` score (a model that knows nothing of the state does this well)."""
    rows = sorted({o + h for o in origins for h in range(1, max(HORIZONS) + 1)})
    return float(np.sqrt(((data.values[rows] - data.train.mean(0)) ** 2).mean()))


def build(data: Data, seed: int) -> SequenceModel:
    """The model of a run; every arm of a seed gets the same initial weights."""
    torch.manual_seed(seed)
    return SequenceModel.forecaster(data.values.shape[1], hidden_size=HIDDEN,
                                    train_data=data.train)


def objective_specs(steps: int) -> dict[str, dict[str, Any]]:
    """make_objective arguments of each arm: multistep.py's, ramps over half the budget."""
    specs = objectives(ramp_steps=max(1, steps // 2))
    return {arm: specs[arm] for arm in ARMS}


def train_one(data: Data, arm: str, seed: int, steps: int, stride: int = ORIGIN_STRIDE,
              lr_schedule: str = LR_SCHEDULE) -> dict[str, Any]:
    """Train one model for ``steps`` steps; its validation curve, its validation and test
    scores at the end, and its speed (training only, scoring excluded)."""
    model = build(data, seed)
    spec = dict(objective_specs(steps)[arm])
    objective = make_objective(spec.pop("kind"), **spec)
    validation = data.origins("validation", stride)
    curve: list[dict[str, Any]] = []
    scoring = [0.0]

    def on_validation(m: SequenceModel) -> float:
        start = time.perf_counter()
        scores = score(m, data, validation)
        curve.append({"step": trainer.step, **{h: s["rmse"] for h, s in scores.items()}})
        scoring[0] += time.perf_counter() - start
        return scores[str(max(HORIZONS))]["rmse"]

    config = TrainConfig(batch_size=BATCH, chunk_length=CHUNK, lr=LR, lr_schedule=lr_schedule,
                         max_steps=steps,
                         eval_every=max(1, steps // 8), patience=None, progress=False,
                         plot=False, checkpoint_every=0, seed=seed, device="cpu")
    trainer = Trainer(model, config, torch.from_numpy(data.train), objective=objective,
                      eval_fn=on_validation)
    summary = trainer.fit()
    seconds = summary["elapsed"] - scoring[0]
    return {"dataset": data.name, "arm": arm, "seed": seed, "steps": summary["steps"],
            "train_seconds": seconds, "steps_per_second": summary["steps"] / seconds,
            "validation_curve": curve,
            "validation": score(model, data, validation),
            "test": score(model, data, data.origins("test", stride))}


def summarize(runs: list[dict[str, Any]], datasets: list[str], arms: list[str]
              ) -> list[dict[str, Any]]:
    """One row per (data set, objective other than teacher forcing, horizon): the test RMSE
    of both arms, the paired effect (objective minus teacher forcing) and its verdict."""
    rows = []
    for name in datasets:
        mine = [r for r in runs if r["dataset"] == name]
        ref = [r for r in mine if r["arm"] == REFERENCE]
        for arm in arms:
            if arm == REFERENCE:
                continue
            other = [r for r in mine if r["arm"] == arm]
            for h in HORIZONS:
                rows.append(_row(name, arm, str(h), ref, other))
    return rows


def _rmse(runs: list[dict[str, Any]], h: str) -> dict[int, float]:
    return {r["seed"]: r["test"][h]["rmse"] for r in runs}


def _row(name: str, arm: str, h: str, ref: list[dict[str, Any]], other: list[dict[str, Any]]
         ) -> dict[str, Any]:
    teacher, mine = _rmse(ref, h), _rmse(other, h)
    mean, low, high, n = paired_effect(mine, teacher)
    log_mean, log_low, log_high, _ = paired_effect(
        {k: math.log(v) for k, v in mine.items()}, {k: math.log(v) for k, v in teacher.items()})
    persistence = ref[0]["test"][h]["persistence"]

    def ratio(v: float | None) -> float | None:
        return None if v is None else math.exp(v)

    return {
        "dataset": name, "arm": arm, "horizon": int(h), "seeds": n,
        "persistence": persistence,
        "teacher_mean": statistics.fmean(teacher.values()),
        "arm_mean": statistics.fmean(mine.values()),
        "teacher_per_seed": [teacher[k] for k in sorted(teacher)],
        "arm_per_seed": [mine[k] for k in sorted(mine)],
        "difference": mean, "ci_low": low, "ci_high": high,
        "ratio": ratio(log_mean), "ratio_low": ratio(log_low), "ratio_high": ratio(log_high),
        "verdict": verdict(low, high),
        "teacher_steps_per_second": statistics.fmean(r["steps_per_second"] for r in ref),
        "arm_steps_per_second": statistics.fmean(r["steps_per_second"] for r in other),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| data | objective | h | persistence | teacher | objective RMSE | objective "
             "minus teacher [95% CI] | ratio [95% CI] | steps/s (teacher, objective) "
             "| verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = (f"{number(r['difference'], 3, sign=True)} [{number(r['ci_low'], 3, sign=True)}, "
                f"{number(r['ci_high'], 3, sign=True)}]")
        ratio = (f"{number(r['ratio'], 3)} [{number(r['ratio_low'], 3)}, "
                 f"{number(r['ratio_high'], 3)}]")
        lines.append(f"| {r['dataset']} | {r['arm']} | {r['horizon']} | "
                     f"{number(r['persistence'], 3)} | {number(r['teacher_mean'], 3)} | "
                     f"{number(r['arm_mean'], 3)} | {diff} | {ratio} | "
                     f"{r['teacher_steps_per_second']:.0f}, {r['arm_steps_per_second']:.0f} "
                     f"| {r['verdict']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated: {', '.join(DATASETS)}")
    p.add_argument("--arms", default=",".join(ARMS),
                   help=f"comma-separated, teacher first: {', '.join(ARMS)}")
    p.add_argument("--steps", type=int, default=STEPS, help="optimizer steps of every run")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=LR_SCHEDULE,
                   help="the learning rate over the budget (cosine: down to 0.1 x at the end)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for every arm")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=OUT, help="the JSON to write (or read)")
    p.add_argument("--summarize", action="store_true",
                   help="print the table of the runs in --out; train nothing")
    p.add_argument("--quick", action="store_true", help="a smoke test: 2 seeds, 8 steps, "
                   "every 50th origin, written to /tmp/rollouts-quick.json")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], list[str], int]:
    """The data sets, arms and origin stride to run, from the arguments (SystemExit on bad
    ones)."""
    stride = ORIGIN_STRIDE
    if args.quick:
        args.seeds, args.steps, stride = 2, 8, 50
        if args.out == OUT:
            args.out = Path("/tmp/rollouts-quick.json")
    datasets = [d.strip() for d in args.datasets.split(",")]
    if not datasets or any(d not in DATASETS for d in datasets):
        raise SystemExit(f"--datasets: expected any of {', '.join(DATASETS)}, "
                         f"got {args.datasets!r}")
    arms = [a.strip() for a in args.arms.split(",")]
    if any(a not in ARMS for a in arms) or arms[0] != REFERENCE or len(set(arms)) < len(arms):
        raise SystemExit(f"--arms: expected {REFERENCE} first, then any of "
                         f"{', '.join(ARMS[1:])}, got {args.arms!r}")
    if args.steps < 2:
        raise SystemExit(f"--steps: must be >= 2, got {args.steps}")
    if args.seeds < 1:
        raise SystemExit(f"--seeds: must be >= 1, got {args.seeds}")
    return datasets, arms, stride


def describe(data: Data, stride: int) -> dict[str, Any]:
    """How a data set was cut and scored, for the JSON."""
    validation, test = data.cuts
    origins = data.origins("test", stride)
    return {"rows": len(data.values), "features": data.values.shape[1], "units": data.units,
            "context": data.context, "train_rows": validation,
            "validation_rows": test - validation, "test_rows": len(data.values) - test,
            "validation_origins": len(data.origins("validation", stride)),
            "test_origins": len(origins),
            "test_training_mean_rmse": training_mean_rmse(data, origins)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    datasets, arms, stride = plan(args)
    if args.summarize:
        if not args.out.exists():
            raise SystemExit(f"--summarize: no results at {args.out}; run the study first")
        print(table(json.loads(args.out.read_text())["rows"]))
        return
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    runs, described = [], {}
    for name in datasets:
        data = load_data(name)
        described[name] = describe(data, stride)
        for seed in range(args.seeds):
            for arm in arms:
                run = train_one(data, arm, seed, args.steps, stride, args.lr_schedule)
                runs.append(run)
                print(f"{name} seed={seed} {arm:18s} test RMSE "
                      + ", ".join(f"h{h} {run['test'][str(h)]['rmse']:.3f}" for h in HORIZONS)
                      + f" ({run['steps_per_second']:.0f} steps/s)", flush=True)
    rows = summarize(runs, datasets, arms)
    print(table(rows))
    result = {
        "task": "free-running rollout RMSE at horizons 1, 10, 50, 100 from every "
                f"{stride}th origin of the held-out part, after training with each objective",
        "horizons": list(HORIZONS), "datasets": described,
        "model": f"SequenceModel.forecaster: rnnkit LSTM 1 x {HIDDEN}, Gaussian head, "
                 "normalizer fitted on the training part",
        "training": {"optimizer": "Adam", "lr": LR, "lr_schedule": args.lr_schedule,
                     "min_lr_ratio": TrainConfig.min_lr_ratio, "batch": BATCH, "chunk": CHUNK,
                     "clip": "the Trainer's default (auto)", "steps": args.steps,
                     "seeds": args.seeds, "objectives": objective_specs(args.steps)},
        "splits": {"validation_start": VALIDATION_START, "test_start": TEST_START},
        "machine": f"{platform.machine()}, torch {torch.__version__}, "
                   f"{args.threads} thread(s)",
        "wall_seconds": time.perf_counter() - begin,
        "command": " ".join(["nice python benchmarks/rollouts.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "rows": rows, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
