"""Train a DeepAR forecaster on windows of one or many series, within a time or step budget.

Training goes through ``rnnkit.train.Trainer``, the loop ``rnnkit train`` uses, with three
pieces of its own: ``WindowBatches`` (the batch source: batches of independent windows
drawn uniformly, each starting from a fresh state), ``WindowNLL`` (the objective:
``DeepAR.nll``, the windows' mean NLL), and the validation score as the Trainer's
``eval_fn`` (CRPS of ancestral sample paths over the held-out rows).

Before training the linear autoregression on the lags starts at its least-squares fit
(``init_skip``, when ``config.skip == "least_squares"``). Each Trainer step: a batch of
windows -> NLL over their C + H steps -> backward -> clip the gradient norm at
``config.clip`` -> Adam step, or skip a step whose gradient is not finite (the Trainer
counts them, says so, and stops after ``TrainConfig.max_nonfinite_steps`` in a row). Every
``eval_every`` steps and at the end it scores the validation windows (whose horizons tile
the last ``validation`` training rows of each series, never read by a training window),
keeps the best weights in memory (``keep_best``), halves the learning rate after each
``patience // 2`` checks without a new best (``ReduceLROnPlateau``) and stops after
``patience``. Ctrl-C stops it too, as in ``rnnkit train``, after the step it interrupts (a
KeyboardInterrupt raised within a step, a second Ctrl-C, stops at once): the best weights so
far are kept and the report says ``"interrupted"``. Then the sampling temperature (the factor on the
predicted scale) is chosen on the same validation windows (``calibrate``), and so are the
shares of the mixture with the statistical forecasts (``choose_weights``). With
``config.refit`` (off by default: not better on the development panel's validation split),
``refit`` then trains the network anew on every row, the validation rows too.

At a fixed step budget and seed this trains the weights the forecaster's own loop did
before it moved onto the Trainer, bit for bit (tests/test_forecast_loop.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.forecasting.combination import (
    COMPONENTS,
    STATISTICAL_METHODS,
    STATISTICAL_NAMES,
    mix_forecasts,
    statistical_forecasts,
    statistical_split,
)
from rnnkit.forecasting.covariates import (
    Covariates,
    check_training_windows,
    covariate_settings,
    step_inputs,
)
from rnnkit.forecasting.data import DatedSeries, series_covariates, series_frequency
from rnnkit.forecasting.metrics import crps_by_step
from rnnkit.forecasting.model import DeepAR, DeepAREnsemble, Forecaster
from rnnkit.forecasting.theta import interval_spread, seasonal_adjustment
from rnnkit.forecasting.windows import (
    ForecastConfig,
    Windows,
    WindowSampler,
    default_config,
    drop_short,
    last_starts,
    last_windows,
    value_unit,
)
from rnnkit.objectives.base import Objective
from rnnkit.train import Batch, TrainConfig, Trainer

__all__ = ["FitReport", "train_forecaster", "forecast_config", "fit_model", "step_budget",
           "describe_budget", "validation_score", "calibrate", "init_skip", "WindowBatch",
           "WindowBatches", "WindowNLL", "INTERRUPTED", "NON_FINITE", "calibration_cost",
           "choose_weights", "describe_combination", "COMBINE_WEIGHTS",
           "NO_VALIDATION_WEIGHTS", "NO_VALIDATION_NETWORK", "refit"]

INTERRUPTED = "interrupted"  # FitReport.stop_reason after Ctrl-C (the best weights are kept)
# FitReport.stop_reason when every series is too short to train the network on
TOO_SHORT = "too_short_for_the_network"
# FitReport.stop_reason after TrainConfig.max_nonfinite_steps steps in a row whose gradient
# was not finite (the best weights are kept)
NON_FINITE = "non_finite_gradients"


@dataclass
class FitReport:
    """What happened in training: steps taken, the best validation check, why it stopped."""

    steps: int
    best_step: int
    best_score: float | None  # validation CRPS / mean |value| (None without validation)
    stop_reason: str
    seconds: float
    history: list[dict] = field(default_factory=list)  # one record per validation check
    # {name: rows} of the series too short to train the network on (windows.drop_short):
    # forecast by the statistical forecasts alone (Forecaster.statistical_series), or too
    # short for those too and left out
    statistical_only: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    skipped_steps: int = 0  # steps whose gradient was not finite (not applied)
    # choose_weights' record: the shares of the mixture of the network with the statistical
    # forecast and SeasonalNaive, why, which statistical forecast, its interval factor, and
    # the validation score of each candidate ({} when combine is off)
    combine: dict = field(default_factory=dict)
    # what config.refit did: "" (off, or no validation rows), or how the network was trained
    # anew on every row, or why it was not
    refit: str = ""


def train_forecaster(series: Sequence[DatedSeries], horizon: int, max_time: float | None = 60,
                     max_steps: int | None = None, seed: int = 0,
                     on_check: Callable[[dict], None] | None = None,
                     covariates: Sequence[Covariates] | None = None,
                     **overrides) -> tuple[Forecaster, FitReport]:
    """Train a forecaster of ``horizon`` steps on every row of ``series`` (hold out test
    rows before calling). The config comes from ``default_config`` (``overrides`` replace
    fields). Stops at ``max_time`` seconds, ``max_steps``, or early stopping; without
    validation rows and without ``max_steps``, after ``config.default_steps``. Series too
    short to train on (``windows.too_short``: alone, ``min_length(horizon)`` rows; in a
    panel, a window of their own and enough pooled windows) are left out with a warning (all
    of them: a DataError) and named in ``FitReport.left_out``. ``covariates``: one ``Covariates``
    per series (``forecasting.covariates``), their rows aligned with the series' (default:
    the series' own ``covariates``, as ``load_series`` read them)."""
    start = time.monotonic()  # the budget covers the setup and the calibration too
    if covariates is None and series:
        covariates = series_covariates(series)
    by_name = _by_name(series, covariates)
    series, alone, left_out = drop_short(series, horizon, statistical_fallback(overrides))
    if not series:
        forecaster, report = statistical_forecaster(alone, horizon, seed, **overrides)
        report.left_out, report.seconds = left_out, time.monotonic() - start
        return forecaster, report
    covs = None if by_name is None else [by_name[s.name] for s in series]
    cfg = forecast_config(series, horizon, covariates=covs, **overrides)
    values = [s.values / cfg.unit for s in series]
    adjust = network_adjustment(cfg, values)
    net = values if adjust is None else [(v - o) / f for v, (f, o) in zip(values, adjust)]
    calendars = [step_inputs(cfg, s.dates, c, series=s.name)
                 for s, c in zip(series, covs or [None] * len(series))]
    names = [s.name for s in series]
    members, reports = [], []
    _, val = _windows(cfg, net, calendars, seed)
    reserve = 0.0
    for k in range(cfg.ensemble):
        torch.manual_seed(seed + k)
        model = DeepAR(cfg, len(series))
        if k == 0 and cfg.ensemble > 1 and max_time is not None:
            reserve = calibration_cost(model, val, seed, cfg.ensemble)
        # each member gets an equal share of what is left of the budget, less the
        # ensemble's calibration after them
        budget = (None if max_time is None else max(
            0.0, max_time - reserve - (time.monotonic() - start)) / (cfg.ensemble - k))
        reports.append(fit_model(model, net, calendars, budget, max_steps, seed + k,
                                 on_check, calibrate_model=cfg.ensemble == 1))
        members.append(model)
        if reports[-1].stop_reason == INTERRUPTED:  # Ctrl-C: keep the members trained so far
            break

    def seconds_left() -> float | None:
        return None if max_time is None else max(0.0, max_time - (time.monotonic() - start))

    if cfg.ensemble == 1:
        reports[0].left_out = left_out
        reports[0].combine = choose_weights(members[0], values, val, seed, adjust=adjust)
        if cfg.refit:
            reports[0].refit = refit(members[0], net, calendars, reports[0], seed,
                                     seconds_left())
        return _with_statistical(Forecaster(members[0], names), reports[0], alone, horizon, seed)
    if len(members) < cfg.ensemble:  # the saved config must build the members there are
        cfg = replace(cfg, ensemble=len(members))
        for model in members:
            model.config = cfg
    model = members[0] if len(members) == 1 else DeepAREnsemble(members)
    best = None
    if val is not None:
        best = (calibrate(model, val, seed, by=cfg.calibrate, grid=cfg.temperatures)
                if cfg.calibrate else validation_score(model, val, seed=seed))
    stops = {r.stop_reason for r in reports}
    report = FitReport(sum(r.steps for r in reports), reports[0].best_step, best,
                       INTERRUPTED if INTERRUPTED in stops else ", ".join(sorted(stops)),
                       time.monotonic() - start,
                       [{"member": k, **h} for k, r in enumerate(reports) for h in r.history],
                       skipped_steps=sum(r.skipped_steps for r in reports))
    report.left_out = left_out
    report.combine = choose_weights(model, values, val, seed, adjust=adjust)
    if cfg.refit:
        done = [refit(m, net, calendars, r, seed + k, seconds_left())
                for k, (m, r) in enumerate(zip(members, reports))]
        report.refit = "; ".join(f"member {k}: {d}" for k, d in enumerate(done) if d)
    return _with_statistical(Forecaster(model, names), report, alone, horizon, seed)


