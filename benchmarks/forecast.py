"""rnnkit's DeepAR forecaster beside Naive, SeasonalNaive, statsforecast's AutoETS,
AutoARIMA and AutoTheta, and neuralforecast's LSTM and DeepAR, on one of two panels of real
series.

``--panel tuned`` (default): the 13 series of ../shared/data/ the forecaster's defaults were
chosen on, last H rows held out, H = 2 seasons for hourly data, 10 for yearly, one season
otherwise. ``--panel development`` (issue 28): every dated series of ../shared/data/ and
../shared/data/fpp/ (63 series in 21 files: 17 single series and 4 long panels, prison's 32
quarterly series of 48 rows among them), M4's horizons (hourly 48, daily 14, weekly 13,
monthly 18, quarterly 8, yearly 6), two test origins per series (the last H rows and the H
before them), rnnkit's default budget of 60 s per file, neuralforecast's LSTM only.

    python benchmarks/forecast.py --budget 120        # writes benchmarks/results/forecast.json
    python benchmarks/forecast.py --budget 20 --only airpassengers,lynx --out /tmp/x.json
    python benchmarks/forecast.py --split validation  # score on the last H *training* rows
    python benchmarks/forecast.py --add-nf benchmarks/results/forecast.json  # add LSTM, DeepAR
    python benchmarks/forecast.py --origins 5   # + 4 earlier origins of each long series
    python benchmarks/forecast.py --panel development --seeds 0 1 2  # forecast-panel-*.json
    python benchmarks/forecast.py --panel development --split validation  # to choose on

``--origins N`` scores every method at N origins H rows apart, ours trained anew at each, on
the files whose longest series has ``--origins-min-rows`` rows (tuned: 1000, development:
every file). ``--split validation`` drops the panel's test rows (its test origins' H rows
each) and scores on the H rows before them, so settings can be chosen without looking at the
test rows. A series with too few rows at an origin for the scale of MASE (a season) or for H
held-out rows is skipped there for every method (``skipped`` in the JSON); one that rnnkit's
library refuses or leaves out as too short to train on (``windows.too_short``) has no rnnkit
cell there (``not_scored``); one too short for the network alone is forecast by the
statistical forecasts (``Forecaster.statistical_series``) and scored. Per series, each
method's MASE, CRPS and coverage are its means over the series' origins and seeds where
rnnkit has a forecast (all of them where it has none); ``summary`` gives, per subset (all,
single series, each long panel, each frequency), their geometric means (coverage: the mean)
over the series a method scored, and the series where rnnkit's MASE is below SeasonalNaive's
(a series rnnkit has no forecast of counts as a loss). Every method gets its 80% interval as
sample paths: ours draws them, the baselines' and statsforecast's are Gaussians with the
sigma of their 80% interval, ``(hi - lo) / (2 * 1.2816)``. MASE and CRPS are scaled by the
in-sample MAE of the seasonal-naive forecast.

statsforecast and neuralforecast are benchmark only, never library dependencies; their pins
and the install command are in benchmarks/requirements-forecast.txt. Without them the script
compares against ours only.

neuralforecast's models (``--nf-models``, default LSTM and DeepAR) are trained like ours:
once per file on all its series, at most ``--nf-steps`` steps and ``--nf-max-time`` seconds
(default ``--budget``) each, one thread, seed ``--seeds``, early stopping after 12 validation
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

``--variants`` also scores, from the same fits, the Theta method alone and fixed
combinations of rnnkit's sample paths with it (``VARIANTS``; run with ``combine=""`` in
``--overrides`` to combine the network alone, as the fixed-share study in
docs/forecast-panel.md did before the share was chosen per fit).

``--save-paths DIR`` writes, per series and origin, an ``.npz`` of the network's own sample
paths (the combination off), the forecast's, the training and held-out rows, and the
combination's settings: rules for combining can then be studied without training again.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.data.errors import DataError  # noqa: E402
from rnnkit.forecasting import infer_frequency, load_series, naive, seasonal_naive, train_forecaster  # noqa: E402
from rnnkit.forecasting.baselines import gaussian_forecast  # noqa: E402
from rnnkit.forecasting.combination import combine  # noqa: E402
from rnnkit.forecasting.data import DatedSeries  # noqa: E402
from rnnkit.forecasting.metrics import evaluate  # noqa: E402
from rnnkit.forecasting.model import Forecast  # noqa: E402
from rnnkit.forecasting.theta import theta  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
Z80 = 1.2815515655446004  # the 0.9 quantile of N(0, 1)
NF_MODELS = ("LSTM", "DeepAR")
NF_QUANTILES = [(i + 0.5) / 100 for i in range(100)]  # equal weights: stand-ins for samples

# name -> (file under DATA, value column, id column for long format). PANEL is the panel the
# forecaster's defaults were chosen on (``--panel tuned``, H by horizon_of's old rule).
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

# The development panel of issue 28 (``--panel development``): every dated series of DATA and
# DATA/fpp, M4's horizons. Not in it: fpp/bank_calls (5-minute business hours: its dates have
# gaps), fpp/bjsales and fpp/eustocks (no date column). Covariates (seatbelts, insurance) are
# not read: the target alone, as for every other file.
DEV_PANEL = {
    **PANEL,
    "prison": ("fpp/prison.csv", "count", "series"),
    "aus_arrivals": ("fpp/aus_arrivals.csv", "Arrivals", "Origin"),
    "departures": ("fpp/departures.csv", "thousands", "kind"),
    "souvenirs": ("fpp/souvenirs.csv", "Sales", None),
    "canadian_gas": ("fpp/canadian_gas.csv", "Volume", None),
    "ausair": ("fpp/ausair.csv", "ausair", None),
    "austa": ("fpp/austa.csv", "austa", None),
    "oil": ("fpp/oil.csv", "oil", None),
    "sunspot_month": ("fpp/sunspot_month.csv", "sunspots", None),
    "seatbelts": ("fpp/seatbelts.csv", "DriversKilled", None),
    "insurance": ("fpp/insurance.csv", "Quotes", None),
    "uschange": ("fpp/uschange.csv", "Consumption", None),
}
PANELS = {"tuned": PANEL, "development": DEV_PANEL}
M4_HORIZONS = {"half-hourly": 96, "hourly": 48, "daily": 14, "weekly": 13, "monthly": 18,
               "quarterly": 8, "yearly": 6}  # half-hourly is not in M4: 2 days, as hourly
# test origins per series, H rows apart; --split validation scores before all of them
TEST_ORIGINS = {"tuned": 1, "development": 2}
# the methods every series is scored with (statsforecast's where installed)
BASELINES = ("Naive", "SeasonalNaive")


# co2 has empty cells; seattle-temps skips the hour of the spring clock change (2010-03-14
# 03:00), which the reader refuses as a missing date unless asked to fill it.
FILLED = {"co2", "seattle-temps"}


def load_panel_file(name: str) -> list[DatedSeries]:
    """The series of ``DEV_PANEL[name]`` (PANEL's files included), gaps filled where
    ``FILLED`` says."""
    file, value, by = DEV_PANEL[name]
    return load_series(DATA / file, value=value, by=by, fill_gaps=name in FILLED)


def horizon_of(freq, panel: str = "tuned") -> int:
    """H: M4's for the development panel; for the tuned one, 2 seasons for hourly data, 10
    for yearly, one season otherwise."""
    if panel == "development":
        return M4_HORIZONS[freq.name]
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
        # whole or not at all: another run may be reading the cache
        tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(cache_path)
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
    """(frequency, H, season, training series, held-out actuals [H] per series). The origin
    is ``args.shift`` horizons before the split's own: the test split's is the last H rows;
    the validation split drops the panel's test rows (``TEST_ORIGINS`` horizons) and scores
    the H rows before them."""
    panel = getattr(args, "panel", "tuned")
    freq = infer_frequency(series[0].dates)
    h, m = horizon_of(freq, panel), freq.season
    back = getattr(args, "shift", 0) + (TEST_ORIGINS[panel] if args.split == "validation" else 0)
    cut = h * (1 + back)
    trains = [s.head(max(0, len(s.values) - cut)) for s in series]
    actuals = [s.values[max(0, len(s.values) - cut):][:h] for s in series]
    return freq, h, m, trains, actuals


def too_short(train: np.ndarray, y: np.ndarray, h: int, m: int) -> str:
    """Why no method can be scored on a series at this origin ('' when one can): the scale
    of MASE needs more rows than a season, and the held-out rows must be H."""
    if len(y) < h or len(train) < max(m + 1, h):
        return (f"{len(train)} training rows and {len(y)} held-out ones at this origin; "
                f"at least {max(m + 1, h)} and {h} needed")
    return ""


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


def fit_rnnkit(name: str, trains: list[DatedSeries], h: int, args) -> tuple:
    """(forecaster or None, report or None, seconds, why not trained); ours trained once on
    every training series of a file (the library leaves out those too short to train on,
    and refuses when all are)."""
    overrides = json.loads(args.overrides) if args.overrides else {}
    t0 = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # left-out series are named in the report
            forecaster, report = train_forecaster(trains, h, max_time=args.budget,
                                                  seed=args.seed, **overrides)
    except DataError as e:
        print(f"{name}: rnnkit refused: {e}", flush=True)
        return None, None, time.monotonic() - t0, f"refused: {e}"
    seconds = time.monotonic() - t0
    print(f"{name}: H={h}, {len(trains[0].values)} training rows; {report.steps} steps "
          f"({report.stop_reason}, best {report.best_step}) in {seconds:.0f} s; context "
          f"{forecaster.config.context_length}, lags {forecaster.config.lags}, temperature "
          f"{temperature(forecaster)}" + (f"; {report.refit}" if report.refit else ""),
          flush=True)
    return forecaster, report, seconds, ""


def temperature(forecaster) -> float | None:
    """The network's sampling temperature (None: no network, every series too short)."""
    return None if forecaster.model is None else float(forecaster.model.temperature)


def rnnkit_cell(forecaster, report, fit_seconds: float, s: DatedSeries, t: DatedSeries,
                h: int, n_series: int, args) -> tuple | str:
    """Ours on one series: (point, samples, seconds), or why it has no forecast."""
    if s.name in report.left_out:
        return (f"left out of training: {report.left_out[s.name]} rows, too short at "
                f"H={h} (windows.too_short)")
    t1 = time.monotonic()
    fc = forecaster.forecast(t.values, t.dates, h, num_samples=args.samples,
                             series=s.name, seed=args.seed)
    return fc.quantile(0.5), fc.samples, fit_seconds / n_series + time.monotonic() - t1


# --variants: ours combined with the Theta forecast, (name, weight of ours, how)
VARIANTS = (("rnnkit+Theta q.5", 0.5, "quantiles"), ("rnnkit+Theta q.7", 0.7, "quantiles"),
            ("rnnkit+Theta mix.5", 0.5, "mixture"))


def variant_cells(ours: tuple, train: np.ndarray, h: int, m: int, args) -> dict:
    """Theta alone and ours combined with it (``VARIANTS``): {name: (point, samples, s)}."""
    _, samples, secs = ours
    levels = (0.1, 0.5, 0.9)
    net = Forecast(np.arange(h), samples, samples.mean(0), np.quantile(samples, levels, axis=0),
                   levels)
    t1 = time.monotonic()
    th = theta(train, h, m, num_samples=args.samples, seed=args.seed)
    out = {"Theta": (th.mean, th.samples, time.monotonic() - t1)}
    for vname, weight, how in VARIANTS:
        c = combine(net, th, weight, how)
        out[vname] = (c.quantile(0.5), c.samples, secs)
    return out


def paths_file_stem(row: dict) -> str:
    """The ``--save-paths`` file name (without ``.npz``) of a result row: series, origin, seed."""
    name = f"{row['series']}@{row['origin_horizons_back']}-s{row['seed']}"
    return name.replace("/", "_").replace(":", "_")


def save_paths(forecaster, s: DatedSeries, t: DatedSeries, y: np.ndarray, samples: np.ndarray,
               row: dict, args) -> None:
    """``--save-paths``: the network's paths alone and the forecast's for one row."""
    cfg = forecaster.config
    combine, cfg.combine = cfg.combine, ""
    try:
        net = forecaster.forecast(t.values, t.dates, len(y), num_samples=args.samples,
                                  series=s.name, seed=args.seed).samples
    finally:
        cfg.combine = combine
    Path(args.save_paths).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(Path(args.save_paths) / f"{paths_file_stem(row)}.npz", network=net,
                        forecast=samples, train=t.values, actual=y, season=row["season"],
                        weights=cfg.combine_weights if cfg.combine else (1.0, 0.0, 0.0),
                        theta_spread=cfg.theta_spread or 1.0, panel_file=row["file"])


def run_group(name: str, series: list[DatedSeries], args) -> list[dict]:
    """Every method on every series of one file at one origin; ours and neuralforecast's
    models trained once on all of them (those long enough: ``too_short``)."""
    freq, h, m, trains, actuals = split_group(series, args)
    short = [too_short(t.values, y, h, m) for t, y in zip(trains, actuals)]
    scored = [i for i, why in enumerate(short) if not why]
    if args.stats_only:
        for i in scored:
            label = label_of(name, series, series[i])
            stats_forecasts(trains[i].values, h, m, stats_key(args, label), args)
            print(f"{label}: statsforecast done", flush=True)
        return []
    rows = [row_head(name, series, s, t, freq, h, m, args) for s, t in zip(series, trains)]
    for row, why in zip(rows, short):
        if why:
            row["skipped"] = why
    if not scored:
        print(f"{name}: skipped at {args.shift} horizons back: {short[0]}", flush=True)
        return rows
    fit_on = [trains[i] for i in scored]
    forecaster, report, fit_seconds, refused = fit_rnnkit(name, fit_on, h, args)
    peers = nf_forecasts(fit_on, h, m, args)
    for k, i in enumerate(scored):
        s, t, y, row = series[i], trains[i], actuals[i], rows[i]
        label = row["series"]
        ours = refused or rnnkit_cell(forecaster, report, fit_seconds, s, t, h, len(fit_on),
                                      args)
        methods = {}
        if isinstance(ours, str):
            row["not_scored"] = {"rnnkit": ours}
        else:
            methods["rnnkit"] = ours
            if args.variants:
                methods.update(variant_cells(ours, t.values, h, m, args))
            if args.save_paths and s.name in forecaster.series_names:  # the network's
                save_paths(forecaster, s, t, y, ours[1], row, args)
            row["config"] = {k: getattr(forecaster.config, k) for k in (
                "context_length", "lags", "validation", "scaling", "likelihood",
                "hidden_size", "num_layers", "batch_size", "lr")}
            row["fit"] = {"steps": report.steps, "best_step": report.best_step,
                          "stop": report.stop_reason, "seconds": fit_seconds,
                          "temperature": temperature(forecaster),
                          "combine": report.combine}
        for base_name, fn in (("Naive", lambda v: naive(v, h)),
                              ("SeasonalNaive", lambda v: seasonal_naive(v, h, m))):
            t1 = time.monotonic()
            b = fn(t.values)
            methods[base_name] = (b.mean, b.samples, time.monotonic() - t1)
        for sname, (f, secs) in stats_forecasts(t.values, h, m, stats_key(args, label),
                                                 args).items():
            methods[sname] = (f.mean, f.samples, secs)
        for mname, (point, samples, secs) in methods.items():
            row["methods"][mname] = scores(y, point, samples, t.values, m, secs)
        put_peers(row, peers, k, y, t.values, m)
        print_row(row)
    return rows


def row_head(name: str, series: list[DatedSeries], s: DatedSeries, t: DatedSeries, freq,
             h: int, m: int, args) -> dict:
    """A row's description, before any method's cell."""
    return {"series": label_of(name, series, s), "file": name,
            "origin_horizons_back": args.shift, "seed": args.seed, "freq": freq.name,
            "horizon": h, "season": m, "train_rows": len(t.values), "methods": {}}


def print_row(row: dict) -> None:
    print("  " + row["series"] + "  " + "  ".join(
        f"{k} {v['mase']:.3f}/{v['crps']:.3f}/{v['coverage']:.2f}"
        for k, v in row["methods"].items()), flush=True)


def earlier_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """An earlier run's scored rows by (file, origin, seed)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["methods"]:
            key = (file_of(r), r.get("origin_horizons_back", 0), r.get("seed", 0))
            groups.setdefault(key, []).append(r)
    return groups


def file_of(row: dict) -> str:
    """The PANEL name of a row's file (rows of runs before 'file' was kept: its label's)."""
    return row.get("file", row["series"].split(":")[0])


def refresh_stats(rows: list[dict], args) -> None:
    """Put the statsforecast results now in the cache into ``rows`` (of an earlier run)."""
    for (name, shift, _), got in earlier_groups(rows).items():
        args.shift = shift
        series = load_panel_file(name)
        _, h, m, trains, actuals = split_group(series, args)
        by_label = {r["series"]: r for r in got}
        for s, t, y in zip(series, trains, actuals):
            label = label_of(name, series, s)
            if label in by_label:
                for sname, (f, secs) in stats_forecasts(t.values, h, m, stats_key(args, label),
                                                         args).items():
                    by_label[label]["methods"][sname] = scores(y, f.mean, f.samples,
                                                               t.values, m, secs)
    args.shift = 0


def add_peers(rows: list[dict], names: list[str], args) -> None:
    """Fit neuralforecast's models on the files ``names`` at each origin and seed of
    ``rows`` (of an earlier run, same split) and put (or replace) their cells there; the
    other methods' cells stay as they were."""
    for (name, shift, seed), got in earlier_groups(rows).items():
        if name not in names:
            continue
        args.shift, args.seed = shift, seed
        series = load_panel_file(name)
        freq, h, m, trains, actuals = split_group(series, args)
        scored = [i for i, (t, y) in enumerate(zip(trains, actuals))
                  if not too_short(t.values, y, h, m)]
        print(f"{name}: {freq.name}, H={h}, m={m}, {len(trains[0].values)} training rows, "
              f"{shift} horizons back, seed {seed}", flush=True)
        peers = nf_forecasts([trains[i] for i in scored], h, m, args)
        by_label = {r["series"]: r for r in got}
        for k, i in enumerate(scored):
            row = by_label.get(label_of(name, series, series[i]))
            if row is None:
                continue
            for mname in args.nf_models:  # earlier cells of a model not scored now go
                if mname not in peers.forecasts[k]:
                    row["methods"].pop(mname, None)
                if mname not in peers.not_scored[k]:
                    row.get("not_scored", {}).pop(mname, None)
            put_peers(row, peers, k, actuals[i], trains[i].values, m)
            print_row(row)
    args.shift = 0


