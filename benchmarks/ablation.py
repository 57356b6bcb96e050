"""Ablation: what each trick buys rnnkit's default char model on tinyshakespeare.

Each variant is ``rnnkit train`` with the default settings plus a few overrides (one trick
switched on or off), trained under the same wall-clock budget and scored on the same
validation split as ``benchmarks/charlm.py``. Prints nats/char, steps, and the difference
from the first run of the same invocation (the default, unless --no-default); writes
benchmarks/results/ablation.json.

    python benchmarks/ablation.py --budget-seconds 95
    python benchmarks/ablation.py --variants default layer_norm --budget-seconds 30

This is the single-seed exploration that chose the presets (validation-split numbers). The
study whose numbers may be quoted is ``rnnkit ablate`` (docs/ablate.md): several seeds,
paired intervals, and losses on a test split no run sees.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from charlm import DATA, evaluate, train_rnnkit  # noqa: E402

from rnnkit.data.split import split_tail  # noqa: E402
from rnnkit.data.text import CharVocab, read_text_file  # noqa: E402

VARIANTS = {
    "default": {},
    "layer_norm (S2)": {"layer_norm": True},
    "input_layers=1 (S3)": {"input_layers": 1},
    "2x384 + sum_outputs (S4)": {"num_layers": 2, "hidden_size": 384, "sum_outputs": True},
    "no learned_initial_state (S5)": {"learned_initial_state": False},
    "forget_bias 0 (S6)": {"forget_bias": 0.0},
    "recurrent_dropout 0.1 (S7)": {"recurrent_dropout": 0.1},
    "zoneout 0.05 (S7)": {"zoneout": 0.05},
    "clip auto (O2)": {"clip": "auto"},
    "GRU (S1)": {"cell": "gru"},
    # recipe variants: what a fixed wall-clock budget favours
    "chunk 100, no dropout, constant lr 2e-3": {"chunk_length": 100, "dropout": 0.0, "lr": 2e-3,
                                                "min_lr_ratio": 1.0},
    "chunk 64, no dropout": {"chunk_length": 64, "dropout": 0.0},
    "chunk 100, no dropout, GRU": {"chunk_length": 100, "dropout": 0.0, "cell": "gru"},
    "chunk 64, no dropout, GRU": {"chunk_length": 64, "dropout": 0.0, "cell": "gru"},
    "chunk 64, dropout 0.1, GRU": {"chunk_length": 64, "cell": "gru"},
    # second round, from the GRU default: more updates or more per update in the budget
    "hidden 384": {"hidden_size": 384},
    "lr 6e-3": {"lr": 6e-3},
    "hidden 384, lr 6e-3": {"hidden_size": 384, "lr": 6e-3},
    "batch 16": {"batch_size": 16},
    "chunk 32": {"chunk_length": 32},
    "batch 64, chunk 32": {"batch_size": 64, "chunk_length": 32},
    "no dropout": {"dropout": 0.0},
    # third round: the GRU fast loop made layer norm cost ~nothing per step (benchmarks/cells.py)
    "LN": {"layer_norm": True},
    "LN, hidden 384": {"layer_norm": True, "hidden_size": 384},
    "LN, no dropout": {"layer_norm": True, "dropout": 0.0},
    "LN, batch 64, chunk 32": {"layer_norm": True, "batch_size": 64, "chunk_length": 32},
    "hidden 384, no dropout": {"hidden_size": 384, "dropout": 0.0},
    "hidden 384, dropout 0.1": {"hidden_size": 384},
    # long budgets: the tuned plain LSTM (1x512, TBPTT 128) won at 600 s
    "LSTM 512, chunk 128": {"cell": "lstm", "hidden_size": 512, "chunk_length": 128},
    "no learned_initial_state": {"learned_initial_state": False},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-seconds", type=float, default=95.0)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS),
                   help="names (or unique prefixes) of variants to run; 'default' always runs")
    p.add_argument("--no-default", action="store_true", help="skip the default run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(Path(__file__).parent / "results" / "ablation.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    chosen = [] if args.no_default else ["default"]
    for v in args.variants:
        if "default".startswith(v):
            continue
        matches = [n for n in VARIANTS if n.startswith(v)]
        if not matches:
            p.error(f"no variant starts with {v!r}; variants: {', '.join(VARIANTS)}")
        chosen.append(matches[0])

    text = read_text_file(DATA)
    vocab = CharVocab.from_texts([text])
    ids = vocab.encode(text)
    val = ids[split_tail(len(ids), 0.1):]
    rows = []
    for name in chosen:
        model = train_rnnkit(args.budget_seconds, args.seed, str(DATA), VARIANTS[name])
        nats = evaluate(model, val, len(vocab))
        rows.append({"variant": name, "overrides": VARIANTS[name], "val_nats_per_char": nats,
                     "val_bits_per_char": nats / math.log(2), "train_steps": model.train_steps,
                     "delta_vs_first": nats - rows[0]["val_nats_per_char"] if rows else 0.0})
        r = rows[-1]
        print(f"{name:32s} {nats:.4f} nats/char  {r['train_steps']:5d} steps  "
              f"{r['delta_vs_first']:+.4f} vs the first row", flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"budget_seconds": args.budget_seconds, "threads": args.threads,
                               "seed": args.seed, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