def _with_statistical(forecaster: Forecaster, report: FitReport, alone: Sequence[DatedSeries],
                      horizon: int, seed: int = 0) -> tuple[Forecaster, FitReport]:
    """``forecaster`` and ``report`` with the series ``alone`` (too short for the network)
    forecast by the statistical forecasts alone: ``choose_statistical_only``'s shares."""
    if alone:
        forecaster.statistical_series = [s.name for s in alone]
        report.statistical_only = {s.name: len(s.values) for s in alone}
        report.combine["statistical_only"] = choose_statistical_only(
            forecaster.config, [s.values for s in alone], horizon, seed)
    return forecaster, report


def choose_statistical_only(cfg: ForecastConfig, values: Sequence[np.ndarray], horizon: int,
                            seed: int = 0) -> dict:
    """Set ``cfg.statistical_only_weights``, the shares of the statistical forecast and
    SeasonalNaive for series too short for the network (``values``: one ``[T_i]`` array
    each), to ``combination.statistical_split``'s choice by the CRPS of ``horizon``-step
    forecasts from rolling origins within them (even shares where there is no room for
    one), the statistical forecast's interval widened by ``cfg.theta_spread`` (measured on
    ``values`` when unset). Returns what was chosen and why."""
    if cfg.theta_spread is None:
        cfg.theta_spread = interval_spread(values, horizon, cfg.season,
                                           point_spread=STATISTICAL_METHODS[cfg.statistical])
    split, scores, origins = statistical_split(values, horizon, cfg.season,
                                               cfg.theta_spread, seed=seed,
                                               method=cfg.statistical)
    cfg.statistical_only_weights = split
    why = (f"by their CRPS at {origins} rolling origins" if origins else
           "evenly: no room for a rolling origin")
    return {"weights": list(split), "why": why, "statistical": cfg.statistical,
            "theta_spread": cfg.theta_spread,
            **({"scores": scores} if scores else {})}