def copy_peers(rows: list[dict], earlier: dict, args) -> None:
    """Add to ``rows`` the cells of the methods they lack from ``earlier`` (a results file of
    the same split and seed; neither its rnnkit nor anything fitted now is copied)."""
    seeds = earlier["args"].get("seeds", [earlier["args"]["seed"]])
    if earlier["args"]["split"] != args.split or seeds != args.seeds:
        raise SystemExit(f"--peers-from: {earlier['args']['split']} split, seeds {seeds}; "
                         f"this run is {args.split}, {args.seeds}")
    def key(r: dict) -> tuple:
        return r["series"], r.get("origin_horizons_back", 0), r.get("seed", seeds[0])
    by_key = {key(r): r for r in earlier["series"]}
    for row in rows:
        old = by_key.get(key(row), {"methods": {}})
        for name, cell in old["methods"].items():
            if name != "rnnkit" and name not in row["methods"]:
                row["methods"][name] = {**cell, "copied_from": args.peers_from}


def series_table(rows: list[dict]) -> dict[str, dict]:
    """Per series: each method's mean MASE, scaled CRPS, coverage and seconds over the
    series' rows (origins and seeds) where rnnkit has a forecast (all its rows where it has
    none), so that every method is scored where ours is; and why ours has none where so."""
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        if r["methods"]:
            by_label.setdefault(r["series"], []).append(r)
    table = {}
    for label, got in by_label.items():
        ours = [r for r in got if "rnnkit" in r["methods"]] or got
        cells = {}
        for n in dict.fromkeys(n for r in ours for n in r["methods"]):
            have = [r["methods"][n] for r in ours if n in r["methods"]]
            cells[n] = {k: float(np.mean([c[k] for c in have]))
                        for k in ("mase", "crps", "coverage", "seconds")}
            cells[n]["rows"] = len(have)
        table[label] = {"file": file_of(got[0]), "freq": got[0]["freq"], "rows": len(got),
                        "methods": cells, "rnnkit_not_scored": [
                            r["not_scored"]["rnnkit"] for r in got
                            if "rnnkit" in r.get("not_scored", {})]}
    return table


