"""rnnkit's DeepAR forecaster beside Naive, SeasonalNaive, statsforecast's AutoETS,
AutoARIMA and AutoTheta, and neuralforecast's LSTM and DeepAR on the series of
../shared/data/ (last H rows held out).

statsforecast and neuralforecast are benchmark only, never library dependencies; their pins
and the install command are in benchmarks/requirements-forecast.txt. Without them the script
compares against ours only.

    python benchmarks/forecast.py --budget 120        # writes benchmarks/results/forecast.json
    python benchmarks/forecast.py --budget 20 --only airpassengers,lynx --out /tmp/x.json
    python benchmarks/forecast.py --split validation  # score on the last H *training* rows
    python benchmarks/forecast.py --add-nf benchmarks/results/forecast.json  # add LSTM, DeepAR
    python benchmarks/forecast.py --origins 5   # + 4 earlier origins of each long series

H = 2 seasons for hourly data, 10 for yearly, one season otherwise. ``--origins N`` adds a
rolling-origin table for the long series (``--origins-min-rows``, default 1000 rows): every
method but neuralforecast's again at N - 1 earlier origins, H rows apart, ours trained anew at
each; per series the mean MASE and CRPS over the N origins and the coverage of all their
values. ``--split validation``
drops the test rows first and scores on the H rows before them, so settings can be chosen
without looking at the test rows. Every method gets its 80% interval as sample paths:
ours draws them, the baselines' and statsforecast's are Gaussians with the sigma of their
80% interval, ``(hi - lo) / (2 * 1.2816)``. MASE and CRPS are scaled by the in-sample MAE
of the seasonal-naive forecast; the panel summary is their geometric mean over series.

neuralforecast's models (``--nf-models``, default LSTM and DeepAR) are trained like ours:
once per file on all its series, at most ``--nf-steps`` steps and ``--nf-max-time`` seconds
(default ``--budget``) each, one thread, seed ``--seed``, early stopping after 12 validation
checks (every 25 steps) without a better 80% quantile loss on the last H training rows;
neuralforecast keeps the last weights, not the best. Input window: 3 seasons or 3 horizons,
whichever is longer (neuralforecast's default is 3 horizons), cut so the longest series
keeps one training and one validation window, and at least a season; a series shorter than
input window + H is not scored (``not_scored`` in its row). Both are probabilistic: LSTM
with a Normal and DeepAR with a Student-t DistributionLoss, scaler ``standard`` (DeepAR's
default, identity, leaves the Student-t at the data's scale); other settings are
neuralforecast's defaults (``--nf-overrides`` changes them). Their point forecast is the
mean neuralforecast reports; their "sample paths" are 100 quantiles at (i + 0.5) / 100,
which neuralforecast takes from ``--samples`` samples per step. DeepAR's are per-step
quantiles along the path fed its own means (neuralforecast's recursion), not joint paths.
``--add-nf FILE`` fits them on the series of an earlier results file and adds their cells
without rerunning anything else.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import multiprocessing
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
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
NF_MODELS = ("LSTM", "DeepAR")
NF_QUANTILES = [(i + 0.5) / 100 for i in range(100)]  # equal weights: stand-ins for samples

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


# co2 has empty cells; seattle-temps skips the hour of the spring clock change (2010-03-14
# 03:00), which the reader refuses as a missing date unless asked to fill it.
FILLED = {"co2", "seattle-temps"}


def load_panel_file(name: str) -> list[DatedSeries]:
    """The series of ``PANEL[name]``, gaps filled where ``FILLED`` says."""
    file, value, by = PANEL[name]
    return load_series(DATA / file, value=value, by=by, fill_gaps=name in FILLED)


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

    names = tuple(n for n in ("AutoETS", "AutoARIMA", "AutoTheta")
                  if n in args.stats_models.split(","))
    if not all(known(n) for n in names) and not args.no_stats:
        try:
            from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
        except ImportError:
            return {}
        got = dict(cache.get(key, {}))
        classes = {"AutoETS": AutoETS, "AutoARIMA": AutoARIMA, "AutoTheta": AutoTheta}
        for name in names:
            cls = classes[name]
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


@dataclass
class Peers:
    """neuralforecast's results on the series of one file."""

    forecasts: list[dict]  # per series: {model: (point [H], samples [Q, H], seconds)}
    not_scored: list[dict]  # per series: {model: why}
    fits: dict = field(default_factory=dict)  # per model: input size, steps, stop, seconds


