"""Rules for choosing the forecast's shares, re-scored offline from saved sample paths.

``benchmarks/forecast.py --save-paths DIR`` keeps, per series and origin, the network's own
sample paths, the training and held-out rows; the run's JSON keeps each fit's choice record
(``fit.choose_weights``: its validation CRPS per candidate, or "no validation windows").
With both, other choice rules can be scored on the same held-out rows without training
again: the network's paths are what they were, the statistical forecast the run used (Theta
or the damped trend) and the seasonal-naive one are refitted
(``combination.statistical_forecasts``) and mixed at the shares each rule picks.

- fits with validation windows: ``argmin`` (the library's rule), shrinking to thirds unless
  the best candidate beats them by a margin, thirds below a number of windows, never Theta
  alone, each fixed candidate, and the oracle (the best candidate on the held-out rows:
  a bound, not a rule);
- fits without validation windows: the network's share (the rest split as the fit split it).

Geo-mean MASE / scaled CRPS, mean coverage of the 80% interval, and wins over the seasonal
naive forecast (rnnkit's own, refitted here) per subset. Use it on the validation split::

    python benchmarks/forecast.py --panel development --split validation --seeds 0 \\
        --no-stats --nf-models "" --threads 1 --save-paths /tmp/paths --out val-s0.json
    python benchmarks/forecast_choice.py /tmp/paths val-s0.json [val-s1.json ...] \\
        --out benchmarks/results/forecast-choice-validation.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from forecast import paths_file_stem  # benchmarks/forecast.py

from rnnkit.forecasting.combination import mix_forecasts, statistical_forecasts
from rnnkit.forecasting.fit import COMBINE_WEIGHTS, _shares
from rnnkit.forecasting.metrics import evaluate

PANELS = ("prison", "aus_arrivals", "departures", "stocks")
THIRDS = _shares((1 / 3, 1 / 3, 1 / 3))
NETWORK_SHARES = (0.0, 0.2, 1 / 3, 0.5)


def choice_rules(scores: dict[str, float], windows: int) -> dict[str, str]:
    """The candidate (its ``_shares`` label) each rule picks from a fit's validation CRPS."""
    best = min(scores, key=scores.get)
    rules = {"argmin (the library)": best}
    for margin in (0.02, 0.05, 0.1):
        rules[f"thirds unless {margin:.0%} better"] = (
            best if scores[best] < scores[THIRDS] * (1 - margin) else THIRDS)
    for least in (2, 4, 8):
        rules[f"thirds below {least} windows"] = best if windows >= least else THIRDS
    rest = {k: v for k, v in scores.items() if k != "0/1/0"}
    rules["never Theta alone"] = min(rest, key=rest.get)
    return rules


def score(path: np.lib.npyio.NpzFile, shares_of: dict[str, tuple[float, ...]],
          method: str) -> dict:
    """``{label: (mase, scaled_crps, coverage, beats seasonal naive)}`` of the mixtures, the
    statistical forecast ``method`` refitted."""
    net, x, y = path["network"], path["train"], path["actual"]
    m, spread = int(path["season"]), float(path["theta_spread"])
    stat, base = statistical_forecasts(x, len(y), m, len(net), 0, method)
    naive_mase = evaluate(y, np.median(base.samples, 0), x, m, base.samples)["mase"]
    out = {}
    for label, shares in shares_of.items():
        paths = mix_forecasts(net, stat, base, shares, spread)
        e = evaluate(y, np.median(paths, 0), x, m, paths)
        out[label] = (e["mase"], e["scaled_crps"], e["coverage"], e["mase"] < naive_mase)
    return out


def summary(cells: list[tuple]) -> dict:
    a = np.array([c[:3] for c in cells], np.float64)
    return {"series": len(cells), "gmean_mase": math.exp(np.log(a[:, 0]).mean()),
            "gmean_crps": math.exp(np.log(a[:, 1]).mean()), "mean_coverage": a[:, 2].mean(),
            "wins": int(sum(c[3] for c in cells))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", help="the --save-paths directory of the runs")
    p.add_argument("runs", nargs="+", help="the runs' JSON files (forecast.py --out)")
    p.add_argument("--out", default="", help="write the tables here")
    args = p.parse_args()
    records = {paths_file_stem(row): row for run in args.runs
               for row in json.loads(Path(run).read_text())["series"]}
    candidates = {_shares(w): w for w in COMBINE_WEIGHTS}
    tables: dict[str, dict] = {"with validation windows": defaultdict(lambda: defaultdict(list)),
                               "without validation windows": defaultdict(lambda: defaultdict(list))}
    for file in sorted(Path(args.paths).glob("*.npz")):
        row = records.get(file.stem)
        if row is None or "combine" not in (row.get("fit") or {}):
            continue
        record, path = row["fit"]["combine"], np.load(file)
        method = record.get("statistical", "theta")  # runs from before the damped trend
        group = row["file"] if row["file"] in PANELS else "single series"
        if record["why"].startswith("validation CRPS"):
            windows = int(record["why"].split(" over ")[1].split()[0])
            cells = score(path, candidates, method)
            cells["oracle (a bound)"] = min(cells.values(), key=lambda c: c[1])
            picks = {**choice_rules(record["scores"], windows),
                     **{k: k for k in candidates}, "oracle (a bound)": "oracle (a bound)"}
            table = tables["with validation windows"]
        elif record["why"].startswith("no validation windows"):
            w = record["weights"]
            split = (w[1] / (w[1] + w[2]), w[2] / (w[1] + w[2]))
            shares_of = {f"network {s:.2f}": (s, (1 - s) * split[0], (1 - s) * split[1])
                         for s in NETWORK_SHARES}
            cells = score(path, shares_of, method)
            picks = {k: k for k in shares_of}
            table = tables["without validation windows"]
        else:
            continue
        for rule, pick in picks.items():
            for g in ("all", group):
                table[g][rule].append(cells[pick])
    out = {"what": __doc__.splitlines()[0], "paths": args.paths, "runs": args.runs}
    for title, table in tables.items():
        out[title] = {g: {rule: summary(c) for rule, c in rules.items()}
                      for g, rules in table.items()}
        for g, rules in out[title].items():
            print(f"\n{title}, {g} ({next(iter(rules.values()))['series']} forecasts)")
            print("| rule | MASE | scaled CRPS | coverage | wins over SeasonalNaive |")
            print("| --- | --- | --- | --- | --- |")
            for rule, s in rules.items():
                print(f"| {rule} | {s['gmean_mase']:.3f} | {s['gmean_crps']:.3f} | "
                      f"{s['mean_coverage']:.2f} | {s['wins']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