def subsets(table: dict[str, dict]) -> dict[str, list[str]]:
    """The series of each subset: all, single series (files of one), each long panel (a file
    of several series), each frequency."""
    out = {"all": list(table), "single series": [k for k in table if ":" not in k]}
    for file in dict.fromkeys(t["file"] for k, t in table.items() if ":" in k):
        out[f"panel {file}"] = [k for k, t in table.items() if t["file"] == file]
    for freq in dict.fromkeys(t["freq"] for t in table.values()):
        out[freq] = [k for k, t in table.items() if t["freq"] == freq]
    return out


def panel_means(cells: list[dict]) -> dict:
    """One method's cells (mase, crps, coverage) over series -> the panel's geometric-mean
    MASE and CRPS and its mean coverage."""
    return {"gmean_mase": float(np.exp(np.mean([np.log(c["mase"]) for c in cells]))),
            "gmean_crps": float(np.exp(np.mean([np.log(c["crps"]) for c in cells]))),
            "mean_coverage": float(np.mean([c["coverage"] for c in cells])),
            "series": len(cells)}


def subset_summary(table: dict[str, dict], labels: list[str]) -> dict:
    """Each method's panel_means (and summed seconds) over the subset's series it scored, and
    the series where its MASE is below SeasonalNaive's (a series a method has no forecast of
    counts as a loss), for rnnkit also on its own."""
    names = dict.fromkeys(n for k in labels for n in table[k]["methods"])
    sn = [table[k]["methods"] for k in labels if "SeasonalNaive" in table[k]["methods"]]

    def wins_of(name: str) -> int:
        return sum(name in c and c[name]["mase"] < c["SeasonalNaive"]["mase"] for c in sn)

    methods = {}
    for n in names:
        cells = [table[k]["methods"][n] for k in labels if n in table[k]["methods"]]
        methods[n] = {**panel_means(cells), "seconds": float(sum(c["seconds"] for c in cells))}
        if n != "SeasonalNaive":  # the bar's 80% of series, measured for every method alike
            methods[n]["beats_seasonal_naive"] = wins_of(n)
    wins = wins_of("rnnkit")
    return {"series": len(labels), "methods": methods, "rnnkit_beats_seasonal_naive": {
        "wins": wins, "series": len(sn), "share": wins / len(sn) if sn else None,
        "rnnkit_not_scored": sum("rnnkit" not in c for c in sn)},
        "rnnkit_vs": {n: paired(table, labels, n) for n in names if n != "rnnkit"}}


