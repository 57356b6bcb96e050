"""Multi-step losses (O6) on real and chaotic series: does training on rollouts help forecasts?

Trains one small forecaster (rnnkit.LSTM + Gaussian head, normalizer fitted on the training
split) per objective -- teacher forcing, open-loop multi-step (Chiappa 2017), scheduled
sampling (Bengio 2015), professor forcing (Lamb 2016) -- under the same wall-clock budget
with the rnnkit Trainer, 3 seeds each: the first half of the budget is teacher forcing
(one pretrained model per seed, shared), the second half fine-tunes a copy with each
method (teacher forcing simply continues; every fine-tune starts a fresh Adam). On

- ../shared/data/seattle-temps.csv (hourly temperature, F; the last 20% held out in time order)
- Lorenz-63 (rnnkit.data.lorenz; dt=0.01, every 2nd step kept; the last 20% held out)

and reports the held-out open-loop forecast RMSE at horizons 1, 6, 24, 72 steps in data
units and relative to persistence (the last observed value). Each forecast reads a context of
true values up to its origin, then feeds back its own mean predictions.

    python benchmarks/multistep.py                       # 3 seeds, 10 s per run
    python benchmarks/multistep.py --quick               # 1 seed, 4 s per run, a smoke test
    python benchmarks/multistep.py --budget-seconds 20   # longer runs

Prints a table and writes benchmarks/results/multistep.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.lorenz import lorenz63
from rnnkit.data.series import load_csv
from rnnkit.models import SequenceModel
from rnnkit.objectives import make_objective
from rnnkit.rollout import forecast
from rnnkit.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
SEATTLE = ROOT.parent / "shared" / "data" / "seattle-temps.csv"
HORIZONS = (1, 6, 24, 72)
HOLDOUT = 0.2


def datasets() -> dict[str, dict]:
    """name -> values [N, F] float32, forecast context length, units."""
    return {
        "seattle-temps": {"values": load_csv(SEATTLE, ["temp"]).values, "context": 168,
                          "units": "F"},
        "lorenz63": {"values": lorenz63(8000, dt=0.01, every=2, seed=0), "context": 100,
                     "units": "x,y,z"},
    }


def objectives(ramp_steps: int) -> dict[str, dict]:
    """The four methods, as make_objective arguments (schedules in optimizer steps)."""
    return {
        "teacher": {"kind": "teacher"},
        "open_loop": {"kind": "open_loop", "horizon": f"linear:start=2,end=24,steps={ramp_steps}",
                      "weight": 0.5, "stride": 4},
        "scheduled_sampling": {"kind": "scheduled_sampling", "detach_feedback": False,
                               "eps": f"linear:start=0,end=0.5,steps={ramp_steps}"},
        "professor": {"kind": "professor", "weight": 0.5},
    }


def split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cut = int(round(len(values) * (1 - HOLDOUT)))
    return values[:cut], values[cut:]


def fit(model: SequenceModel, train: np.ndarray, method: dict, seed: int, seconds: float,
        chunk: int) -> dict:
    """Train ``model`` in place with the rnnkit Trainer for ``seconds`` of wall clock."""
    args = dict(method)
    objective = make_objective(args.pop("kind"), **args)
    config = TrainConfig(batch_size=32, chunk_length=chunk, lr=3e-3, max_steps=10**9,
                         max_time=seconds, eval_every=10**9, patience=None, progress=False,
                         plot=False, checkpoint_every=0, seed=seed, device="cpu")
    summary = Trainer(model, config, torch.from_numpy(train), objective=objective).fit()
    return {"steps": summary["steps"], "seconds": round(summary["elapsed"], 2)}


@torch.no_grad()
def evaluate(model: SequenceModel, values: np.ndarray, context: int, stride: int = 6) -> dict:
    """Open-loop RMSE per horizon over forecast origins in the held-out part (and persistence)."""
    model.eval()
    cut = len(split(values)[0])
    series = torch.from_numpy(values)
    last = max(HORIZONS)
    origins = np.arange(max(cut, context) - 1, len(values) - last, stride)  # last observed step
    ctx = torch.stack([series[o - context + 1:o + 1] for o in origins])
    truth = torch.stack([series[o + 1:o + 1 + last] for o in origins])  # [N, 72, F]
    params, _ = forecast(model, ctx, last, mode="mean")
    pred = model.predict(params)
    persist = ctx[:, -1:].expand_as(truth)
    out = {}
    for h in HORIZONS:
        rmse = float((pred[:, h - 1] - truth[:, h - 1]).pow(2).mean().sqrt())
        base = float((persist[:, h - 1] - truth[:, h - 1]).pow(2).mean().sqrt())
        out[h] = {"rmse": rmse, "persistence": base, "relative": rmse / base}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-seconds", type=float, default=10.0,
                        help="training seconds per method, seed and data set (half of it "
                        "the shared teacher-forced pretraining)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=48, help="TBPTT chunk length")
    parser.add_argument("--ramp-steps", type=int, default=100,
                        help="fine-tuning steps over which horizon / eps schedules ramp up")
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 s per run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multistep.json"))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget_seconds = 1, 4.0
    torch.set_num_threads(1)  # tiny models: one thread is as fast and shares the machine

    methods = objectives(args.ramp_steps)
    results: dict = {"config": {k: v for k, v in vars(args).items() if k != "out"},
                     "horizons": HORIZONS, "methods": methods, "datasets": {}}
    started = time.monotonic()
    half = args.budget_seconds / 2
    for name, data in datasets().items():
        runs: dict = {method: [] for method in methods}
        train = split(data["values"])[0]
        for seed in range(args.seeds):
            # Same budget for every method: half teacher forcing (shared), half the method.
            torch.manual_seed(seed)
            base = SequenceModel.forecaster(train.shape[1], hidden_size=args.hidden,
                                            train_data=train)
            pre = fit(base, train, {"kind": "teacher"}, seed, half, args.chunk)
            for method, spec in methods.items():
                model = copy.deepcopy(base)
                info = {"pretrain_steps": pre["steps"],
                        **fit(model, train, spec, seed, half, args.chunk)}
                info["eval"] = evaluate(model, data["values"], data["context"])
                runs[method].append(info)
                print(f"{name:14s} {method:19s} seed {seed}: {info['steps']:4d} steps, "
                      + "  ".join(f"h{h} {info['eval'][h]['rmse']:.3f}" for h in HORIZONS),
                      flush=True)
        results["datasets"][name] = {"units": data["units"], "context": data["context"],
                                     "runs": runs, "summary": summarize(runs)}
    results["seconds"] = round(time.monotonic() - started, 1)
    results["target_met"] = {name: target(d["summary"])
                             for name, d in results["datasets"].items()}
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def summarize(runs: dict) -> dict:
    """method -> horizon -> mean/std over seeds of RMSE and relative RMSE."""
    summary = {}
    for method, infos in runs.items():
        summary[method] = {}
        for h in HORIZONS:
            rmse = np.array([i["eval"][h]["rmse"] for i in infos])
            rel = np.array([i["eval"][h]["relative"] for i in infos])
            summary[method][h] = {"rmse": float(rmse.mean()), "rmse_std": float(rmse.std()),
                                  "relative": float(rel.mean()),
                                  "persistence": infos[0]["eval"][h]["persistence"],
                                  "steps": float(np.mean([i["steps"] for i in infos]))}
    return summary


def target(summary: dict) -> dict:
    """Does some multi-step method beat teacher forcing (mean RMSE) at every horizon >= 24?"""
    best = {}
    for method in summary:
        if method != "teacher" and all(summary[method][h]["rmse"] < summary["teacher"][h]["rmse"]
                                       for h in HORIZONS if h >= 24):
            best[method] = True
    return {"met": bool(best), "methods_beating_teacher": sorted(best)}


def print_table(results: dict) -> None:
    for name, d in results["datasets"].items():
        s = d["summary"]
        print(f"\n{name} (RMSE in {d['units']}, mean +- std over seeds; rel = / persistence)")
        header = f"{'method':19s} {'steps':>6s}" + "".join(f" {'h=' + str(h):>17s}"
                                                          for h in HORIZONS)
        print(header)
        print(f"{'persistence':19s} {'':>6s}"
              + "".join(f" {s['teacher'][h]['persistence']:17.3f}" for h in HORIZONS))
        for method, row in s.items():
            cells = "".join(f" {row[h]['rmse']:6.3f}+-{row[h]['rmse_std']:5.3f}"
                            f" {row[h]['relative']:4.2f}" for h in HORIZONS)
            print(f"{method:19s} {row[HORIZONS[0]]['steps']:6.0f}{cells}")
        print("target (a multi-step method beats teacher forcing at h >= 24):",
              results["target_met"][name])


if __name__ == "__main__":
    main()
