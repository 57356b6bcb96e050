"""Train a DeepAR forecaster on windows of one or many series, within a time or step budget.

One small loop, not ``rnnkit.train.Trainer``: the Trainer is built for truncated BPTT over
long streams (a carried hidden state, chunk batchers, best checkpoints written to a run
directory, evaluation as a loss over an epoch of chunks). DeepAR's windows are independent
(every window starts from a fresh state), the best weights must be kept in memory without a
run directory, and the validation score is forecast quality (CRPS of ancestral sample paths
over the held-out rows), so the Trainer's machinery would be bypassed rather than used.

Before the loop the linear autoregression on the lags starts at its least-squares fit
(``init_skip``, when ``config.skip == "least_squares"``). The loop: sample a batch of
windows -> NLL over their C + H steps -> backward -> clip the gradient norm -> Adam step;
every ``eval_every`` steps score the validation windows (whose horizons tile the last
``validation`` training rows of each series, never read by a training window), keep the
best weights, halve the learning rate after ``patience // 2`` checks without a new best,
and stop after ``patience``. Ctrl-C (KeyboardInterrupt) stops it too, as in ``rnnkit train``:
the best weights so far are kept and the report says ``"interrupted"``. Then the sampling
temperature (the factor on the predicted scale) is chosen on the same validation windows
(``calibrate``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from rnnkit.forecasting.covariates import (
    Covariates,
    check_training_windows,
    covariate_settings,
    step_inputs,
)
from rnnkit.forecasting.data import DatedSeries, series_frequency
from rnnkit.forecasting.metrics import crps_by_step
from rnnkit.forecasting.model import DeepAR, DeepAREnsemble, Forecaster
from rnnkit.forecasting.windows import (
    ForecastConfig,
    Windows,
    WindowSampler,
    default_config,
    drop_short,
    last_windows,
    value_unit,
)

__all__ = ["FitReport", "train_forecaster", "forecast_config", "fit_model", "step_budget",
           "describe_budget", "validation_score", "calibrate", "init_skip", "INTERRUPTED"]

INTERRUPTED = "interrupted"  # FitReport.stop_reason after Ctrl-C (the best weights are kept)


@dataclass
class FitReport:
    """What happened in training: steps taken, the best validation check, why it stopped."""

    steps: int
    best_step: int
    best_score: float | None  # validation CRPS / mean |value| (None without validation)
    stop_reason: str
    seconds: float
    history: list[dict] = field(default_factory=list)  # one record per validation check
    # {name: rows} of the series too short to train on (windows.drop_short), left out
    left_out: dict[str, int] = field(default_factory=dict)


def train_forecaster(series: Sequence[DatedSeries], horizon: int, max_time: float | None = 60,
                     max_steps: int | None = None, seed: int = 0,
                     on_check: Callable[[dict], None] | None = None,
                     covariates: Sequence[Covariates] | None = None,
                     **overrides) -> tuple[Forecaster, FitReport]:
    """Train a forecaster of ``horizon`` steps on every row of ``series`` (hold out test
    rows before calling). The config comes from ``default_config`` (``overrides`` replace
    fields). Stops at ``max_time`` seconds, ``max_steps``, or early stopping; without
    validation rows and without ``max_steps``, after ``config.default_steps``. Series
    shorter than ``windows.min_length(horizon)`` are left out with a warning (all of them:
    a DataError) and named in ``FitReport.left_out``. ``covariates``: one ``Covariates``
    per series (``forecasting.covariates``), their rows aligned with the series'."""
    by_name = _by_name(series, covariates)
    series, left_out = drop_short(series, horizon)
    covs = None if by_name is None else [by_name[s.name] for s in series]
    cfg = forecast_config(series, horizon, covariates=covs, **overrides)
    values = [s.values / cfg.unit for s in series]
    calendars = [step_inputs(cfg, s.dates, c, series=s.name)
                 for s, c in zip(series, covs or [None] * len(series))]
    names = [s.name for s in series]
    start = time.monotonic()
    members, reports = [], []
    for k in range(cfg.ensemble):
        # each member gets an equal share of what is left of the budget
        budget = (None if max_time is None else
                  max(0.0, max_time - (time.monotonic() - start)) / (cfg.ensemble - k))
        torch.manual_seed(seed + k)
        model = DeepAR(cfg, len(series))
        reports.append(fit_model(model, values, calendars, budget, max_steps, seed + k,
                                 on_check, calibrate_model=cfg.ensemble == 1))
        members.append(model)
        if reports[-1].stop_reason == INTERRUPTED:  # Ctrl-C: keep the members trained so far
            break
    if cfg.ensemble == 1:
        reports[0].left_out = left_out
        return Forecaster(members[0], names), reports[0]
    if len(members) < cfg.ensemble:  # the saved config must build the members there are
        cfg = replace(cfg, ensemble=len(members))
        for model in members:
            model.config = cfg
    model = members[0] if len(members) == 1 else DeepAREnsemble(members)
    _, val = _windows(cfg, values, calendars, seed)
    best = None
    if val is not None:
        best = (calibrate(model, val, seed, by=cfg.calibrate, grid=cfg.temperatures)
                if cfg.calibrate else validation_score(model, val, seed=seed))
    stops = {r.stop_reason for r in reports}
    report = FitReport(sum(r.steps for r in reports), reports[0].best_step, best,
                       INTERRUPTED if INTERRUPTED in stops else ", ".join(sorted(stops)),
                       time.monotonic() - start,
                       [{"member": k, **h} for k, r in enumerate(reports) for h in r.history])
    report.left_out = left_out
    return Forecaster(model, names), report


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
def validation_score(model: DeepAR | DeepAREnsemble, w: Windows, num_samples: int = 50,
                     seed: int = 0, coverage: bool = False) -> float | tuple[float, float]:
    """Mean CRPS of sample paths over the windows' horizons, each divided by its context's
    mean |value| (so series of different magnitudes weigh alike); with ``coverage`` also
    the fraction of horizon values inside the paths' central 80% interval."""
    cfg = model.config
    model.eval()
    context = w.values[:, : cfg.max_lag + cfg.context_length]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        paths = model.sample_paths(context, w.calendar, w.series, cfg.horizon, num_samples)
    model.train()
    actual = w.values[:, -cfg.horizon:].double().numpy()
    scale = context[:, cfg.max_lag:].abs().mean(1).double().numpy() + 1e-8
    paths = paths.double().numpy()
    scores = [crps_by_step(p, a).mean() / s for p, a, s in zip(paths, actual, scale)]
    if not coverage:
        return float(np.mean(scores))
    lo, hi = np.quantile(paths, [0.1, 0.9], axis=1)
    return float(np.mean(scores)), float(np.mean((lo <= actual) & (actual <= hi)))