def paired(table: dict[str, dict], labels: list[str], name: str) -> dict:
    """rnnkit's and ``name``'s panel_means over the series of ``labels`` both scored (the
    methods' own summaries may cover different series: a time-out, a refusal)."""
    both = [table[k]["methods"] for k in labels
            if "rnnkit" in table[k]["methods"] and name in table[k]["methods"]]
    if not both:
        return {"series": 0}
    return {"series": len(both), "rnnkit": panel_means([c["rnnkit"] for c in both]),
            name: panel_means([c[name] for c in both])}


def summarize(rows: list[dict]) -> dict:
    """``{subset: subset_summary}`` over ``series_table(rows)``."""
    table = series_table(rows)
    return {name: subset_summary(table, labels) for name, labels in subsets(table).items()}


def print_table(rows: list[dict], summary: dict, title: str) -> None:
    """Every scored row, then the subsets' summaries."""
    names = list(summary["all"]["methods"])
    print(f"\nMASE / scaled CRPS / 80% coverage ({title})")
    print(f"{'series':<34}" + "".join(f"{n:>22}" for n in names))
    for r in rows:
        if not r["methods"]:
            continue
        label = f"{r['series']} -{r.get('origin_horizons_back', 0)}H s{r.get('seed', 0)}"
        print(f"{label:<34}" + "".join(
            f"{c['mase']:>8.3f}{c['crps']:>8.3f}{c['coverage']:>6.2f}" if c else f"{'-':>22}"
            for c in (r["methods"].get(n) for n in names)))
    print("\nPer subset: geometric-mean MASE / geometric-mean scaled CRPS / mean coverage "
          "(series: a method's mean over its origins and seeds); rnnkit < SeasonalNaive")
    print(f"{'subset':<34}" + "".join(f"{n:>22}" for n in names) + f"{'beats SN':>12}")
    for subset, got in summary.items():
        cells = [got["methods"].get(n) for n in names]
        wins = got["rnnkit_beats_seasonal_naive"]
        print(f"{subset + ' (' + str(got['series']) + ')':<34}" + "".join(
            f"{c['gmean_mase']:>8.3f}{c['gmean_crps']:>8.3f}{c['mean_coverage']:>6.2f}"
            if c else f"{'-':>22}" for c in cells) + f"{wins['wins']:>8d}/{wins['series']:<3d}"
              + (f" (rnnkit: no forecast of {wins['rnnkit_not_scored']})"
                 if wins["rnnkit_not_scored"] else ""))
    print("\nSeries whose MASE is below SeasonalNaive's, every method (the bar: 80%)")
    others = [n for n in names if n != "SeasonalNaive"]
    print(f"{'subset':<34}" + "".join(f"{n:>14}" for n in others))
    for subset, got in summary.items():
        print(f"{subset + ' (' + str(got['series']) + ')':<34}" + "".join(
            f"{got['methods'][n]['beats_seasonal_naive']:>14d}" if n in got["methods"]
            else f"{'-':>14}" for n in others))


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