def statistical_forecaster(series: Sequence[DatedSeries], horizon: int, seed: int = 0,
                           **overrides) -> tuple[Forecaster, FitReport]:
    """A Forecaster without a network for ``series``, every one too short to train it on:
    the statistical forecast and SeasonalNaive alone (``choose_statistical_only``)."""
    cfg = replace(forecast_config(series, horizon, **overrides), horizon=horizon)
    return _with_statistical(Forecaster(None, [], cfg), FitReport(0, 0, None, TOO_SHORT, 0.0),
                             series, horizon, seed)


def statistical_fallback(overrides: dict[str, Any]) -> str:
    """The name of the statistical forecast that forecasts the series too short for the
    network with SeasonalNaive (``drop_short``'s ``statistical``) under the config fields
    ``overrides``; "" with ``combine`` off (the network alone: none)."""
    method = overrides.get("statistical", "theta")
    if not overrides.get("combine", "validation"):
        return ""
    return STATISTICAL_NAMES.get(method, method)


def _by_name(series: Sequence[DatedSeries], covariates: Sequence[Covariates] | None
             ) -> dict[str, Covariates] | None:
    """``{series name: its Covariates}`` (None without covariates)."""
    if covariates is None:
        return None
    if len(covariates) != len(series):
        raise ValueError(f"{len(covariates)} covariates for {len(series)} series; give one "
                         "Covariates per series, in their order")
    return {s.name: c for s, c in zip(series, covariates)}


def forecast_config(series: Sequence[DatedSeries], horizon: int,
                    covariates: Sequence[Covariates] | None = None,
                    **overrides) -> ForecastConfig:
    """The config ``train_forecaster`` trains ``series`` with: ``default_config`` for their
    lengths and (single) frequency, an embedding of each series when there are several, the
    ``covariates``' names and normalization (``covariate_settings``), then ``overrides``."""
    freq = series_frequency(series)  # a series' stated or inferred season included
    if covariates:
        overrides = {**covariate_settings([s.name for s in series],
                                          [s.dates for s in series], covariates), **overrides}
    overrides.setdefault("embedding_dim", 4 if len(series) > 1 else 0)
    overrides.setdefault("unit", value_unit([s.values for s in series]))
    cfg = default_config([len(s.values) for s in series], freq, horizon, **overrides)
    if covariates:
        check_training_windows(cfg, [len(s.values) for s in series], covariates)
    return cfg


def step_budget(cfg: ForecastConfig, max_time: float | None,
                max_steps: int | None) -> int | None:
    """The step limit ``fit_model`` trains under (None: the time budget alone). Without
    validation rows there is nothing to stop early on: a time budget alone would fit a few
    dozen rows for as many steps as the machine allows, varying with it, so
    ``cfg.default_steps`` caps it; with neither budget, early stopping ends the run (the cap
    is far beyond it)."""
    if max_steps is None and not cfg.validation:
        return cfg.default_steps
    if max_steps is None and max_time is None:
        return 100 * cfg.eval_every * cfg.patience
    return max_steps


