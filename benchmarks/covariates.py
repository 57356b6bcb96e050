"""Does a covariate help rnnkit's forecaster? (issue 30) Each study backtests the forecaster
on one series with and without its covariates at the same step budget and seeds, over
rolling origins, and prints the MASE of both beside SeasonalNaive's.

    python benchmarks/covariates.py                 # writes benchmarks/results/covariates.json
    python benchmarks/covariates.py --only insurance-tv --seeds 0 --steps 50 --out /tmp/c.json

Studies (../shared/data/fpp/): seatbelts ``drivers`` with ``law`` (future-known; 0 until
1983-02, so only origins after it can learn it: a covariate constant over the training rows
is refused) and with ``kms``, ``PetrolPrice``; insurance ``Quotes`` with ``TV_advert``
(future-known: planned advertising); uschange ``Consumption`` with ``Income`` as
future-known (a scenario) and as past-only (observed with the target); bjsales ``sales``
with ``lead`` past-only (a leading indicator). One thread, ``nice``; every fit trains
``--steps`` steps at most (early stopping may end it sooner), no time limit, so the two
versions get the same budget on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from rnnkit.forecasting.backtest import backtest
from rnnkit.forecasting.covariates import Covariates
from rnnkit.forecasting.data import load_series

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fpp"
OUT = Path(__file__).resolve().parent / "results" / "covariates.json"

# name -> (file, target, {kind: covariate columns}, horizon, origins, rows between origins,
# config overrides of both versions)
STUDIES = {
    # law is 1 only in the last 23 rows: one H of validation rows (not the default 18) so
    # that the training windows read 5, 8 and 11 rows of it at the three origins
    "seatbelts-law": ("seatbelts.csv", "drivers", {"future": ["law"]}, 6, 3, 3,
                      {"validation": 6}),
    "seatbelts-kms-petrol": ("seatbelts.csv", "drivers",
                             {"future": ["kms", "PetrolPrice"]}, 12, 3, 12, {}),
    "insurance-tv": ("insurance.csv", "Quotes", {"future": ["TV_advert"]}, 4, 3, 4, {}),
    "uschange-income": ("uschange.csv", "Consumption", {"future": ["Income"]}, 8, 3, 8, {}),
    "uschange-income-past": ("uschange.csv", "Consumption", {"past": ["Income"]}, 8, 3, 8, {}),
    "bjsales-lead-past": ("bjsales.csv", "sales", {"past": ["lead"]}, 6, 3, 6, {}),
}


def load_study(name: str):
    """(the target series, its Covariates, horizon, windows, step) of study ``name``."""
    file, target, kinds, horizon, windows, step, _ = STUDIES[name]
    [series] = load_series(DATA / file, value=target)
    columns = {kind: {c: load_series(DATA / file, value=c)[0].values for c in cols}
               for kind, cols in kinds.items()}
    return series, Covariates(**columns), horizon, windows, step


def run_study(name: str, seeds: list[int], steps: int) -> dict:
    """Both versions' backtests at each seed: MASE per origin and its mean."""
    series, cov, horizon, windows, step = load_study(name)
    out = {"file": STUDIES[name][0], "target": STUDIES[name][1], "covariates": STUDIES[name][2],
           "horizon": horizon, "windows": windows, "step": step,
           "overrides": STUDIES[name][6], "seeds": {}}
    for seed in seeds:
        row = {}
        for version, covs in (("target_only", None), ("covariates", [cov])):
            start = time.monotonic()
            result = backtest([series], horizon, windows=windows, step=step, max_time=None,
                              max_steps=steps, seed=seed, covariates=covs,
                              **STUDIES[name][6])
            row[version] = {
                "mase": result["methods"]["deepar"]["mase"],
                "crps_scaled": result["methods"]["deepar"]["scaled_crps"],
                "coverage": result["methods"]["deepar"]["coverage"],
                "mase_by_origin": [w["deepar"]["mase"] for w in result["windows"]],
                "steps": [f["steps"] for f in result["fits"]],
                "seconds": round(time.monotonic() - start, 1)}
            row["seasonal_naive"] = result["methods"]["seasonal_naive"]["mase"]
            row["origins"] = [w["origin"] for w in result["windows"]]
        out["seeds"][str(seed)] = row
        print(f"  {name} seed {seed}: target only {row['target_only']['mase']:.3f}, "
              f"with covariates {row['covariates']['mase']:.3f}", flush=True)
    for version in ("target_only", "covariates"):
        values = [r[version]["mase"] for r in out["seeds"].values()]
        out[version] = {"mase_mean": float(np.mean(values)), "mase_sd": float(np.std(values))}
    out["seasonal_naive"] = next(iter(out["seeds"].values()))["seasonal_naive"]
    return out


def table(results: dict) -> str:
    lines = [f"{'study':24} {'H':>3} {'origins':>7} {'target only':>14} {'covariates':>14} "
             f"{'ratio':>6} {'SNaive':>7}"]
    for name, r in results.items():
        a, b = r["target_only"], r["covariates"]
        lines.append(f"{name:24} {r['horizon']:>3} {r['windows']:>7} "
                     f"{a['mase_mean']:>7.3f} ± {a['mase_sd']:.3f} "
                     f"{b['mase_mean']:>7.3f} ± {b['mase_sd']:.3f} "
                     f"{b['mase_mean'] / a['mase_mean']:>6.2f} {r['seasonal_naive']:>7.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated studies (default all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300, help="steps per fit at most")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.nice(10)
    names = args.only.split(",") if args.only else list(STUDIES)
    results = {}
    for name in names:
        results[name] = run_study(name, args.seeds, args.steps)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": args.steps, "seeds": args.seeds,
                                    "studies": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