def calibrate(model: DeepAR | DeepAREnsemble, val: Windows, seed: int = 0, by: str = "crps",
              grid: Sequence[float] = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)) -> float:
    """Set ``model.temperature`` (the factor on the predicted scale when sampling) to the
    value of ``grid`` with the best validation CRPS (``by="crps"``), or whose 80% intervals
    cover the validation rows closest to 80% (``by="coverage"``, CRPS breaking ties); return
    its validation CRPS. A model fitted to a few hundred rows is overconfident: its one-step
    spread is learnt on windows it has seen many times, and ancestral sampling compounds
    the error over the horizon."""
    if by not in ("crps", "coverage"):
        raise ValueError(f"calibrate: by must be 'crps' or 'coverage', got {by!r}")
    scores, misses = [], []
    for t in grid:
        model.temperature.fill_(t)
        score, cover = validation_score(model, val, seed=seed, coverage=True)
        scores.append(score)
        misses.append(round(abs(cover - 0.8), 6) if by == "coverage" else 0.0)
    best = min(range(len(grid)), key=lambda i: (misses[i], scores[i]))
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


def fit_model(model: DeepAR, values: Sequence[np.ndarray], calendars: Sequence[np.ndarray],
              max_time: float | None = 60, max_steps: int | None = None, seed: int = 0,
              on_check: Callable[[dict], None] | None = None,
              calibrate_model: bool = True) -> FitReport:
    """Train ``model`` in place on windows of ``values`` (one ``[T_i]`` array per series,
    ``calendars [T_i, K]`` alike) and load its best weights; see the module doc. With
    ``calibrate_model`` (and ``config.calibrate``), then choose its sampling temperature."""
    cfg: ForecastConfig = model.config
    sampler, val = _windows(cfg, values, calendars, seed)
    max_steps = step_budget(cfg, max_time, max_steps)
    if cfg.skip == "least_squares":
        init_skip(model, sampler)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = time.monotonic()
    best_state, best, best_step, since_best = None, math.inf, 0, 0
    history, step, stop = [], 0, None
    model.train()
    while stop is None:
        try:
            loss = model.nll(sampler.sample(cfg.batch_size))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            if torch.isfinite(norm):
                optimizer.step()
            step += 1
            elapsed = time.monotonic() - start
            if max_steps is not None and step >= max_steps:
                stop = "max_steps"
            elif max_time is not None and elapsed >= max_time:
                stop = "max_time"
            if val is not None and (step % cfg.eval_every == 0 or stop):
                score = validation_score(model, val, seed=seed)
                record = {"step": step, "loss": float(loss.detach()), "val_crps": score,
                          "lr": optimizer.param_groups[0]["lr"], "time": round(elapsed, 2)}
                history.append(record)
                if on_check is not None:
                    on_check(record)
                if score < best:
                    best, best_step, since_best = score, step, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                    if since_best % max(1, cfg.patience // 2) == 0:
                        for group in optimizer.param_groups:
                            group["lr"] /= 2
                    if since_best >= cfg.patience and stop is None:
                        stop = "early_stopping"
        except KeyboardInterrupt:  # Ctrl-C: stop here and keep the best weights so far
            stop = INTERRUPTED
            if val is not None and best_state is None:  # before the first check
                best, best_step = validation_score(model, val, seed=seed), step
    if best_state is not None:
        model.load_state_dict(best_state)
    if val is not None and cfg.calibrate and calibrate_model:
        best = calibrate(model, val, seed, by=cfg.calibrate, grid=cfg.temperatures)
    model.eval()
    return FitReport(step, best_step if val is not None else step,
                     best if val is not None else None, stop, time.monotonic() - start, history)