def nf_input_size(trains: list[DatedSeries], h: int, m: int) -> int:
    """3 seasons or 3 horizons, whichever is longer, at most what leaves the longest series
    one training window and one validation window (H rows each)."""
    return min(3 * max(m, h), max(len(t.values) for t in trains) - 2 * h)


def nf_forecasts(trains: list[DatedSeries], h: int, m: int, args) -> Peers:
    """Each model of ``args.nf_models`` trained once on ``trains`` (those long enough for it)
    and its forecast of the next ``h`` rows of each."""
    peers = Peers([{} for _ in trains], [{} for _ in trains])
    size, least = nf_input_size(trains, h, m), max(m, 2)  # a window sees a season at least
    fit_on = [i for i, t in enumerate(trains) if size >= least and len(t.values) >= size + h]
    for i, t in enumerate(trains):
        if i not in fit_on and args.nf_models:
            print(f"  neuralforecast: {t.name} not scored, {len(t.values)} training rows",
                  flush=True)
            for name in args.nf_models:
                peers.not_scored[i][name] = (
                    f"too short: {len(t.values)} training rows for an input window of "
                    f"{max(size, least)} and {h} validation rows")
    if not fit_on:
        return peers
    for name in args.nf_models:
        try:
            fit, got = _nf_fit_predict(name, [trains[i] for i in fit_on], h, size, args)
        except Exception as e:  # a model that fails on a file is reported, like statsforecast
            print(f"  {name} failed: {type(e).__name__}: {e}", flush=True)
            for i in fit_on:
                peers.not_scored[i][name] = f"failed: {type(e).__name__}: {e}"
            continue
        peers.fits[name] = fit
        for i, (point, samples) in zip(fit_on, got):
            peers.forecasts[i][name] = (point, samples, fit["seconds"] / len(fit_on))
        print(f"  {name}: input {size}, {fit['steps']} steps ({fit['stop']}, best "
              f"{fit['best_step']}) in {fit['seconds']:.1f} s with the forecast", flush=True)
    return peers


def _nf_fit_predict(name: str, trains: list[DatedSeries], h: int, size: int,
                    args) -> tuple[dict, list[tuple[np.ndarray, np.ndarray]]]:
    """One neuralforecast model on ``trains``: its fit and, per series, (point [H], the
    NF_QUANTILES [Q, H])."""
    import pandas as pd
    from neuralforecast import NeuralForecast

    _quiet_lightning()
    # integer time steps: no model here uses the calendar, and pandas' frequencies would
    # have to match every file's dates
    df = pd.concat([pd.DataFrame({"unique_id": i, "ds": np.arange(len(t.values)),
                                  "y": t.values}) for i, t in enumerate(trains)])
    nf = NeuralForecast(models=[_nf_model(name, h, size, args)], freq=1)
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nf.fit(df, val_size=h)
        fc = nf.predict(quantiles=NF_QUANTILES)
    seconds = time.monotonic() - t0
    model = nf.models[0]
    steps = len(model.train_trajectories)
    valid = model.valid_trajectories
    fit = {"input_size": size, "steps": steps, "stop": _nf_stop_reason(model, steps, args),
           "best_step": int(min(valid, key=lambda v: v[1])[0]) if valid else None,
           "seconds": seconds}
    qcols = [c for c in fc.columns if c.startswith(f"{name}_ql")]
    got = []
    for i in range(len(trains)):
        one = fc[fc["unique_id"] == i].sort_values("ds")
        got.append((one[name].to_numpy(np.float64), one[qcols].to_numpy(np.float64).T))
    return fit, got