def describe_budget(cfg: ForecastConfig, max_time: float | None,
                    max_steps: int | None) -> str:
    """The budget ``fit_model`` will train ``cfg`` under, in words (for a start line)."""
    steps = step_budget(cfg, max_time, max_steps)
    limits = [f"{max_time:g} s" if max_time is not None else "",
              f"{steps} steps" if max_steps is not None or not cfg.validation else ""]
    text = " or ".join(x for x in limits if x)
    if not cfg.validation:
        return f"for at most {text} (no validation rows to stop early on)"
    if not text:
        return "with no time limit, until validation stops improving"
    return f"for at most {text}, or until validation stops improving"


def network_adjustment(cfg: ForecastConfig, values: Sequence[np.ndarray]
                       ) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """With ``config.deseasonalize``, each series' ``(factor [T_i], offset [T_i])``
    (``theta.seasonal_adjustment``) measured on its rows before the validation rows, which it
    covers too: the network trains on ``(values - offset) / factor``. None without it."""
    if not cfg.deseasonalize:
        return None
    return [seasonal_adjustment(v[: len(v) - cfg.validation], cfg.season, len(v))
            for v in values]


def _windows(cfg: ForecastConfig, values: Sequence[np.ndarray], calendars: Sequence[np.ndarray],
             seed: int) -> tuple[WindowSampler, Windows | None]:
    """The training window sampler (rows before each series' validation rows) and the
    validation windows (None without validation rows)."""
    ends = [len(v) - cfg.validation for v in values]
    sampler = WindowSampler(values, calendars, ends, cfg, seed)
    val = (last_windows(sampler, values, calendars, [len(v) for v in values],
                        cfg.validation // cfg.horizon) if cfg.validation else None)
    return sampler, val


@torch.no_grad()
def _validation_paths(model: DeepAR | DeepAREnsemble, w: Windows, num_samples: int, seed: int,
                      context_spread: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's sample paths of the windows' horizons ``[B, S, H]`` (in eval mode, from
    ``seed``), the actual values ``[B, H]`` and each context's mean |value| ``[B]``."""
    cfg = model.config
    model.eval()
    context = w.values[:, : cfg.max_lag + cfg.context_length]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        paths = model.sample_paths(context, w.calendar, w.series, cfg.horizon, num_samples,
                                   context_spread=context_spread)
    actual = w.values[:, -cfg.horizon:].double().numpy()
    scale = context[:, cfg.max_lag:].abs().mean(1).double().numpy() + 1e-8
    return paths.double().numpy(), actual, scale


@torch.no_grad()
def validation_score(model: DeepAR | DeepAREnsemble, w: Windows, num_samples: int = 50,
                     seed: int = 0, coverage: bool = False) -> float | tuple[float, float]:
    """Mean CRPS of sample paths over the windows' horizons, each divided by its context's
    mean |value| (so series of different magnitudes weigh alike); with ``coverage`` also
    the fraction of horizon values inside the paths' central 80% interval."""
    paths, actual, scale = _validation_paths(model, w, num_samples, seed)
    model.train()
    scores = [crps_by_step(p, a).mean() / s for p, a, s in zip(paths, actual, scale)]
    if not coverage:
        return float(np.mean(scores))
    lo, hi = np.quantile(paths, [0.1, 0.9], axis=1)
    return float(np.mean(scores)), float(np.mean((lo <= actual) & (actual <= hi)))


# calibration_cost's margin over its measured estimate: an ensemble's score runs every
# member's context, and the load on a shared machine varies
CALIBRATION_MARGIN = 1.5


def calibration_cost(model: DeepAR, val: Windows | None, seed: int = 0,
                     members: int = 1) -> float:
    """Seconds to reserve from a time budget for what follows training on ``val``: the final
    validation check and ``calibrate``'s scores over ``config.temperatures`` (none without
    validation windows or ``config.calibrate``) of ``members`` models like ``model`` (an
    ensemble's sampling steps through each member), estimated by timing one validation
    score after a small one that warms up (its cost does not depend on the weights), times
    ``CALIBRATION_MARGIN``."""
    cfg = model.config
    if val is None:
        return 0.0
    # a first call pays for one-off setup (allocations, kernel choice): not the cost of one
    first = Windows(val.values[:1], val.calendar[:1], val.series[:1])
    validation_score(model, first, num_samples=2, seed=seed)
    start = time.monotonic()
    validation_score(model, val, seed=seed)
    checks = 1 + (len(cfg.temperatures) if cfg.calibrate else 0) + (1 if cfg.combine else 0)
    return CALIBRATION_MARGIN * checks * members * (time.monotonic() - start)


# The shares (network, statistical, SeasonalNaive) choose_weights tries, in order of the
# network's share (ties go to the earlier), and the shares without validation windows
# (the network's third; the statistical part's split by statistical_split); chosen on the
# development panel's validation split (docs/forecast-panel.md, "combined with Theta", "with
# SeasonalNaive", "without validation windows" and "never the network alone"). The first
# keeps a twentieth each of Theta and SeasonalNaive: the network's paths alone under-covered
# where validation chose them, and that much statistical tail widened them at no cost in CRPS.
COMBINE_WEIGHTS = ((0.9, 0.05, 0.05), (0.5, 0.5, 0.0), (1 / 3, 1 / 3, 1 / 3), (0.0, 1.0, 0.0))
NO_VALIDATION_WEIGHTS = (1 / 3, 1 / 3, 1 / 3)
NO_VALIDATION_NETWORK = 1 / 3


def _shares(weights: Sequence[float]) -> str:
    """``(0.5, 0.5, 0.0)`` as ``"0.5/0.5/0"`` (thirds as 0.33)."""
    return "/".join(f"{w:.2g}" for w in weights)


@torch.no_grad()
def choose_weights(model: DeepAR | DeepAREnsemble, values: Sequence[np.ndarray],
                   val: Windows | None, seed: int = 0, num_samples: int = 50,
                   adjust: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """Set ``config.combine_weights``, the shares of the network, the statistical forecast
    ``config.statistical`` and SeasonalNaive in the forecast's mixture
    (``combination.combined_paths``), to the candidate of
    ``COMBINE_WEIGHTS`` with the best validation CRPS (each window's divided by its
    context's mean |value|, as ``validation_score``), the statistical forecasts fitted on
    every row before each window's horizon (``values``: one ``[T_i]`` array per series, the
    validation windows ``val`` their last ``config.validation`` rows). Without validation
    windows the network gets ``NO_VALIDATION_NETWORK`` and the statistical forecast and
    SeasonalNaive share the rest as ``combination.statistical_split`` chooses by their CRPS
    at rolling origins within ``values`` (evenly, ``NO_VALIDATION_WEIGHTS``, where there is no
    room for one). Unless given, ``config.theta_spread`` (the factor on the statistical
    forecast's interval) is first measured on every row of ``values``
    (``theta.interval_spread``); the validation windows' statistical forecasts use the
    factor measured on the rows before them. ``adjust``: the network's seasonal adjustment
    (``network_adjustment``; ``val`` holds adjusted values), put back on its paths before
    they are mixed and scored. Returns what was chosen and why ({} with ``config.combine``
    off)."""
    cfg = model.config
    if not cfg.combine:
        return {}
    given, method = cfg.theta_spread, cfg.statistical
    point_spread = STATISTICAL_METHODS[method]
    if given is None:
        cfg.theta_spread = interval_spread(values, cfg.horizon, cfg.season,
                                           point_spread=point_spread)
    record = {"statistical": method, "theta_spread": cfg.theta_spread}
    if val is None:
        split, scores, origins = statistical_split(values, cfg.horizon, cfg.season,
                                                   cfg.theta_spread, num_samples, seed, method)
        if not origins:
            cfg.combine_weights = NO_VALIDATION_WEIGHTS
            return {"weights": list(cfg.combine_weights),
                    "why": "default: no validation windows", **record}
        rest = 1.0 - NO_VALIDATION_NETWORK
        cfg.combine_weights = (NO_VALIDATION_NETWORK, rest * split[0], rest * split[1])
        return {"weights": list(cfg.combine_weights),
                "why": f"no validation windows: the network 1/3, the rest split {_shares(split)}"
                       f" between {STATISTICAL_NAMES[method]} and SeasonalNaive by their CRPS at "
                       f"{origins} rolling origins",
                "scores": {f"statistical {k}": v for k, v in scores.items()}, **record}
    spread = given or interval_spread([v[: len(v) - cfg.validation] for v in values],
                                      cfg.horizon, cfg.season, point_spread=point_spread)
    paths, actual, scale = _validation_paths(model, val, num_samples, seed, cfg.context_spread)
    starts = last_starts(cfg, [len(v) for v in values], cfg.validation // cfg.horizon)
    if adjust is not None:
        for k, (i, s) in enumerate(starts):
            rows = slice(s + cfg.context_length, s + cfg.context_length + cfg.horizon)
            factor, offset = adjust[i]
            paths[k] = paths[k] * factor[rows] + offset[rows]
            actual[k] = values[i][rows]
            scale[k] = np.abs(values[i][s: rows.start]).mean() + 1e-8
    scores = np.zeros((len(starts), len(COMBINE_WEIGHTS)))
    for k, (i, s) in enumerate(starts):
        # fitted once per window, mixed at every candidate's shares
        stat, base = statistical_forecasts(values[i][: s + cfg.context_length], cfg.horizon,
                                           cfg.season, num_samples, seed, method)
        for j, weights in enumerate(COMBINE_WEIGHTS):
            mixed = mix_forecasts(paths[k], stat, base, weights, spread)
            scores[k, j] = crps_by_step(mixed, actual[k]).mean() / scale[k]
    mean = scores.mean(0)
    cfg.combine_weights = COMBINE_WEIGHTS[int(np.argmin(mean))]
    windows = f"{len(starts)} window" + "s" * (len(starts) > 1)
    return {"weights": list(cfg.combine_weights), "why": f"validation CRPS over {windows}",
            "scores": {_shares(w): float(m) for w, m in zip(COMBINE_WEIGHTS, mean)}, **record}


def describe_combination(record: dict) -> str:
    """What ``choose_weights``' ``record`` (and ``choose_statistical_only``'s, under
    ``"statistical_only"``) makes of the forecasts, for a log line."""
    alone = record.get("statistical_only")
    network = {k: v for k, v in record.items() if k != "statistical_only"}
    if not alone:
        return _describe_network(network)
    a, b = alone["weights"]
    stat = STATISTICAL_NAMES[alone.get("statistical", "theta")]
    short = (f"the series too short for the network: {a:.2g} {stat}, {b:.2g} SeasonalNaive "
             f"(chosen {alone['why']})")
    return f"{_describe_network(network)}; {short}" if network else f"forecasts: {short}"


def _describe_network(record: dict) -> str:
    if not record:
        return "forecasts: the network's alone"
    if "weights" in record:
        weights = record["weights"]
    else:  # a run recorded when only Theta was mixed in
        weights = [record["weight"], 1 - record["weight"], 0.0]
    if weights[0] == 1:
        what = "the network's"
    else:
        # runs recorded before the damped trend mixed in Theta
        stat = STATISTICAL_NAMES[record.get("statistical", "theta")]
        spread = (f" ({stat}'s interval x{record['theta_spread']:.2f})"
                  if weights[1] > 0 and "theta_spread" in record else "")
        names = (COMPONENTS[0], stat, COMPONENTS[2])
        what = "a mixture of " + ", ".join(
            f"{w:.2g} {name}" for w, name in zip(weights, names) if w > 0) + spread
    return f"forecasts: {what} (chosen by {record['why']})"


CALIBRATE_BY = ("crps", "coverage", "at_least")


def _miss(by: str, cover: float, temperature: float) -> tuple[float, float]:
    """How far a temperature's validation coverage ``cover`` is from what ``calibrate``'s
    ``by`` asks (lower is better; CRPS breaks ties)."""
    if by == "coverage":
        return round(abs(cover - 0.8), 6), 0.0
    if by == "at_least":  # the narrowest that covers 80%, else the one that covers most
        return (0.0, temperature) if cover >= 0.8 else (1.0, -cover)
    return 0.0, 0.0


def calibrate(model: DeepAR | DeepAREnsemble, val: Windows, seed: int = 0, by: str = "crps",
              grid: Sequence[float] = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)) -> float:
    """Set ``model.temperature`` (the factor on the predicted scale when sampling) to the
    value of ``grid`` with the best validation CRPS (``by="crps"``), whose 80% intervals
    cover the validation rows closest to 80% (``by="coverage"``, CRPS breaking ties), or the
    smallest whose intervals cover at least 80% of them (``by="at_least"``, else the one
    covering most; the weights were chosen on the same rows, so closest is optimistic);
    return its validation CRPS. A model fitted to a few hundred rows is overconfident: its one-step
    spread is learnt on windows it has seen many times, and ancestral sampling compounds
    the error over the horizon."""
    if by not in CALIBRATE_BY:
        raise ValueError(f"calibrate: by must be one of {CALIBRATE_BY}, got {by!r}")
    scores, covers = [], []
    for t in grid:
        model.temperature.fill_(t)
        score, cover = validation_score(model, val, seed=seed, coverage=True)
        scores.append(score)
        covers.append(round(cover, 6))
    best = min(range(len(grid)), key=lambda i: (_miss(by, covers[i], grid[i]), scores[i]))
    model.temperature.fill_(grid[best])
    return float(scores[best])


@torch.no_grad()
def init_skip(model: DeepAR, sampler: WindowSampler, windows: int = 2048,
              ridge: float = 1e-3) -> None:
    """Start the linear autoregression on the lags and covariate inputs (``model.skip``) at
    its least-squares fit on (up to) ``windows`` training windows, in the windows' scaled
    units: the network then starts from that linear forecast and learns what it misses.
    Ridge-regularized so collinear inputs stay bounded."""
    if model.skip is None:
        return
    cfg = model.config
    w = sampler.sample(min(windows, 8 * len(sampler)))
    loc, scale = model.scale(w.values, cfg.context_length)
    z = (w.values - loc) / scale
    x = model.skip_inputs(model.inputs(z, w.calendar, w.series))
    x = x.reshape(-1, x.shape[-1])
    y = z[:, cfg.max_lag:].reshape(-1, 1)
    design = torch.cat([x, torch.ones_like(y)], 1).double()
    gram = design.T @ design + ridge * len(y) * torch.eye(design.shape[1], dtype=torch.float64)
    coef = torch.linalg.solve(gram, design.T @ y.double()).float()
    model.skip.weight.copy_(coef[:-1].T)
    model.skip.bias.copy_(coef[-1])


@dataclass
class WindowBatch(Batch):
    """Training windows as a Trainer batch. ``DeepAR.nll`` scores them with one number (the
    mean NLL over their scored steps), so the batch is one row of one scored step: ``mask``
    and ``reset`` are ``[1, 1]``; ``inputs`` are the windows' calendar ``[B, C + H, K]``,
    ``targets`` their values."""

    windows: Windows | None = None

    def to(self, device: torch.device | str) -> WindowBatch:
        w = self.windows
        return replace(super().to(device), windows=Windows(
            w.values.to(device), w.calendar.to(device), w.series.to(device)))


def window_batch(w: Windows) -> WindowBatch:
    """``w`` as a WindowBatch: every row starts from a fresh state."""
    one = torch.ones(1, 1, dtype=torch.bool)
    return WindowBatch(w.calendar, w.values, one, ~one, fresh=True, windows=w)


class WindowBatches:
    """A Trainer batch source (``rnnkit.train.BatchSource``) of ``batch_size`` windows drawn
    uniformly by ``sampler`` each step. A window's length is the config's C + H: the chunk
    length the Trainer asks for is not used."""

    def __init__(self, sampler: WindowSampler, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size

    def next_batch(self, chunk_length: int) -> WindowBatch:
        return window_batch(self.sampler.sample(self.batch_size))

    def iter_epoch(self, chunk_length: int) -> Iterator[WindowBatch]:
        """Every distinct window once, in order."""
        starts = self.sampler.starts
        for i in range(0, len(starts), self.batch_size):
            yield window_batch(self.sampler.gather(starts[i: i + self.batch_size]))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.sampler.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.rng.bit_generator.state = state["rng"]


class WindowNLL(Objective):
    """DeepAR's training loss on a WindowBatch: ``DeepAR.nll`` as a ``[1, 1]`` per-step
    loss, which the Trainer's normalization (sum over time / T, mean over rows) leaves as it
    is, so the gradient is DeepAR's own."""

    loss_is_nll = True

    def __call__(self, model: nn.Module, batch: WindowBatch, state: Any
                 ) -> tuple[Tensor, None, dict]:
        self.advance(model)
        return model.nll(batch.windows).reshape(1, 1), None, {}


def train_config(cfg: ForecastConfig, max_time: float | None, max_steps: int | None,
                 validates: bool) -> TrainConfig:
    """The Trainer settings ``fit_model`` trains ``cfg`` with: its batch size, Adam's learning
    rate and weight decay, clipping at ``cfg.clip``, the budget (``step_budget``), checks
    every ``eval_every`` steps and at the end with ``patience`` (when ``validates``), on the
    CPU, writing nothing, and without seeding: the caller seeded torch before building the
    model."""
    steps = step_budget(cfg, max_time, max_steps)
    return TrainConfig(
        batch_size=cfg.batch_size, chunk_length=cfg.context_length + cfg.horizon, lr=cfg.lr,
        weight_decay=cfg.weight_decay, clip="norm", clip_max_norm=cfg.clip,
        max_steps=steps or 0,
        # a budget of 0 s (an ensemble member left none) still trains one step, as before
        max_time=0.0 if max_time is None else max(max_time, 1e-9),
        eval_every=cfg.eval_every, patience=cfg.patience if validates else 0,
        eval_at_end=validates, checkpoint_every=0, progress=False, plot=False, seed=None,
        device="cpu")


def halve_on_plateau(cfg: ForecastConfig) -> Callable[[torch.optim.Optimizer], Any]:
    """The scheduler factory that halves the learning rate after each ``patience // 2``
    checks without a new best validation score (any lower score is one)."""
    return lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=max(1, cfg.patience // 2) - 1, threshold=0.0)


def replay(rates: Sequence[float], lr: float) -> Callable[[torch.optim.Optimizer], Any]:
    """The scheduler factory whose step ``k`` trains at ``rates[k]`` (the last one after
    them), for an optimizer whose rate is ``lr``."""
    if not rates:
        raise ValueError("rates must hold at least one learning rate, got none")
    factors = [r / lr for r in rates]
    return lambda optimizer: torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: factors[min(k, len(factors) - 1)])


def trained_rates(history: Sequence[dict], steps: int, lr: float) -> list[float]:
    """The learning rate each of a fit's first ``steps`` steps trained at, from its
    validation checks' records (``FitReport.history``: each check's ``lr`` is the rate its
    steps since the check before trained at; the halving on a plateau comes after the
    check); ``lr`` before any check."""
    rates: list[float] = []
    for check in history:
        rates += [check["lr"]] * (min(check["step"], steps) - len(rates))
    return rates + [rates[-1] if rates else lr] * (steps - len(rates))


def refit(model: DeepAR, values: Sequence[np.ndarray], calendars: Sequence[np.ndarray],
          report: FitReport, seed: int = 0, max_time: float | None = None) -> str:
    """Train ``model``'s weights anew on every row of ``values`` (its validation rows too,
    the most recent ones, which the validated fit never trained on): a model of its config
    built from ``seed`` as it was, trained for the ``report``'s best step at the learning
    rates the validated fit trained at (``trained_rates``), whose weights then replace
    ``model``'s; the temperature, chosen on the validation windows, is kept. Not done, and
    ``model`` unchanged, where the validated fit's pace says those steps would take more
    than ``max_time`` seconds, or where they did not all run. Returns what was done (for
    ``FitReport.refit``; "" without validation rows: nothing to refit on)."""
    cfg = model.config
    steps = report.best_step
    if not cfg.validation or steps < 1:
        return ""
    if max_time is not None:
        need = report.seconds / max(report.steps, 1) * steps
        if need > max_time:
            return (f"not refitted: {steps} steps would take ~{need:.1f} s, "
                    f"{max_time:.1f} s left")
    torch.manual_seed(seed)
    fresh = DeepAR(replace(cfg, validation=0), len(values))
    done = fit_model(fresh, values, calendars, max_time, steps, seed, calibrate_model=False,
                     learning_rates=trained_rates(report.history, steps, cfg.lr))
    if done.steps < steps:
        return f"not refitted: stopped after {done.steps} of {steps} steps ({done.stop_reason})"
    model.load_state_dict({**fresh.state_dict(), "temperature": model.temperature})
    model.eval()
    return f"refitted on every row for {steps} steps in {done.seconds:.1f} s"


def _stop_name(reason: str) -> str:
    """The Trainer's stop reason as FitReport names it (one word)."""
    if reason.startswith("early stop"):
        return "early_stopping"
    if "non-finite" in reason:
        return NON_FINITE
    return reason


def fit_model(model: DeepAR, values: Sequence[np.ndarray], calendars: Sequence[np.ndarray],
              max_time: float | None = 60, max_steps: int | None = None, seed: int = 0,
              on_check: Callable[[dict], None] | None = None,
              calibrate_model: bool = True,
              learning_rates: Sequence[float] | None = None) -> FitReport:
    """Train ``model`` in place on windows of ``values`` (one ``[T_i]`` array per series,
    ``calendars [T_i, K]`` alike) and load its best weights; see the module doc. With
    ``calibrate_model`` (and ``config.calibrate``), then choose its sampling temperature.
    ``on_check`` gets a record of each validation check: step, mean training loss since the
    last check, validation CRPS, learning rate, seconds. ``learning_rates``: the rate of
    each step, in place of the halving on plateaus (``refit`` replays a fit's)."""
    cfg: ForecastConfig = model.config
    start = time.monotonic()
    sampler, val = _windows(cfg, values, calendars, seed)
    if max_time is not None:  # the budget ends with the calibration, not before it
        cost = calibration_cost(model, val, seed) if calibrate_model else 0.0
        max_time = max(0.0, max_time - cost - (time.monotonic() - start))
    if cfg.skip == "least_squares":
        init_skip(model, sampler)
    history: list[dict] = []

    def checked(trainer: Trainer, metrics: dict[str, float]) -> None:
        history.append({"step": metrics["step"], "loss": metrics["train_loss"],
                        "val_crps": metrics["loss"],
                        "lr": trainer.optimizer.param_groups[0]["lr"],
                        "time": round(trainer.elapsed, 2)})
        if on_check is not None:
            on_check(history[-1])

    validates = val is not None
    scheduler = halve_on_plateau(cfg) if validates else None
    if learning_rates is not None:
        scheduler = replay(learning_rates, cfg.lr)
    trainer = Trainer(
        model, train_config(cfg, max_time, max_steps, validates),
        WindowBatches(sampler, cfg.batch_size), objective=WindowNLL(),
        scheduler=scheduler,
        eval_fn=(lambda m: validation_score(m, val, seed=seed)) if validates else None,
        on_eval=checked if validates else None, keep_best=validates)
    try:
        stop = _stop_name(trainer.fit()["stop_reason"])
    except KeyboardInterrupt:  # raised within a step (a second Ctrl-C, a callback)
        trainer.restore_best()
        stop = INTERRUPTED
    best, best_step = trainer.stopper.best, trainer.stopper.best_step
    if validates and best_step is None:  # stopped before the first check
        best, best_step = validation_score(model, val, seed=seed), trainer.step
    if validates and cfg.calibrate and calibrate_model:
        best = calibrate(model, val, seed, by=cfg.calibrate, grid=cfg.temperatures)
    model.eval()
    return FitReport(trainer.step, best_step if validates else trainer.step,
                     best if validates else None, stop, time.monotonic() - start, history,
                     skipped_steps=trainer.skipped_steps)
