"""Training windows (DeepAR's context + horizon slices) and the defaults sized from the data.

A window starting at row ``s`` of a series covers rows ``[s - max_lag, s + C + H)``: the
first ``max_lag`` rows only feed the lags of the window's first steps, the next ``C`` are
the context, the last ``H`` the horizon. The model is scored on all ``C + H`` steps
(Salinas et al. 2020, Sec. 3.1: the likelihood over the conditioning and prediction range,
teacher-forced), and windows never read a row at or after the series' training end.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.errors import DataError
from rnnkit.forecasting.combination import STATISTICAL_METHODS
from rnnkit.forecasting.covariates import window_inputs
from rnnkit.forecasting.frequency import Frequency

__all__ = ["ForecastConfig", "default_config", "Windows", "WindowSampler", "last_windows",
           "last_starts", "COMBINE",
           "window_rows", "min_length", "pooled_windows", "max_horizon", "value_unit",
           "too_short", "too_short_message", "drop_short", "statistical_only",
           "ShortSeriesWarning", "PANEL_ENSEMBLE", "STATISTICAL_MIN_ROWS"]


COMBINE = ("validation", "")  # ForecastConfig.combine


@dataclass
class ForecastConfig:
    """Every setting of a DeepAR forecaster; ``default_config`` fills them from the data."""

    freq: str  # Frequency.name
    horizon: int  # H, steps scored at the end of each training window (the forecast's H,
    # unless the series is too short for it; forecasts may run longer)
    context_length: int  # C, steps the RNN reads before the horizon
    lags: tuple[int, ...]  # lagged targets fed as inputs; always includes 1
    calendar: tuple[str, ...]  # calendar features (features.CALENDAR_PERIODS)
    validation: int  # rows at the end of each training series held out for early stopping
    # steps of each window the NLL scores: "all" C + H (DeepAR) or only the "horizon" (the
    # context's own steps leak: loc and scale come from them, so their mean is known)
    loss_on: str = "all"
    # how the horizon's lag inputs are fed in training: "teacher_forcing" (the true values,
    # DeepAR) or "open_loop" (the model's own predicted locations, as when forecasting)
    objective: str = "teacher_forcing"
    scaling: str = "standard"  # features.window_scale: "mean_abs" (DeepAR), "standard", "none"
    likelihood: str = "student_t"  # "gaussian" or "student_t"
    # a linear autoregression on the lags added to the location (LSTNet's highway), starting
    # as "naive" (weight 1 on lag 1) or at its "least_squares" fit; "" = none
    skip: str = "least_squares"
    weight_decay: float = 0.0  # Adam's L2 penalty
    # choose the sampling temperature on the validation rows by "crps", "coverage" or
    # "at_least" (fit.calibrate); "" = off
    calibrate: str = "coverage"
    # the temperatures calibrate tries (a small series' one-step scale can be 8x too small)
    temperatures: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
    # a forecast samples at no less than the factor its own context's one-step residuals
    # ask for (DeepAR.context_spread, at most max(temperatures)), when that is above the
    # calibrated temperature
    context_spread: bool = True
    hidden_size: int = 40  # DeepAR's 40 cells
    num_layers: int = 2
    dropout: float = 0.1  # between the recurrent layers
    embedding_dim: int = 0  # series embedding when there are several series; 0 = none
    batch_size: int = 32
    lr: float = 3e-3
    clip: float = 10.0  # gradient-norm clipping threshold
    eval_every: int = 25  # optimizer steps between validation checks
    patience: int = 12  # validation checks without a new best before stopping
    default_steps: int = 400  # steps when there are no validation rows (and no max_steps)
    # after the validation rows chose the steps, temperature and shares, train the network
    # anew on every row, those rows too, for the best check's steps (fit.refit)
    refit: bool = False
    # models trained from seeds seed .. seed + K - 1 whose sample paths a forecast pools
    # (a deep ensemble); each gets 1/K of the time budget (default_config: PANEL_ENSEMBLE
    # for several series)
    ensemble: int = 1
    # the power of ten the values are divided by before the model sees them (value_unit):
    # window_scale's floors are absolute, so series of magnitude 1e-30 read as all zeros
    unit: float = 1.0
    # covariates (forecasting.covariates): the names of each kind, in input order
    future_covariates: tuple[str, ...] = ()  # known for the horizon too, read at step t
    past_covariates: tuple[str, ...] = ()  # observed only: read at t - 1 within the context
    static_covariates: tuple[str, ...] = ()  # one value per series
    # {name: [mean, std]} each numeric covariate is normalized by (over the training rows)
    covariate_stats: dict = field(default_factory=dict)
    static_levels: dict = field(default_factory=dict)  # {name: [categories]} (one-hot)
    # a forecast mixes (forecasting.combination.combined_paths) the network's sample paths
    # with the statistical forecast `statistical` (forecasting.damped or .theta) and the
    # seasonal-naive one of the same context, at the shares combine_weights (network,
    # statistical, SeasonalNaive); combine="validation":
    # train_forecaster chooses them on the validation windows (fit.choose_weights), "": the
    # network alone (combine_weights unused)
    combine: str = "validation"
    combine_weights: tuple[float, float, float] = (1.0, 0.0, 0.0)
    # combination.STATISTICAL_METHODS: "theta", or "damped_trend" (measured, not better on the
    # development panel's validation split: docs/forecast-panel.md, "The damped trend")
    statistical: str = "theta"
    # the factor on the statistical forecast's interval in that mixture (the name is from
    # when it was always Theta's); None: train_forecaster measures it on the training rows
    # (theta.interval_spread), forecasters saved before it use 1.0
    theta_spread: float | None = None
    # the shares of the statistical forecast and SeasonalNaive (network 0) for the series too
    # short to train the network on (Forecaster.statistical_series; drop_short), chosen by
    # combination.statistical_split at rolling origins within them
    statistical_only_weights: tuple[float, float] = (0.5, 0.5)
    season: int = 1  # the season m of the statistical forecast (Frequency.season)
    # the network reads and forecasts each series seasonally adjusted (theta.seasonal_adjustment:
    # M4's protocol for its ML benchmarks; ES-RNN, Smyl 2020, learns the same adjustment), the
    # season put back on its paths; not better on the development panel's validation split
    # (docs/forecast-panel.md, "Five changes to the network")
    deseasonalize: bool = False
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. why a lag was dropped)

    def __post_init__(self) -> None:
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")
        w = self.combine_weights
        if len(w) != 3 or min(w) < 0 or abs(sum(w) - 1) > 1e-6:
            raise ValueError("combine_weights must be 3 shares >= 0 (network, statistical, "
                             f"SeasonalNaive) summing to 1, got {tuple(w)}")
        if self.statistical not in STATISTICAL_METHODS:
            raise ValueError(f"statistical must be one of {tuple(STATISTICAL_METHODS)}, got "
                             f"{self.statistical!r}")
        w2 = self.statistical_only_weights
        if len(w2) != 2 or min(w2) < 0 or abs(sum(w2) - 1) > 1e-6:
            raise ValueError("statistical_only_weights must be 2 shares >= 0 (statistical, "
                             f"SeasonalNaive) summing to 1, got {tuple(w2)}")
        if self.theta_spread is not None and not self.theta_spread > 0:
            raise ValueError(f"theta_spread must be > 0 (or None), got {self.theta_spread}")
        if self.season < 1:
            raise ValueError(f"season must be >= 1 (1: none), got {self.season}")

    @property
    def max_lag(self) -> int:
        return max(self.lags)

    @property
    def window_length(self) -> int:
        """Rows a window reads: max_lag + C + H."""
        return self.max_lag + self.context_length + self.horizon


# Models default_config trains for several series at once. On the development panel's
# validation split (issue 28, seeds 0 and 1) 3 members lowered every long panel's geo-mean
# MASE but stocks' at seed 0, and raised the single series' at both seeds (0.728 -> 0.769,
# 0.760 -> 0.816): a single series keeps one model.
PANEL_ENSEMBLE = 3


def _room(rows: int, lags: Sequence[int], horizon: int) -> int:
    """Rows left for the context (and for sliding the window) once lags and horizon fit."""
    return rows - max(lags) - horizon


def window_rows(horizon: int) -> int:
    """The rows of the smallest training window of ``horizon`` steps: lag 1, a context of
    ``min(H, 12)`` steps and the H steps, ``H + min(H, 12) + 1``."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return horizon + min(horizon, 12) + 1