def _nf_model(name: str, h: int, size: int, args):
    """An untrained neuralforecast LSTM or DeepAR with this benchmark's settings."""
    from neuralforecast.losses.pytorch import DistributionLoss, MQLoss
    from neuralforecast.models import LSTM, DeepAR

    cls, distribution = {"LSTM": (LSTM, "Normal"), "DeepAR": (DeepAR, "StudentT")}[name]
    extra = {"trajectory_samples": args.samples} if cls is DeepAR else {}
    extra.update(json.loads(args.nf_overrides) if args.nf_overrides else {})
    return cls(h=h, input_size=size, alias=name,
               loss=DistributionLoss(distribution, level=[80], num_samples=args.samples),
               valid_loss=MQLoss(level=[80]), max_steps=args.nf_steps,
               val_check_steps=25, early_stop_patience_steps=12, scaler_type="standard",
               random_seed=args.seed, accelerator="cpu", devices=1,
               max_time={"seconds": args.nf_max_time}, enable_progress_bar=False,
               enable_model_summary=False, enable_checkpointing=False, logger=False,
               **extra)


def _nf_stop_reason(model, steps: int, args) -> str:
    if steps >= args.nf_steps:
        return "max_steps"
    early = getattr(model, "_early_stop_cb", None)
    return "early_stopping" if early is not None and early.wait_count >= early.patience \
        else "max_time"


def _quiet_lightning() -> None:
    # after the import: lightning sets its loggers to INFO when it is first imported
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def split_group(series: list[DatedSeries], args) -> tuple:
    """(frequency, H, season, training series, held-out actuals [H] per series); the origin
    is ``args.shift`` horizons before the split's own."""
    freq = infer_frequency(series[0].dates)
    h, m = horizon_of(freq), freq.season
    cut = h * ((2 if args.split == "validation" else 1) + args.shift)
    trains = [s.head(len(s.values) - cut) for s in series]
    actuals = [s.values[len(s.values) - cut: len(s.values) - cut + h] for s in series]
    return freq, h, m, trains, actuals


def scores(y: np.ndarray, point: np.ndarray, samples: np.ndarray | None,
           train: np.ndarray, m: int, seconds: float) -> dict:
    """One method's cell of a row: MASE, scaled CRPS, coverage, seconds, MASE by step."""
    e = evaluate(y, point, train, m, samples)
    return {"mase": e["mase"], "crps": e["scaled_crps"], "coverage": e["coverage"],
            "seconds": seconds, "mase_by_step": e["by_step"]["mase"]}


def label_of(name: str, series: list[DatedSeries], s: DatedSeries) -> str:
    return name if len(series) == 1 else f"{name}:{s.name}"


def stats_key(args, label: str) -> str:
    """The statsforecast cache key of a series at this run's split and origin."""
    return f"{args.split}:{label}" + (f"@-{args.shift}H" if args.shift else "")


def put_peers(row: dict, peers: Peers, i: int, y: np.ndarray, train: np.ndarray,
              m: int) -> None:
    """Series ``i``'s neuralforecast cells (and its models not scored) into ``row``."""
    for mname, (point, samples, secs) in peers.forecasts[i].items():
        row["methods"][mname] = scores(y, point, samples, train, m, secs)
    if peers.not_scored[i]:
        row["not_scored"] = {**row.get("not_scored", {}), **peers.not_scored[i]}
    if peers.fits:
        row["nf_fit"] = {**row.get("nf_fit", {}), **peers.fits}


def run_group(name: str, series: list[DatedSeries], args) -> list[dict]:
    """Every method on every series of one file; ours and neuralforecast's models trained
    once on all of them."""
    freq, h, m, trains, actuals = split_group(series, args)
    overrides = json.loads(args.overrides) if args.overrides else {}
    if args.stats_only:
        for s, t in zip(series, trains):
            label = label_of(name, series, s)
            stats_forecasts(t.values, h, m, stats_key(args, label), args)
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
    peers = nf_forecasts(trains, h, m, args)
    rows = []
    for i, (s, t, y) in enumerate(zip(series, trains, actuals)):
        label = label_of(name, series, s)
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
        for sname, (f, secs) in stats_forecasts(t.values, h, m, stats_key(args, label),
                                                 args).items():
            methods[sname] = (f.mean, f.samples, secs)
        row = {"series": label, "origin_horizons_back": args.shift,
               "freq": freq.name, "horizon": h, "season": m,
               "train_rows": len(t.values), "config": {
                   k: getattr(forecaster.config, k) for k in (
                       "context_length", "lags", "validation", "scaling", "likelihood",
                       "hidden_size", "num_layers", "batch_size", "lr")},
               "fit": {"steps": report.steps, "best_step": report.best_step,
                       "stop": report.stop_reason,
                       "temperature": float(forecaster.model.temperature)}, "methods": {}}
        for mname, (point, samples, secs) in methods.items():
            row["methods"][mname] = scores(y, point, samples, t.values, m, secs)
        put_peers(row, peers, i, y, t.values, m)
        rows.append(row)
        print_row(row)
    return rows


