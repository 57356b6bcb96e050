"""The overfitting regime: each kind of dropout on a text small enough to memorize.

The small preset (GRU 2x192) trains 1000 steps on ``shakespeare_100k`` (benchmarks/corpora.py;
about 25 passes over its 81 KB of training text), 1 thread, a step budget (so a busy machine
changes the time, not the result), evaluating every 100 steps; the score is the test split's
nats/char at the best validation checkpoint, the model ``rnnkit train`` hands over. Each
variant is paired with the plain preset on seeds 0-4 (mean difference, 95% t-interval).

    python benchmarks/overfitting.py --runs /tmp/overfit               # 35 runs, ~50 min
    python benchmarks/overfitting.py --runs /tmp/overfit --summarize   # the table and JSON
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rnnkit.cli.ablate_report import paired_effect, verdict

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "overfitting-100k.json"
VARIANTS = {"none": [], "dropout": ["dropout=0.3"], "zoneout": ["zoneout=0.1"],
            "weight_drop": ["weight_drop=0.3"], "recurrent_dropout": ["recurrent_dropout=0.3"],
            # the AWD-LSTM recipe as `rnnkit ablate`'s "awd" row sets it (Merity et al. 2018)
            "awd": ["weight_drop=0.2", "dropout_mode=locked", "input_dropout=0.1",
                    "output_dropout=0.1", "embed_dropout=0.1", "embed_dropout_mode=words",
                    "ar=2.0", "tar=1.0"],
            "layer_norm": ["layer_norm=true"]}
SEEDS = range(5)
STEPS = 1000


def run(out: Path, variant: str, seed: int) -> None:
    """One charlm.py run of ``variant`` with ``seed``, written to OUT/VARIANT-sSEED.json."""
    subprocess.run([sys.executable, str(HERE / "charlm.py"), "--corpus", "shakespeare_100k",
                    "--only", "rnnkit", "--threads", "1", "--seed", str(seed),
                    "--budget-seconds", "100000", "--output", str(out / f"{variant}-s{seed}.json"),
                    "--rnnkit-set", "model_size=small", f"max_steps={STEPS}", "max_time=0",
                    *VARIANTS[variant]], check=True)


def summarize(out: Path) -> dict:
    """Per variant: test nats/char per seed, and its paired effect against ``none``."""
    scores: dict[str, dict[int, float]] = {v: {} for v in VARIANTS}
    steps_per_second: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for variant in VARIANTS:
        for seed in SEEDS:
            path = out / f"{variant}-s{seed}.json"
            if path.exists():
                row = json.loads(path.read_text())["100000s"]["results"][0]
                scores[variant][seed] = row["test_nats_per_char"]
                steps_per_second[variant].append(row["train_steps"] / row["train_seconds"])
    rows = []
    for variant, by_seed in scores.items():
        mean, low, high, n = paired_effect(by_seed, scores["none"])
        rows.append({"variant": variant, "settings": VARIANTS[variant], "test": by_seed,
                     "effect_vs_none": mean, "ci95": [low, high], "paired_seeds": n,
                     "verdict": verdict(low, high) if variant != "none" else "",
                     "steps_per_second": round(sum(steps_per_second[variant])
                                               / max(1, len(steps_per_second[variant])), 2)})
        effect = "" if variant == "none" or low is None else \
            f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"
        mean_score = sum(by_seed.values()) / max(1, len(by_seed))
        print(f"{variant:12s} {mean_score:.4f}  {effect:28s} {rows[-1]['verdict']}")
    return {"corpus": "shakespeare_100k", "steps": STEPS, "threads": 1, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="directory for the runs' JSON files")
    parser.add_argument("--summarize", action="store_true", help="only summarize the runs")
    parser.add_argument("--output", default=str(RESULTS), help=f"JSON (default: {RESULTS})")
    args = parser.parse_args()
    out = Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summarize:
        for seed in SEEDS:
            for variant in VARIANTS:
                if not (out / f"{variant}-s{seed}.json").exists():
                    run(out, variant, seed)
    Path(args.output).write_text(json.dumps(summarize(out), indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