def min_length(horizon: int) -> int:
    """The fewest rows a series needs to train a forecaster of ``horizon`` steps on alone:
    ``2 H + min(H, 12) + 1``, one training window (``window_rows``) and H rows more to slide
    it over, so that every lead time is scored in H + 1 distinct windows. Fewer rows fit a
    model to a handful of windows it learns by heart: its intervals measure that fit, not
    the series (a 3-row series gave an 80% interval 0.0007 wide)."""
    return window_rows(horizon) + horizon


def pooled_windows(rows: Sequence[int], horizon: int) -> int:
    """The distinct smallest windows (``window_rows``) that series of ``rows`` rows offer
    together: a global model trains on all of them."""
    need = window_rows(horizon)
    return sum(max(0, r - need + 1) for r in rows)


def max_horizon(rows: int | Sequence[int]) -> int:
    """The longest horizon ``too_short`` keeps a series at on ``rows`` rows (a panel: the
    longest that keeps all of ``rows``' series); 0 when none does."""
    rows = [rows] if isinstance(rows, int | np.integer) else list(rows)
    pairs = list(enumerate(rows))
    return max((h for h in range(1, max(rows) // 2 + 1) if not too_short(pairs, h)),
               default=0)


def too_short(series: Sequence, horizon: int) -> dict[str, int]:
    """``{name: rows}`` of the series too short to train a forecaster of ``horizon`` steps
    on, in their order. Series trained together pool their windows: each needs one window
    of its own (``window_rows``), and those together at least the H + 1 windows that one
    series of ``min_length`` rows offers (else all are too short). A single series is held
    to ``min_length``, the same rule. ``series``: ``DatedSeries`` (anything with ``name``
    and ``values``) or ``(name, rows)`` pairs."""
    pairs = [(s.name, len(s.values)) if hasattr(s, "values") else (s[0], int(s[1]))
             for s in series]
    own = window_rows(horizon)
    if pooled_windows([rows for _, rows in pairs], horizon) < horizon + 1:
        return dict(pairs)
    return {name: rows for name, rows in pairs if rows < own}


class ShortSeriesWarning(UserWarning):
    """A series too short to train the network on: forecast by the statistical forecasts
    alone, or left out (``drop_short``)."""


# The fewest rows the statistical forecasts alone forecast a series from where it is too
# short to train the network on (theta.rolling_origins' fewest rows to fit on), and they
# forecast no further ahead than the series is long: as many rows as steps at least.
STATISTICAL_MIN_ROWS = 8


def statistical_only(rows: int, horizon: int) -> bool:
    """Whether a series of ``rows`` rows is long enough for the statistical forecasts alone
    to forecast ``horizon`` steps from: ``max(H, STATISTICAL_MIN_ROWS)`` rows."""
    return rows >= max(horizon, STATISTICAL_MIN_ROWS)


def drop_short(series: Sequence, horizon: int, statistical: str = ""
               ) -> tuple[list, list, dict[str, int]]:
    """``(the series to train the network on, those too short for it (too_short) that the
    statistical forecasts forecast alone, {name: rows} of the others, left out)``. Without
    ``statistical`` (the statistical forecast's name for messages, e.g. "Theta"; "" when
    the network forecasts alone) none is forecast by the statistical forecasts. A
    DataError (``too_short_message``) when no series is forecast; a ShortSeriesWarning
    names the series the network does not forecast."""
    short = too_short(series, horizon)
    rows = {s.name: len(s.values) for s in series}
    alone = {n: r for n, r in short.items() if statistical and statistical_only(r, horizon)}
    left_out = {n: r for n, r in short.items() if n not in alone}
    if len(left_out) == len(series):
        need = (f"; the statistical forecasts alone need {max(horizon, STATISTICAL_MIN_ROWS)}"
                f" rows" if statistical else "")
        raise DataError(too_short_message(left_out, horizon, rows) + need)
    kept = len(series) - len(short)
    if alone:
        what = (f"the other {kept} trained and forecast" if kept else "no network trained")
        warnings.warn(f"{too_short_message(alone, horizon, rows)}; forecast by {statistical} "
                      f"and SeasonalNaive alone, {what}", ShortSeriesWarning, stacklevel=3)
    if left_out:
        others = "forecast" if alone else "trained and forecast"
        warnings.warn(f"{too_short_message(left_out, horizon, rows)}; left out, the other "
                      f"{len(series) - len(left_out)} {others}", ShortSeriesWarning,
                      stacklevel=3)
    return ([s for s in series if s.name not in short], [s for s in series if s.name in alone],
            left_out)


def too_short_message(short: dict[str, int], horizon: int,
                      panel: dict[str, int] | None = None) -> str:
    """One line naming the series of ``too_short``, their rows, what they needed and the
    longest ``--horizon`` that keeps them. ``panel``: ``{name: rows}`` of every series
    trained together (default: ``short`` alone)."""
    panel = short if panel is None else panel
    listed = ", ".join(f"{name!r} ({rows} rows)" for name, rows in list(short.items())[:5])
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    verb = "is" if len(short) == 1 else "are"
    h, c = horizon, min(horizon, 12)
    if len(panel) == 1:
        need = f"that needs at least {min_length(h)} rows (2 x {h} + {c} + 1)"
    elif pooled_windows(panel.values(), h) < h + 1:
        need = (f"a panel's series together need {h + 1} windows of {window_rows(h)} rows "
                f"({h} + {c} + 1), these offer {pooled_windows(panel.values(), h)}")
    else:
        need = (f"each series of a panel needs at least {window_rows(h)} rows ({h} + {c} + 1,"
                f" one window)")
    longest = max((g for g in range(1, max(panel.values()) // 2 + 1)
                   if not set(short) & set(too_short(list(panel.items()), g))), default=0)
    least = min_length(1) if len(panel) == 1 else window_rows(1)
    fix = f"use --horizon {longest} or less" if longest else (
        f"no horizon fits fewer than {least} rows")
    return (f"series {listed}{more} {verb} too short to train a forecaster of {h} steps on: "
            f"{need}; {fix}")


# Typical magnitudes (median over series of the mean |value|) at which the model reads the
# values as they are; outside, value_unit moves them into this range by a power of ten.
UNIT_RANGE = (1e-2, 1e12)


def value_unit(values: Sequence[np.ndarray]) -> float:
    """The power of ten that brings the series' typical magnitude (median over series of
    mean ``|value|``) into ``UNIT_RANGE``; 1.0 when it is inside, or all values are 0."""
    typical = float(np.median([np.mean(np.abs(v)) for v in values]))
    if typical == 0 or UNIT_RANGE[0] <= typical <= UNIT_RANGE[1]:
        return 1.0
    return 10.0 ** math.floor(math.log10(typical))


def default_config(lengths: Sequence[int], freq: Frequency, horizon: int,
                   **overrides) -> ForecastConfig:
    """Settings for series with ``lengths`` training rows at ``freq``, forecasting ``horizon``.

    - lags: 1 and the frequency's seasonal lags, dropping the largest ones while the
      longest series cannot fit a window with a context of ``min(H, 12)`` steps.
    - horizon: H, or about half the rows when even lag 1 leaves no room for a context of
      ``min(H, 12)`` next to H (forecasts still run for the full H).
    - validation: the last k*H rows of each series (k windows of H steps, k about a tenth of
      the rows over H, 1 to 20) when what is left still fits the lags, a context and H more
      window positions; else none (a fixed number of steps).
    - context: max(2H, 2m, 24) steps (m the season), shrunk so that a short series still
      offers about half its room as distinct window positions.
    - ensemble: ``PANEL_ENSEMBLE`` models when several series are trained together, one
      for a single series (docs/forecast-panel.md, "after the panel ensemble").

    A series of 4 seasons (60 rows without a season) always gets a config. ``overrides``
    replace any field (e.g. ``context_length=48``); lags and context are checked against
    the data.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    # sized for the longest series: shorter ones give fewer windows (or none), and need only
    # more rows than the largest lag to be forecast
    n = max(lengths)
    c_min = max(1, min(horizon, 12))
    lags = [1, *freq.lags]
    dropped = []
    while len(lags) > 1 and _room(n, lags, horizon) < c_min:
        dropped.append(lags.pop())
    if "lags" in overrides:
        lags = sorted(set(overrides.pop("lags")) | {1})
    if _room(n, lags, horizon) < c_min:
        # too short for a full horizon: train on shorter windows; forecasts still sample
        # the whole horizon step by step
        horizon = max(1, (n - max(lags)) // 2)
        c_min = 1
    room = _room(n, lags, horizon)
    if room < 1:
        raise DataError(
            f"the series are too short: {n} training rows cannot hold lag {max(lags)}, a "
            f"context and a horizon; need at least {max(lags) + 2} rows"
        )
    validation = 0
    if _room(n - horizon, lags, horizon) >= c_min + horizon:
        # several H-row validation windows on long series (about a tenth of the rows, at
        # most 20 windows): one window of a few steps is too noisy to stop on
        validation = horizon * min(20, max(1, round(0.1 * n / horizon)))
        while validation > horizon and _room(n - validation, lags, horizon) < 2 * c_min:
            validation -= horizon
    room -= validation
    target = max(2 * horizon, 2 * freq.season, 24)
    context = max(min(c_min, room), min(target, room - room // 2))
    cfg = ForecastConfig(freq=freq.name, horizon=horizon, context_length=context,
                         lags=tuple(lags), calendar=freq.calendar, validation=validation,
                         season=freq.season,
                         ensemble=PANEL_ENSEMBLE if len(lengths) > 1 else 1,
                         extra={"dropped_lags": dropped} if dropped else {})
    cfg = replace(cfg, **overrides)
    if _room(n - cfg.validation, cfg.lags, horizon) < cfg.context_length:
        raise DataError(
            f"context length {cfg.context_length} does not fit: the longest series has {n} "
            f"training rows, {cfg.validation} for validation, lags up to {cfg.max_lag} and a "
            f"horizon of {horizon} leave room for {_room(n - cfg.validation, cfg.lags, horizon)}"
        )
    return cfg


@dataclass
class Windows:
    """A batch of B windows: raw ``values [B, max_lag + C + H]`` (float32), calendar
    features and covariate inputs of the scored steps ``calendar [B, C + H, K]``
    (``covariates.window_inputs``: centred over the context, past-only ones cleared after
    it), series index
    ``series [B]``."""

    values: Tensor
    calendar: Tensor
    series: Tensor


class WindowSampler:
    """Uniform random windows over every (series, start) that fits before the series' end.

    Args:
        values: one ``[T_i]`` array per series (only rows ``< ends[i]`` are ever read).
        calendars: one ``[T_i, K]`` array per series (features of every row: calendar,
            then ``covariates.covariate_features``).
        ends: training end of each series (exclusive); windows stay strictly before it.
        config: supplies C, H and the lags.
    """

    def __init__(self, values: Sequence[np.ndarray], calendars: Sequence[np.ndarray],
                 ends: Sequence[int], config: ForecastConfig, seed: int = 0) -> None:
        self.cfg = config
        self.values = [torch.as_tensor(np.asarray(v[:e], dtype=np.float32))
                       for v, e in zip(values, ends)]
        self.calendars = [torch.as_tensor(np.asarray(c[:e], dtype=np.float32))
                          for c, e in zip(calendars, ends)]
        span = config.context_length + config.horizon
        # window start s (first scored row) ranges over [max_lag, end - C - H]
        self.starts = [(i, s) for i, v in enumerate(self.values)
                       for s in range(config.max_lag, len(v) - span + 1)]
        if not self.starts:
            raise DataError(
                f"no training window fits: windows need {config.window_length} rows, the "
                f"longest series offers {max(len(v) for v in self.values)}"
            )
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Distinct windows."""
        return len(self.starts)

    def sample(self, batch_size: int) -> Windows:
        picks = self.rng.integers(0, len(self.starts), size=batch_size)
        return self.gather([self.starts[k] for k in picks])

    def gather(self, starts: Sequence[tuple[int, int]]) -> Windows:
        """The windows whose first scored row is ``s`` in series ``i`` for each ``(i, s)``."""
        cfg = self.cfg
        span = cfg.context_length + cfg.horizon
        vals = torch.stack([self.values[i][s - cfg.max_lag: s + span] for i, s in starts])
        cal = torch.stack([self.calendars[i][s: s + span] for i, s in starts])
        return Windows(vals, window_inputs(cal, cfg, cfg.context_length),
                       torch.tensor([i for i, _ in starts]))


def last_starts(cfg: ForecastConfig, ends: Sequence[int], count: int = 1
                ) -> list[tuple[int, int]]:
    """``(series, first scored row)`` of ``count`` windows per series whose horizons tile
    rows ``[ends[i] - count * H, ends[i])``; a window's horizon starts ``C`` rows later."""
    span = cfg.context_length + cfg.horizon
    return [(i, e - span - j * cfg.horizon) for i, e in enumerate(ends) for j in range(count)
            if e - span - j * cfg.horizon >= cfg.max_lag]


def last_windows(sampler: WindowSampler, values: Sequence[np.ndarray],
                 calendars: Sequence[np.ndarray], ends: Sequence[int], count: int = 1
                 ) -> Windows | None:
    """``count`` windows per series whose horizons tile rows ``[ends[i] - count * H,
    ends[i])`` (the validation rows, in ``last_starts``' order), or None when no series is
    long enough."""
    cfg = sampler.cfg
    span = cfg.context_length + cfg.horizon
    picks = last_starts(cfg, ends, count)
    if not picks:
        return None
    vals = torch.stack([torch.as_tensor(np.asarray(values[i][s - cfg.max_lag: s + span],
                                                   dtype=np.float32)) for i, s in picks])
    cal = torch.stack([torch.as_tensor(np.asarray(calendars[i][s: s + span], dtype=np.float32))
                       for i, s in picks])
    return Windows(vals, window_inputs(cal, cfg, cfg.context_length),
                   torch.tensor([i for i, _ in picks]))
