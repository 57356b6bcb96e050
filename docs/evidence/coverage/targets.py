"""Which rule for the sampling temperature covers held-out rows best: validation origins
only (the test split's last H rows are never read).

    python docs/evidence/coverage/targets.py --shifts 0,1 --out a.json

For each file of the benchmark panel (``benchmarks/forecast.py``) and each origin of the
validation split (``--shifts``: 0 is the validation split's own origin, k is k horizons
before it), train the default forecaster once with calibration off (``--budget`` seconds,
1 thread, seed 0), then for each rule choose a temperature on the model's own validation
windows, forecast the H held-out rows after the origin and score them (coverage of the 80%
interval, CRPS and MASE scaled as in the benchmark). Every rule scores the same trained
model, so the comparison is paired.

Rules (the grid is the library's, 1 to 8, plus 0.75): ``default``, the library's rule today
(the temperature >= 1 whose validation coverage is closest to 0.80); the temperature whose
coverage is closest to 0.80, 0.85 or 0.90; the smallest whose coverage is >= 0.80 (of the
whole grid, or from 1); ``conformal``, the smallest whose coverage is >= split conformal's
finite-sample level ceil((n + 1) 0.8) / n for n validation values (Vovk et al. 2005; Lei et
al. 2018); the best validation CRPS; the
best interval score of the 80% interval (Gneiting & Raftery 2007, Eq. 43); and the default
raised to a factor from the context's own one-step residuals (``residual``: the 0.8-quantile
of |z - mu| / (sigma t_0.9(df)) over the context, when above the default's temperature;
``residual_alone``: that factor alone, at least 1; ``residual_capped``: ``residual`` with the
factor at most 8, what ``ForecastConfig.context_spread`` does; added after ``targets.json``
was made, so only ``short-series-capped.json`` has it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import forecast as bench  # noqa: E402

from rnnkit.forecasting import load_series, train_forecaster  # noqa: E402
from rnnkit.forecasting.features import calendar_features  # noqa: E402
from rnnkit.forecasting.fit import _windows  # noqa: E402
from rnnkit.forecasting.metrics import crps_by_step, evaluate  # noqa: E402

GRID = (0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
ALL = tuple(range(len(GRID)))


@torch.no_grad()
def window_stats(model, val, temperature: float, samples: int = 200) -> dict:
    """Coverage, scaled CRPS and 80% interval score of the validation windows' paths."""
    cfg = model.config
    model.temperature.fill_(temperature)
    context = val.values[:, : cfg.max_lag + cfg.context_length]
    torch.manual_seed(0)
    paths = model.sample_paths(context, val.calendar, val.series, cfg.horizon,
                               samples).double().numpy()
    y = val.values[:, -cfg.horizon:].double().numpy()
    scale = context[:, cfg.max_lag:].abs().mean(1).double().numpy()[:, None] + 1e-8
    lo, hi = np.quantile(paths, [0.1, 0.9], axis=1)
    crps = np.mean([crps_by_step(p, a).mean() / s[0] for p, a, s in zip(paths, y, scale)])
    alpha = 0.2
    score = (hi - lo) + 2 / alpha * ((lo - y) * (y < lo) + (y - hi) * (y > hi))
    return {"coverage": float(((lo <= y) & (y <= hi)).mean()), "crps": float(crps),
            "interval": float((score / scale).mean())}


def choose(stats: list[dict], n: int) -> dict[str, float]:
    """Rule name -> temperature, from the grid's validation stats (``n`` validation values)."""
    def closest(target, grid=ALL):
        return min(grid, key=lambda i: (round(abs(stats[i]["coverage"] - target), 6),
                                        stats[i]["crps"]))

    def smallest(target, grid=ALL):
        enough = [i for i in grid if stats[i]["coverage"] >= target - 1e-9]
        return GRID[enough[0] if enough else len(GRID) - 1]

    from_one = [i for i in range(len(GRID)) if GRID[i] >= 1.0]
    enough = [i for i in range(len(GRID)) if stats[i]["coverage"] >= 0.8]
    return {
        "default": GRID[closest(0.8, from_one)],  # the library's rule and grid today
        "atleast80_from1": smallest(0.8, from_one),
        # split conformal's finite-sample level: ceil((n + 1) 0.8) / n of n values
        "conformal": smallest(min(1.0, np.ceil((n + 1) * 0.8) / n)),
        "conformal_from1": smallest(min(1.0, np.ceil((n + 1) * 0.8) / n), from_one),
        "cov80": GRID[closest(0.8)], "cov85": GRID[closest(0.85)],
        "cov90": GRID[closest(0.9)],
        "atleast80": GRID[enough[0] if enough else len(GRID) - 1],
        "crps": GRID[min(range(len(GRID)), key=lambda i: stats[i]["crps"])],
        "interval": GRID[min(range(len(GRID)), key=lambda i: stats[i]["interval"])],
    }