def print_row(row: dict) -> None:
    print("  " + row["series"] + "  " + "  ".join(
        f"{k} {v['mase']:.3f}/{v['crps']:.3f}/{v['coverage']:.2f}"
        for k, v in row["methods"].items()), flush=True)


def refresh_stats(rows: list[dict], args) -> None:
    """Put the statsforecast results now in the cache into ``rows`` (of an earlier run)."""
    by_label = {r["series"]: r for r in rows}
    for name in PANEL:
        series = load_panel_file(name)
        for s in series:
            label = label_of(name, series, s)
            row = by_label.get(label)
            if row is None:
                continue
            h, m = row["horizon"], row["season"]
            cut = h * (2 if args.split == "validation" else 1)
            t, y = s.values[: len(s.values) - cut], s.values[len(s.values) - cut:][:h]
            for sname, (f, secs) in stats_forecasts(t, h, m, stats_key(args, label),
                                                     args).items():
                row["methods"][sname] = scores(y, f.mean, f.samples, t, m, secs)


def add_peers(rows: list[dict], names: list[str], args) -> None:
    """Fit neuralforecast's models on the files ``names`` and put (or replace) their cells in
    ``rows`` (of an earlier run, same split); the other methods' cells stay as they were."""
    by_label = {r["series"]: r for r in rows}
    for name in names:
        series = load_panel_file(name)
        labels = [label_of(name, series, s) for s in series]
        if not any(label in by_label for label in labels):
            continue
        freq, h, m, trains, actuals = split_group(series, args)
        print(f"{name}: {freq.name}, H={h}, m={m}, {len(trains[0].values)} training rows",
              flush=True)
        peers = nf_forecasts(trains, h, m, args)
        for i, (label, t, y) in enumerate(zip(labels, trains, actuals)):
            row = by_label.get(label)
            if row is None:
                continue
            for mname in args.nf_models:  # earlier cells of a model not scored now go
                if mname not in peers.forecasts[i]:
                    row["methods"].pop(mname, None)
                if mname not in peers.not_scored[i]:
                    row.get("not_scored", {}).pop(mname, None)
            put_peers(row, peers, i, y, t.values, m)
            print_row(row)


def copy_peers(rows: list[dict], earlier: dict, args) -> None:
    """Add to ``rows`` the cells of the methods they lack from ``earlier`` (a results file of
    the same split and seed; neither its rnnkit nor anything fitted now is copied)."""
    if earlier["args"]["split"] != args.split or earlier["args"]["seed"] != args.seed:
        raise SystemExit(f"--peers-from: {earlier['args']['split']} split, seed "
                         f"{earlier['args']['seed']}; this run is {args.split}, {args.seed}")
    by_label = {r["series"]: r for r in earlier["series"]}
    for row in rows:
        old = by_label.get(row["series"], {"methods": {}})
        for name, cell in old["methods"].items():
            if name != "rnnkit" and name not in row["methods"]:
                row["methods"][name] = {**cell, "copied_from": args.peers_from}