def parse_args() -> argparse.Namespace:
    """The command line; the defaults that depend on ``--panel`` filled in."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--panel", choices=tuple(PANELS), default="tuned",
                   help="tuned: the 13 series the defaults were chosen on; development: "
                        "issue 28's panel of every dated series of ../shared/data and fpp/")
    p.add_argument("--budget", type=float, default=None,
                   help="training seconds per file (tuned: 120, development: 60, the "
                        "library's default)")
    p.add_argument("--only", default="", help="comma-separated names of the panel's files")
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--variants", action="store_true",
                   help="also score Theta and ours combined with it (VARIANTS)")
    p.add_argument("--save-paths", default="", metavar="DIR",
                   help="write each row's sample paths to DIR (save_paths)")
    p.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0],
                   help="rnnkit (and neuralforecast) is trained once per seed")
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
    p.add_argument("--stats-cache", default=None,
                   help="statsforecast's forecasts by series and origin (default: "
                        "results/forecast-stats.json, development: forecast-panel-stats.json)")
    p.add_argument("--nf-models", default=None,
                   help="neuralforecast models to run ('' for none; default LSTM,DeepAR, "
                        "development: LSTM)")
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
    p.add_argument("--origins", type=int, default=None,
                   help="origins per series, each H rows before the next, the last the "
                        "split's own (default: the test split of the development panel 2, "
                        "else 1)")
    p.add_argument("--origins-min-rows", type=int, default=None,
                   help="only a series of this many rows gets --origins (tuned: 1000, "
                        "development: 0)")
    p.add_argument("--peers-from", default="",
                   help="copy the cells of methods this run did not fit (e.g. neuralforecast's "
                        "without it installed) from an earlier results file of the same split")
    p.add_argument("--out", default=None,
                   help="results JSON (tuned: results/forecast.json, development: "
                        "results/forecast-panel-SPLIT-sSEEDS.json)")
    args = p.parse_args()
    if args.restats and args.add_nf and Path(args.restats) != Path(args.add_nf):
        p.error("--restats and --add-nf must name the same file")
    earlier = args.restats or args.add_nf
    if earlier:  # its rows were made with its panel, budget and split
        old = json.loads(Path(earlier).read_text())["args"]
        args.panel, args.budget, args.split = old.get("panel", "tuned"), old["budget"], old["split"]
    dev = args.panel == "development"
    results = ROOT / "benchmarks" / "results"
    defaults = {
        "budget": 60 if dev else 120,
        "origins": TEST_ORIGINS[args.panel] if dev and args.split == "test" else 1,
        "origins_min_rows": 0 if dev else 1000,
        "nf_models": "LSTM" if dev else ",".join(NF_MODELS),
        "stats_cache": str(results / ("forecast-panel-stats.json" if dev
                                      else "forecast-stats.json")),
        "out": str(results / (f"forecast-panel-{args.split}-s{'-'.join(map(str, args.seeds))}"
                              ".json" if dev else "forecast.json"))}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [n for n in args.only.split(",") if n and n not in PANELS[args.panel]]
    if unknown:
        p.error(f"--only: {', '.join(unknown)} not in the {args.panel} panel: "
                f"{', '.join(PANELS[args.panel])}")
    args.nf_models = nf_models(args.nf_models, needed=bool(args.add_nf))
    if args.nf_max_time is None:
        args.nf_max_time = args.budget
    args.shift, args.seed = 0, args.seeds[0]  # the origin and seed run_group works at
    return args


def run_panel(names: list[str], args) -> list[dict]:
    """Every file of ``names`` at each seed and origin (``args.origins`` where its longest
    series has ``args.origins_min_rows`` rows, else the split's own)."""
    rows = []
    for seed in args.seeds:
        args.seed = seed
        for name in names:
            series = load_panel_file(name)
            long = max(len(s.values) for s in series) >= args.origins_min_rows
            for shift in range(args.origins if long else 1):
                args.shift = shift
                rows += run_group(name, series, args)
    args.shift, args.seed = 0, args.seeds[0]
    return rows


def machine() -> dict:
    """What ran it: versions, threads, CPU, the date, and the commit of the library."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"python": platform.python_version(), "torch": torch.__version__, **versions(),
            "cpu": cpu, "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
            "commit": git("rev-parse", "--short", "HEAD"),
            "src_changed": bool(git("status", "--porcelain", "--", "src"))}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in PANELS[args.panel] if not args.only or n in args.only.split(",")]
    earlier = args.restats or args.add_nf
    if earlier:  # an earlier run's rows; statsforecast from its cache, neuralforecast refit
        old = json.loads(Path(earlier).read_text())
        rows = old["series"]
        if args.restats:
            refresh_stats(rows, args)
        if args.add_nf:
            add_peers(rows, names, args)
    else:
        rows = run_panel(names, args)
    if args.stats_only:
        return
    if args.peers_from:
        copy_peers(rows, json.loads(Path(args.peers_from).read_text()), args)
    summary = summarize(rows)
    print_table(rows, summary, f"{args.panel} panel, {args.split} split")
    by_seed = ({seed: summarize([r for r in rows if r.get("seed") == seed])
                for seed in args.seeds} if len(args.seeds) > 1 else None)
    skipped = [{k: r[k] for k in ("series", "origin_horizons_back", "skipped")}
               for r in rows if "skipped" in r]
    result = {"args": vars(args), "summary": summary, "summary_by_seed": by_seed,
              "skipped": skipped, "series": rows,
              # an earlier run's rows keep the machine they were made on
              "machine": old["machine"] if earlier else {**machine(), "threads": args.threads}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