@torch.no_grad()
def residual_factor(model, values: np.ndarray, dates: np.ndarray, series_index: int) -> float:
    """The 0.8-quantile of the context's one-step |z - mu| / (sigma t_0.9(df))."""
    cfg = model.config
    keep = min(len(values), cfg.max_lag + cfg.context_length)
    v = torch.tensor(values[-keep:], dtype=torch.float32).unsqueeze(0)
    cal = torch.from_numpy(calendar_features(dates[-keep:][cfg.max_lag:],
                                             cfg.calendar)).unsqueeze(0)
    t = keep - cfg.max_lag
    loc, scale = model.scale(v, t)
    z = (v - loc) / scale
    idx = torch.tensor([series_index]) if model.embedding is not None else None
    params, _ = model.params(model.inputs(z, cal, idx))
    d = model.head.dist(params[0])
    t90 = (torch.from_numpy(scipy.stats.t.ppf(0.9, d.df.double().numpy())).float()
           if hasattr(d, "df") else torch.tensor(1.2816))
    ratio = (z[0, cfg.max_lag:] - d.loc).abs() / (d.scale * t90)
    return float(torch.quantile(ratio, 0.8))


def run(name: str, shift: int, budget: float, seed: int = 0) -> list[dict]:
    file, column, ids = bench.PANEL[name]
    series = load_series(bench.DATA / file, value=column, by=ids, fill_gaps=name == "co2")
    args = argparse.Namespace(split="validation", shift=shift)
    freq, h, m, trains, actuals = bench.split_group(series, args)
    t0 = time.monotonic()
    # every rule sets the temperature itself: no calibration, no floor at forecast time
    forecaster, report = train_forecaster(trains, h, max_time=budget, seed=seed, calibrate="",
                                          context_spread=False)
    model, cfg = forecaster.model, forecaster.config
    cals = [calendar_features(t.dates, cfg.calendar) for t in trains]
    _, val = _windows(cfg, [t.values for t in trains], cals, 0)
    stats = [window_stats(model, val, t) for t in GRID] if val is not None else None
    temps = choose(stats, val.values.shape[0] * h) if stats else {"default": 1.0}
    print(f"{name}@-{shift}H: {report.steps} steps in {time.monotonic() - t0:.0f} s, "
          f"{0 if val is None else len(val.values)} validation windows, {temps}", flush=True)
    rows = []
    for i, (s, t, y) in enumerate(zip(series, trains, actuals)):
        if len(t.values) <= cfg.max_lag + 1 or len(y) < h:
            print(f"  {s.name}: {len(t.values)} training rows, not scored", flush=True)
            continue
        factor = residual_factor(model, t.values, t.dates, i)
        rules = dict(temps, residual=max(temps["default"], factor),
                     residual_alone=max(1.0, factor),
                     # the library's rule: the factor capped at the largest temperature
                     residual_capped=max(temps["default"], min(factor, max(GRID))))
        row = {"series": bench.label_of(name, series, s), "shift": shift, "seed": seed,
               "horizon": h,
               "steps": report.steps, "validation_windows": 0 if val is None else len(val.values),
               "residual_factor": factor, "rules": {}}
        for rule, temperature in rules.items():
            model.temperature.fill_(temperature)
            fc = forecaster.forecast(t.values, t.dates, h, num_samples=500, series=s.name,
                                     seed=0)
            e = evaluate(y, fc.quantile(0.5), t.values, m, fc.samples)
            row["rules"][rule] = {"temperature": temperature, "coverage": e["coverage"],
                                  "crps": e["scaled_crps"], "mase": e["mase"]}
        print(f"  {row['series']}: " + ", ".join(
            f"{k} {v['temperature']:.2f}/{v['coverage']:.2f}/{v['crps']:.2f}"
            for k, v in row["rules"].items()), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shifts", default="0,1,2,3")
    p.add_argument("--only", default="")
    p.add_argument("--budget", type=float, default=90.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summarize", nargs="*", default=[], help="only summarize these files")
    p.add_argument("--out", default="")
    a = p.parse_args()
    if a.summarize:
        summarize([r for f in a.summarize for r in json.loads(Path(f).read_text())["rows"]])
        return
    torch.set_num_threads(1)
    names = a.only.split(",") if a.only else list(bench.PANEL)
    rows = []
    for shift in [int(k) for k in a.shifts.split(",")]:
        for name in names:
            rows += run(name, shift, a.budget, a.seed)
            Path(a.out).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))
    summarize(rows)


def summarize(rows: list[dict]) -> None:
    """Per rule: mean coverage, geometric-mean CRPS and MASE over every (series, origin,
    seed), and the spread of the panel's mean coverage over origins and seeds."""
    rules = max((list(r["rules"]) for r in rows), key=len)
    short = sum(len(r["rules"]) < len(rules) for r in rows)
    rows = [r for r in rows if len(r["rules"]) == len(rules)]
    panels = sorted({(r["shift"], r.get("seed", 0)) for r in rows})
    print(f"{len(rows)} series x origins x seeds; {len(panels)} panels (origin, seed); "
          f"{short} left out (too short for validation rows: no temperature to choose)")
    print(f"{'rule':16s} coverage  CRPS   MASE   panel coverage: min / median / max")
    for rule in rules:
        def g(key, sub, rule=rule):
            return np.exp(np.mean([np.log(r["rules"][rule][key]) for r in sub]))
        cov = np.mean([r["rules"][rule]["coverage"] for r in rows])
        per_panel = [np.mean([r["rules"][rule]["coverage"] for r in rows
                              if (r["shift"], r.get("seed", 0)) == k]) for k in panels]
        print(f"{rule:16s} {cov:8.3f} {g('crps', rows):6.3f} {g('mase', rows):6.3f}   "
              f"{min(per_panel):.2f} / {np.median(per_panel):.2f} / {max(per_panel):.2f}")


if __name__ == "__main__":
    main()