def rolling_origins(rows: list[dict], names: list[str], args) -> dict:
    """Every method again at ``args.origins - 1`` earlier origins of each long series (H
    rows apart; ours trained anew at each, neuralforecast not run), scored with the split's
    own origin (``rows``): per series the mean MASE and CRPS over origins and the coverage
    of all their values; over series, the geometric means and the mean coverage."""
    nf_models, args.nf_models = args.nf_models, []
    by_label: dict[str, list[dict]] = {}
    for name in names:
        series = load_panel_file(name)
        if max(len(s.values) for s in series) < args.origins_min_rows:
            continue
        labels = {label_of(name, series, s) for s in series}
        for r in rows:
            if r["series"] in labels:
                by_label.setdefault(r["series"], []).append(r)
        for shift in range(1, args.origins):
            args.shift = shift
            for r in run_group(name, series, args):
                by_label.setdefault(r["series"], []).append(r)
    args.shift, args.nf_models = 0, nf_models
    table: dict[str, dict] = {}
    for label, got in by_label.items():
        methods = [n for n in got[0]["methods"] if all(n in r["methods"] for r in got)]
        table[label] = {n: {
            "mase": float(np.mean([r["methods"][n]["mase"] for r in got])),
            "crps": float(np.mean([r["methods"][n]["crps"] for r in got])),
            "coverage": float(np.mean([r["methods"][n]["coverage"] for r in got])),
            "origins": len(got)} for n in methods}
    names_all = list(dict.fromkeys(n for t in table.values() for n in t))
    summary = {n: panel_means([t[n] for t in table.values() if n in t]) for n in names_all}
    return {"origins": args.origins, "series": table, "summary": summary,
            "rows": [r for got in by_label.values() for r in got if r["origin_horizons_back"]]}


def print_rolling(rolling: dict) -> None:
    names = list(rolling["summary"])
    print(f"\nRolling origins ({rolling['origins']} per long series, H apart): mean MASE / "
          "mean scaled CRPS / coverage of all their values")
    print(f"{'series':<26}" + "".join(f"{n:>22}" for n in names))
    for label, cells in rolling["series"].items():
        print(f"{label:<26}" + "".join(
            f"{cells[n]['mase']:>8.3f}{cells[n]['crps']:>8.3f}{cells[n]['coverage']:>6.2f}"
            if n in cells else f"{'-':>22}" for n in names))
    print(f"{'geometric mean':<26}" + "".join(
        f"{rolling['summary'][n]['gmean_mase']:>8.3f}{rolling['summary'][n]['gmean_crps']:>8.3f}"
        f"{rolling['summary'][n]['mean_coverage']:>6.2f}" for n in names))


def panel_means(cells: list[dict]) -> dict:
    """One method's cells (mase, crps, coverage) over series -> the panel's geometric-mean
    MASE and CRPS and its mean coverage."""
    return {"gmean_mase": float(np.exp(np.mean([np.log(c["mase"]) for c in cells]))),
            "gmean_crps": float(np.exp(np.mean([np.log(c["crps"]) for c in cells]))),
            "mean_coverage": float(np.mean([c["coverage"] for c in cells])),
            "series": len(cells)}


def summarize(rows: list[dict]) -> dict:
    names = list(dict.fromkeys(n for r in rows for n in r["methods"]))
    out = {}
    for n in names:
        got = [r["methods"][n] for r in rows if n in r["methods"]]
        out[n] = {**panel_means(got), "seconds": float(np.sum([g["seconds"] for g in got]))}
    wins = [r["methods"]["rnnkit"]["mase"] < r["methods"]["SeasonalNaive"]["mase"] for r in rows]
    out["rnnkit"]["beats_seasonal_naive"] = f"{sum(wins)}/{len(wins)}"
    return out


def coverage_by_frequency(rows: list[dict]) -> dict:
    """``{freq: {method: mean 80% coverage over that frequency's series, "series": n}}``."""
    out: dict[str, dict] = {}
    for freq in dict.fromkeys(r["freq"] for r in rows):
        got = [r for r in rows if r["freq"] == freq]
        names = dict.fromkeys(n for r in got for n in r["methods"])
        out[freq] = {n: float(np.mean([r["methods"][n]["coverage"] for r in got
                                       if n in r["methods"]])) for n in names}
        out[freq]["series"] = len(got)
    return out


def print_coverage(by_freq: dict, names: list[str]) -> None:
    print("\n80% interval coverage by frequency (mean over its series)")
    print(f"{'frequency':<26}{'series':>7}" + "".join(f"{n:>15}" for n in names))
    for freq, cells in by_freq.items():
        print(f"{freq:<26}{cells['series']:>7d}" + "".join(
            f"{cells[n]:>15.2f}" if n in cells else f"{'-':>15}" for n in names))


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


