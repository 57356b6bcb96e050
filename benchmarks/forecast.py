"""rnnkit's DeepAR forecaster beside Naive, SeasonalNaive and statsforecast's AutoETS,
AutoARIMA and AutoTheta on the series of ../shared/data/ (last H rows held out).

statsforecast==2.1.1 (benchmark only, never a library dependency; see
benchmarks/requirements-forecast.txt). Without it the script compares against ours only.

    python benchmarks/forecast.py --budget 120        # writes benchmarks/results/forecast.json
    python benchmarks/forecast.py --budget 20 --only airpassengers,lynx --out /tmp/x.json
    python benchmarks/forecast.py --split validation  # score on the last H *training* rows

H = 2 seasons for hourly data, 10 for yearly, one season otherwise. ``--split validation``
drops the test rows first and scores on the H rows before them, so settings can be chosen
without looking at the test rows. Every method gets its 80% interval as sample paths:
ours draws them, the baselines' and statsforecast's are Gaussians with the sigma of their
80% interval, ``(hi - lo) / (2 * 1.2816)``. MASE and CRPS are scaled by the in-sample MAE
of the seasonal-naive forecast; the panel summary is their geometric mean over series.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.forecasting import infer_frequency, load_series, naive, seasonal_naive, train_forecaster  # noqa: E402
from rnnkit.forecasting.baselines import gaussian_forecast  # noqa: E402
from rnnkit.forecasting.data import DatedSeries  # noqa: E402
from rnnkit.forecasting.metrics import evaluate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
Z80 = 1.2815515655446004  # the 0.9 quantile of N(0, 1)

# name -> (file, value column, id column for long format)
PANEL = {
    "seattle-temps": ("seattle-temps.csv", "temp", None),
    "seattle-weather": ("seattle-weather.csv", "temp_max", None),
    "co2": ("co2.csv", "co2", None),
    "airpassengers": ("airpassengers.csv", "passengers", None),
    "wineind": ("wineind.csv", "litres", None),
    "ausbeer": ("ausbeer.csv", "megalitres", None),
    "lynx": ("lynx.csv", "trappings", None),
    "stocks": ("stocks.csv", "price", "symbol"),
    "us-employment": ("us-employment.csv", "nonfarm", None),
}


def horizon_of(freq) -> int:
    if freq.name in ("hourly", "half-hourly"):
        return 2 * freq.season
    return 10 if freq.name == "yearly" else freq.season


def stats_forecasts(y: np.ndarray, h: int, m: int, key: str, args) -> dict:
    """statsforecast's AutoETS, AutoARIMA, AutoTheta: {name: (forecast, seconds)}.

    Their means, sigmas and seconds are cached in ``args.stats_cache`` under ``key`` (they do
    not depend on rnnkit's settings, and AutoARIMA takes minutes on the hourly series)."""
    cache_path = Path(args.stats_cache)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def known(name: str) -> bool:  # a forecast, or a time-out at a limit as long as this one
        got = cache.get(key, {}).get(name, {})
        return "mean" in got or got.get("timeout", 0) >= args.stats_timeout

    names = ("AutoETS", "AutoARIMA", "AutoTheta")
    if not all(known(n) for n in names) and not args.no_stats:
        try:
            from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
        except ImportError:
            return {}
        got = dict(cache.get(key, {}))
        for name, cls in zip(names, (AutoETS, AutoARIMA, AutoTheta)):
            if known(name):
                continue
            t0 = time.monotonic()
            # in a child process, so a model that runs past the limit can be stopped
            with multiprocessing.get_context("fork").Pool(1) as pool:
                job = pool.apply_async(_stats_model, (cls, y, h, m))
                try:
                    mean, sigma = job.get(timeout=args.stats_timeout)
                except multiprocessing.TimeoutError:
                    print(f"  {name}: no forecast within {args.stats_timeout:g} s", flush=True)
                    got[name] = {"timeout": args.stats_timeout}
                    continue
                except Exception as e:  # a model that fails on a series is reported
                    print(f"  {name} failed: {type(e).__name__}: {e}", flush=True)
                    continue
            got[name] = {"mean": mean, "sigma": sigma, "seconds": time.monotonic() - t0}
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        cache[key] = got
        cache_path.write_text(json.dumps(cache, indent=1))
    return {name: (gaussian_forecast(np.array(v["mean"]), np.array(v["sigma"])), v["seconds"])
            for name, v in cache.get(key, {}).items() if "mean" in v}


def _stats_model(cls, y: np.ndarray, h: int, m: int) -> tuple[list, list]:
    res = cls(season_length=m).forecast(y=y.astype(np.float64), h=h, level=[80])
    sigma = (res["hi-80"] - res["lo-80"]) / (2 * Z80)
    return res["mean"].tolist(), sigma.tolist()


def run_group(name: str, series: list[DatedSeries], args) -> list[dict]:
    """Every method on every series of one file; DeepAR trained once on all of them."""
    freq = infer_frequency(series[0].dates)
    h, m = horizon_of(freq), freq.season
    cut = h * (2 if args.split == "validation" else 1)
    trains = [s.head(len(s.values) - cut) for s in series]
    actuals = [s.values[len(s.values) - cut: len(s.values) - cut + h] for s in series]
    overrides = json.loads(args.overrides) if args.overrides else {}
    if args.stats_only:
        for s, t in zip(series, trains):
            label = name if len(series) == 1 else f"{name}:{s.name}"
            stats_forecasts(t.values, h, m, f"{args.split}:{label}", args)
            print(f"{label}: statsforecast done", flush=True)
        return []
    t0 = time.monotonic()
    forecaster, report = train_forecaster(trains, h, max_time=args.budget, seed=args.seed,
                                          **overrides)
    fit_seconds = time.monotonic() - t0
    print(f"{name}: {freq.name}, H={h}, m={m}, {len(trains[0].values)} training rows; "
          f"{report.steps} steps ({report.stop_reason}, best {report.best_step}) in "
          f"{fit_seconds:.0f} s; context {forecaster.config.context_length}, "
          f"lags {forecaster.config.lags}, temperature "
          f"{float(forecaster.model.temperature):g}", flush=True)
    rows = []
    for s, t, y in zip(series, trains, actuals):
        label = name if len(series) == 1 else f"{name}:{s.name}"
        t1 = time.monotonic()
        fc = forecaster.forecast(t.values, t.dates, h, num_samples=args.samples,
                                 series=s.name, seed=args.seed)
        methods = {"rnnkit": (fc.quantile(0.5), fc.samples,
                              fit_seconds / len(series) + time.monotonic() - t1)}
        for base_name, fn in (("Naive", lambda v: naive(v, h)),
                              ("SeasonalNaive", lambda v: seasonal_naive(v, h, m))):
            t1 = time.monotonic()
            b = fn(t.values)
            methods[base_name] = (b.mean, b.samples, time.monotonic() - t1)
        for sname, (f, secs) in stats_forecasts(t.values, h, m, f"{args.split}:{label}",
                                                 args).items():
            methods[sname] = (f.mean, f.samples, secs)
        row = {"series": label, "freq": freq.name, "horizon": h, "season": m,
               "train_rows": len(t.values), "config": {
                   k: getattr(forecaster.config, k) for k in (
                       "context_length", "lags", "validation", "scaling", "likelihood",
                       "hidden_size", "num_layers", "batch_size", "lr")},
               "fit": {"steps": report.steps, "best_step": report.best_step,
                       "stop": report.stop_reason,
                       "temperature": float(forecaster.model.temperature)}, "methods": {}}
        for mname, (point, samples, secs) in methods.items():
            e = evaluate(y, point, t.values, m, samples)
            row["methods"][mname] = {"mase": e["mase"], "crps": e["scaled_crps"],
                                     "coverage": e["coverage"], "seconds": secs,
                                     "mase_by_step": e["by_step"]["mase"]}
        rows.append(row)
        print("  " + label + "  " + "  ".join(
            f"{k} {v['mase']:.3f}/{v['crps']:.3f}/{v['coverage']:.2f}"
            for k, v in row["methods"].items()), flush=True)
    return rows


def refresh_stats(rows: list[dict], args) -> None:
    """Put the statsforecast results now in the cache into ``rows`` (of an earlier run)."""
    by_label = {r["series"]: r for r in rows}
    for name, (file, value, by) in PANEL.items():
        series = load_series(DATA / file, value=value, by=by, fill_gaps=name == "co2")
        for s in series:
            label = name if len(series) == 1 else f"{name}:{s.name}"
            row = by_label.get(label)
            if row is None:
                continue
            h, m = row["horizon"], row["season"]
            cut = h * (2 if args.split == "validation" else 1)
            t, y = s.values[: len(s.values) - cut], s.values[len(s.values) - cut:][:h]
            for sname, (f, secs) in stats_forecasts(t, h, m, f"{args.split}:{label}",
                                                     args).items():
                e = evaluate(y, f.mean, t, m, f.samples)
                row["methods"][sname] = {"mase": e["mase"], "crps": e["scaled_crps"],
                                         "coverage": e["coverage"], "seconds": secs,
                                         "mase_by_step": e["by_step"]["mase"]}


def summarize(rows: list[dict]) -> dict:
    names = list(dict.fromkeys(n for r in rows for n in r["methods"]))
    out = {}
    for n in names:
        got = [r["methods"][n] for r in rows if n in r["methods"]]
        out[n] = {
            "gmean_mase": float(np.exp(np.mean([np.log(g["mase"]) for g in got]))),
            "gmean_crps": float(np.exp(np.mean([np.log(g["crps"]) for g in got]))),
            "mean_coverage": float(np.mean([g["coverage"] for g in got])),
            "seconds": float(np.sum([g["seconds"] for g in got])),
            "series": len(got),
        }
    wins = [r["methods"]["rnnkit"]["mase"] < r["methods"]["SeasonalNaive"]["mase"] for r in rows]
    out["rnnkit"]["beats_seasonal_naive"] = f"{sum(wins)}/{len(wins)}"
    return out


def print_table(rows: list[dict], summary: dict) -> None:
    names = list(summary)
    print("\nMASE / scaled CRPS / 80% coverage (last H rows held out)")
    print(f"{'series':<26}" + "".join(f"{n:>22}" for n in names))
    for r in rows:
        cells = [r["methods"].get(n) for n in names]
        print(f"{r['series']:<26}" + "".join(
            f"{c['mase']:>8.3f}{c['crps']:>8.3f}{c['coverage']:>6.2f}" if c else f"{'-':>22}"
            for c in cells))
    print(f"{'geometric mean':<26}" + "".join(
        f"{summary[n]['gmean_mase']:>8.3f}{summary[n]['gmean_crps']:>8.3f}"
        f"{summary[n]['mean_coverage']:>6.2f}" for n in names))
    print(f"{'seconds (total)':<26}" + "".join(f"{summary[n]['seconds']:>22.1f}" for n in names))
    print(f"{'series scored':<26}" + "".join(f"{summary[n]['series']:>22d}" for n in names))
    print(f"rnnkit beats SeasonalNaive (MASE) on {summary['rnnkit']['beats_seasonal_naive']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=120, help="training seconds per file")
    p.add_argument("--only", default="", help="comma-separated names of PANEL")
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--overrides", default="", help='JSON of config fields, e.g. {"lr": 1e-3}')
    p.add_argument("--no-stats", action="store_true",
                   help="never run statsforecast (its cached forecasts are still shown)")
    p.add_argument("--stats-timeout", type=float, default=600,
                   help="seconds a statsforecast model may take on one series")
    p.add_argument("--restats", default="",
                   help="a results JSON: redo its summary with the statsforecast cache")
    p.add_argument("--stats-only", action="store_true",
                   help="only fill the statsforecast cache")
    p.add_argument("--stats-cache",
                   default=str(ROOT / "benchmarks" / "results" / "forecast-stats.json"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "forecast.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in PANEL if not args.only or n in args.only.split(",")]
    rows = []
    if args.restats:  # an earlier run's rnnkit rows, with the statsforecast cache as it is now
        rows = json.loads(Path(args.restats).read_text())["series"]
        refresh_stats(rows, args)
        names = []
    for name in names:
        file, value, by = PANEL[name]
        series = load_series(DATA / file, value=value, by=by, fill_gaps=name == "co2")
        rows += run_group(name, series, args)
    if args.stats_only:
        return
    summary = summarize(rows)
    print_table(rows, summary)
    try:
        import statsforecast
        stats_version = statsforecast.__version__
    except ImportError:
        stats_version = None
    if args.restats:
        args.budget = json.loads(Path(args.restats).read_text())["args"]["budget"]
    result = {"args": vars(args), "summary": summary, "series": rows,
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "statsforecast": stats_version, "threads": args.threads}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
