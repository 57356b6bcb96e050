"""One table per budget from benchmarks/charlm.py's result files: the mean over seeds of each
model's nats/char on each corpus, and rnnkit's margin below the best plain recipe.

    python benchmarks/charlm_table.py /tmp/runs/*.json --output benchmarks/results/x.json

The output JSON holds every input run (as charlm.py wrote it) and the table's rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from charlm import MARGIN  # benchmarks/charlm.py


def runs_of(paths: list[str]) -> list[dict]:
    """Every (file, budget) result of charlm.py's files, each with the file's name."""
    runs = []
    for path in paths:
        for key, result in json.loads(Path(path).read_text()).items():
            if isinstance(result, dict) and "results" in result:
                runs.append({**result, "file": Path(path).name, "key": key})
    return runs


def table(runs: list[dict]) -> list[dict]:
    """Rows per (corpus, budget, threads, split): each model's mean over seeds, the seeds, and
    rnnkit's margin below the best plain mean (positive: rnnkit is better)."""
    groups: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    last: dict[tuple, dict[int, float]] = defaultdict(dict)
    for run in runs:
        key = (run["data"], run["budget_seconds"], run["threads"], run["split"].split(":")[0])
        for row in run["results"]:
            groups[key][row["model"]][run["seed"]] = row["test_nats_per_char"]
            if "test_nats_per_char_last" in row:
                last[key][run["seed"]] = row["test_nats_per_char_last"]
    rows = []
    for key, models in sorted(groups.items()):
        means = {m: round(statistics.mean(s.values()), 4) for m, s in models.items()}
        row = {"corpus": key[0], "budget_seconds": key[1], "threads": key[2], "split": key[3],
               "seeds": sorted(set().union(*(s.keys() for s in models.values()))),
               "mean_nats_per_char": means}
        if last[key]:
            row["rnnkit_last_weights"] = round(statistics.mean(last[key].values()), 4)
        plain = {m: v for m, v in means.items() if m != "rnnkit"}
        if "rnnkit" in means and plain:
            row["margin_below_best_plain"] = round(min(plain.values()) - means["rnnkit"], 4)
            row["meets_margin"] = row["margin_below_best_plain"] >= MARGIN
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table, models in columns."""
    models = sorted({m for r in rows for m in r["mean_nats_per_char"]},
                    key=lambda m: (m != "rnnkit", m))
    head = ["corpus", "budget", "threads", "seeds", *models, "rnnkit last", "margin"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["corpus"], f"{r['budget_seconds']:g} s", str(r["threads"]),
                 ",".join(map(str, r["seeds"])),
                 *(f"{r['mean_nats_per_char'][m]:.4f}" if m in r["mean_nats_per_char"] else ""
                   for m in models),
                 f"{r['rnnkit_last_weights']:.4f}" if "rnnkit_last_weights" in r else "",
                 f"{r['margin_below_best_plain']:+.4f}" if "margin_below_best_plain" in r
                 else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="charlm.py result files")
    parser.add_argument("--output", help="write the runs and the rows here (JSON)")
    args = parser.parse_args()
    runs = runs_of(args.files)
    rows = table(runs)
    print(markdown(rows))
    if args.output:
        Path(args.output).write_text(json.dumps({"rows": rows, "runs": runs}, indent=1) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