def nf_models(spec: str, needed: bool) -> list[str]:
    """The neuralforecast models named in ``spec``; none where neuralforecast is not
    installed, unless they are ``needed``."""
    names = [n for n in spec.split(",") if n]
    unknown = [n for n in names if n not in NF_MODELS]
    if unknown:
        raise SystemExit(f"--nf-models: unknown {', '.join(unknown)}; known: "
                         f"{', '.join(NF_MODELS)}")
    try:
        import neuralforecast  # noqa: F401
    except ImportError:
        if needed:
            raise SystemExit("--add-nf needs neuralforecast: "
                             "see benchmarks/requirements-forecast.txt") from None
        return []
    return names


def versions() -> dict:
    """The installed versions of the peers' packages (None where absent)."""
    out = {}
    for package in ("statsforecast", "neuralforecast", "pytorch-lightning"):
        try:
            out[package.replace("-", "_")] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package.replace("-", "_")] = None
    return out


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
                   help="a results JSON: redo its summary with the statsforecast cache "
                        "(its budget and split)")
    p.add_argument("--stats-only", action="store_true",
                   help="only fill the statsforecast cache")
    p.add_argument("--stats-cache",
                   default=str(ROOT / "benchmarks" / "results" / "forecast-stats.json"))
    p.add_argument("--nf-models", default=",".join(NF_MODELS),
                   help="neuralforecast models to run ('' for none)")
    p.add_argument("--nf-steps", type=int, default=1000,
                   help="training steps of each neuralforecast model per file at most")
    p.add_argument("--nf-max-time", type=float, default=None,
                   help="training seconds of each neuralforecast model per file (--budget)")
    p.add_argument("--nf-overrides", default="",
                   help='JSON of neuralforecast model arguments, e.g. {"learning_rate": 1e-3}')
    p.add_argument("--add-nf", default="",
                   help="a results JSON: fit the --nf-models on its series (--only: those "
                        "files) and add their cells, nothing else rerun")
    p.add_argument("--stats-models", default="AutoETS,AutoARIMA,AutoTheta",
                   help="the statsforecast models fitted where the cache has none")
    p.add_argument("--origins", type=int, default=1,
                   help="origins per long series (each H rows before the next, the last the "
                        "split's own), scored in a rolling-origin table beside the main one")
    p.add_argument("--origins-min-rows", type=int, default=1000,
                   help="a series is long (gets --origins) from this many rows")
    p.add_argument("--peers-from", default="",
                   help="copy the cells of methods this run did not fit (e.g. neuralforecast's "
                        "without it installed) from an earlier results file of the same split")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "forecast.json"))
    args = p.parse_args()
    args.shift = 0  # origins before the split's own, in horizons (rolling origins set it)
    torch.set_num_threads(args.threads)
    names = [n for n in PANEL if not args.only or n in args.only.split(",")]
    earlier = args.restats or args.add_nf
    if args.restats and args.add_nf and Path(args.restats) != Path(args.add_nf):
        p.error("--restats and --add-nf must name the same file")
    if earlier:  # its rows were made with its budget and split
        old = json.loads(Path(earlier).read_text())
        args.budget, args.split = old["args"]["budget"], old["args"]["split"]
    args.nf_models = nf_models(args.nf_models, needed=bool(args.add_nf))
    if args.nf_max_time is None:
        args.nf_max_time = args.budget
    rows = []
    if earlier:  # an earlier run's rows; statsforecast from its cache, neuralforecast refit
        rows = old["series"]
        if args.restats:
            refresh_stats(rows, args)
        if args.add_nf:
            add_peers(rows, names, args)
        names = []
    for name in names:
        series = load_panel_file(name)
        rows += run_group(name, series, args)
    if args.stats_only:
        return
    if args.peers_from:
        copy_peers(rows, json.loads(Path(args.peers_from).read_text()), args)
    rolling = rolling_origins(rows, names, args) if args.origins > 1 else None
    summary = summarize(rows)
    print_table(rows, summary)
    by_freq = coverage_by_frequency(rows)
    print_coverage(by_freq, list(summary))
    if rolling:
        print_rolling(rolling)
    result = {"args": vars(args), "summary": summary, "coverage_by_frequency": by_freq,
              "series": rows, "rolling": rolling,
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          **versions(), "threads": args.threads}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
