"""Covariates: what the forecaster reads besides the target and the calendar (issue 30).

Three kinds, as neuralforecast (``futr_exog_list``, ``hist_exog_list``, ``stat_exog_list``),
GluonTS DeepAR (``feat_dynamic_real``, ``feat_static_cat``) and darts (future, past and
static covariates) have them:

- **future-known** (a working-day flag, a holiday, a planned price): step t reads the value
  at t, in the context and in the horizon alike, so a forecast needs the horizon's values.
- **past-only** (observed with the target, not known ahead): step t reads the value at t - 1
  (lag 1, like the target's first lag) and an ``observed`` input of 1 while row t - 1 is in
  the context; after it, 0 and 0. Training windows are cut the same way at the end of their
  context (:func:`window_inputs`), so training sees what a forecast sees, and a forecast
  never reads a past-only value after its context.
- **static** (one value per series): a number is a constant input; text is a category,
  one-hot encoded (the LSTM's input weights on a one-hot are an embedding of the category).
  The series id is one already (the series embedding).

Numbers are normalized by their mean and standard deviation over the training rows (over
the series for a static number), kept in ``ForecastConfig.covariate_stats`` and saved with
the model, so they enter at the scale of the scaled target. A covariate with a missing or
infinite value, or one that never changes, is a DataError naming it.

Each future-known and past-only covariate enters twice: as normalized (its level) and minus
its mean over the window's context (its change). The target is standardized per window
(``features.window_scale``), which takes its context mean off: y = 5 x becomes
z = 5 (x - mean x) / scale, so without the centred column the model must infer each window's
mean of x from the context (an LSTM of 8 cells trained 150 steps did not: its median's error
was 0.27-0.45 of the target-only one's over 3 seeds; with it, 0.07-0.11).

The per-step inputs follow the calendar features in the model's input (and in a window's
``calendar`` tensor): ``[calendar | future | past | observed | static numbers | one-hots |
future centred | past centred]``, the last two added per window (:func:`window_inputs`).
Without covariates nothing is added: the model is the one without this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.errors import DataError
from rnnkit.forecasting.features import calendar_features
from rnnkit.forecasting.frequency import format_dates, to_steps


class ForecastConfig(Protocol):
    """The fields of ``windows.ForecastConfig`` this module reads (a Protocol: windows
    imports this module, so this module cannot import windows)."""

    calendar: tuple[str, ...]
    validation: int
    future_covariates: tuple[str, ...]
    past_covariates: tuple[str, ...]
    static_covariates: tuple[str, ...]
    covariate_stats: dict
    static_levels: dict

__all__ = ["Covariates", "covariate_settings", "covariate_width", "covariate_features",
           "check_training_windows", "step_inputs", "window_inputs", "KINDS", "FUTURE_HINT"]

KINDS = ("future", "past", "static")
FUTURE_HINT = "rnnkit forecast: --future FILE.csv with the date (and id) column and these"


@dataclass
class Covariates:
    """The covariates of one series: ``future`` and ``past`` map a name to ``[T]`` values,
    one per row of the series (a forecast's ``future`` arrays go on for the horizon's
    rows), ``static`` a name to one number or category."""

    future: dict[str, np.ndarray] = field(default_factory=dict)
    past: dict[str, np.ndarray] = field(default_factory=dict)
    static: dict[str, float | str] = field(default_factory=dict)

    def rows(self, start: int, stop: int | None = None) -> Covariates:
        """Rows ``[start, stop)`` of the dynamic covariates (the statics as they are)."""
        return Covariates({k: np.asarray(v)[start:stop] for k, v in self.future.items()},
                          {k: np.asarray(v)[start:stop] for k, v in self.past.items()},
                          dict(self.static))

    def head(self, n: int) -> Covariates:
        """The first ``n`` rows (e.g. the training rows before a held-out tail)."""
        return self.rows(0, n)

    def kind(self, kind: str) -> dict:
        return getattr(self, kind)


def _is_number(value: object) -> bool:
    return isinstance(value, Real | np.number | np.bool_)


def _check_names(covariates: Sequence[Covariates], names: Sequence[str]) -> None:
    """Every series has the first one's covariates of each kind, and no name is of two kinds."""
    first = covariates[0]
    seen: dict[str, str] = {}
    for kind in KINDS:
        for name in first.kind(kind):
            if name in seen:
                raise DataError(f"covariate {name!r} is both {seen[name]} and {kind}; give it "
                                "as one kind")
            seen[name] = kind
    for series, cov in zip(names, covariates):
        for kind in KINDS:
            if set(cov.kind(kind)) != set(first.kind(kind)):
                diff = sorted(set(cov.kind(kind)) ^ set(first.kind(kind)))
                raise DataError(f"series {series!r} and {names[0]!r} differ in their {kind} "
                                f"covariates ({diff}); give every series the same ones")


def _shown(dates: np.ndarray, cfg: ForecastConfig | None = None) -> str:
    """``dates`` as a message names them: step numbers for a model of steps (whose dates
    ``Forecaster.forecast`` handles as minutes)."""
    if cfg is not None and cfg.freq == "steps":
        dates = to_steps(dates)
    return ", ".join(format_dates(dates))


def _finite(values: np.ndarray, name: str, series: str, dates: np.ndarray,
            cfg: ForecastConfig | None = None) -> np.ndarray:
    """``values`` as float64, or a DataError naming the rows (dates) that are not finite."""
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"covariate {name!r} of series {series!r} is not numeric; a "
                        "category that varies within a series is not supported") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = _shown(dates[bad[:5]], cfg)
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise DataError(f"covariate {name!r} of series {series!r} is missing or infinite at "
                        f"{where}{more}; fill those rows")
    return values


def _constant(rows: np.ndarray) -> bool:
    return not rows.std() > 1e-12 * max(1.0, float(np.abs(rows).max()))


def _dynamic_stats(name: str, kind: str, arrays: list[np.ndarray]) -> list[float]:
    rows = np.concatenate(arrays)
    std = float(rows.std())
    if _constant(rows):
        raise DataError(f"{kind} covariate {name!r} is {rows[0]:g} on every training row: "
                        "it says nothing the model could learn; leave it out")
    return [float(rows.mean()), std]


def _static_settings(name: str, values: list, names: Sequence[str]
                     ) -> tuple[list[float] | None, list[str] | None]:
    """(stats of a numeric static, None) or (None, levels of a categorical one)."""
    if all(_is_number(v) for v in values):
        numbers = np.asarray(values, dtype=np.float64)
        bad = [s for s, v in zip(names, numbers) if not np.isfinite(v)]
        if bad:
            raise DataError(f"static covariate {name!r} is missing or infinite for series "
                            f"{bad[:5]}")
        if np.ptp(numbers) == 0:
            raise DataError(f"static covariate {name!r} is {numbers[0]:g} for every series: it "
                            "cannot tell them apart; leave it out")
        return [float(numbers.mean()), float(numbers.std())], None
    levels = sorted({str(v) for v in values})
    if len(levels) == 1:
        raise DataError(f"static covariate {name!r} is {levels[0]!r} for every series: it "
                        "cannot tell them apart; leave it out")
    return None, levels


def covariate_settings(names: Sequence[str], dates: Sequence[np.ndarray],
                       covariates: Sequence[Covariates]) -> dict:
    """The ``ForecastConfig`` fields for training series ``names`` (rows at ``dates``) with
    ``covariates`` (one per series): the names of each kind, the normalization of each number
    (mean, std over the training rows) and the levels of each category. A DataError names a
    covariate missing in some series, of the wrong length, not finite, or constant."""
    if len(covariates) != len(names):
        raise ValueError(f"{len(covariates)} covariates for {len(names)} series; give one "
                         "Covariates per series")
    if not covariates:
        return {}
    _check_names(covariates, names)
    first = covariates[0]
    stats: dict[str, list[float]] = {}
    levels: dict[str, list[str]] = {}
    for kind in ("future", "past"):
        for name in first.kind(kind):
            arrays = []
            for series, d, cov in zip(names, dates, covariates):
                values = np.asarray(cov.kind(kind)[name])
                if values.shape != (len(d),):
                    raise DataError(f"{kind} covariate {name!r} of series {series!r} has "
                                    f"{values.shape} values for {len(d)} rows; give one a row")
                arrays.append(_finite(values, name, series, d))
            stats[name] = _dynamic_stats(name, kind, arrays)
    for name in first.static:
        number, level = _static_settings(name, [c.static[name] for c in covariates], names)
        if number is not None:
            stats[name] = number
        else:
            levels[name] = level
    return {"future_covariates": tuple(first.future), "past_covariates": tuple(first.past),
            "static_covariates": tuple(first.static), "covariate_stats": stats,
            "static_levels": levels}


def check_training_windows(cfg: ForecastConfig, lengths: Sequence[int],
                           covariates: Sequence[Covariates]) -> None:
    """A DataError when a dynamic covariate changes only in the validation rows (the last
    ``cfg.validation`` of each series of ``lengths`` rows): no training window reads a
    change, so the model cannot learn what it does (found on seatbelts' ``law``, 1 from
    1983-02 on: a backtest that far had every change in the held-out rows)."""
    for kind in ("future", "past"):
        for name in getattr(cfg, f"{kind}_covariates"):
            rows = np.concatenate([np.asarray(c.kind(kind)[name], np.float64)[: n - cfg.validation]
                                   for c, n in zip(covariates, lengths)])
            if rows.size and _constant(rows):
                raise DataError(
                    f"{kind} covariate {name!r} is {rows[0]:g} on every row the training "
                    f"windows read: it changes only in the last {cfg.validation} rows of each "
                    "series, held out for early stopping, so the model cannot learn it; leave "
                    "it out, or train on more rows where it changes")


def _row_width(cfg: ForecastConfig) -> int:
    """Columns of :func:`covariate_features`: the inputs of a row before ``window_inputs``."""
    past = len(cfg.past_covariates)
    numbers = sum(name not in cfg.static_levels for name in cfg.static_covariates)
    ones = sum(len(levels) for levels in cfg.static_levels.values())
    return len(cfg.future_covariates) + past + (1 if past else 0) + numbers + ones


def covariate_width(cfg: ForecastConfig) -> int:
    """Input columns the covariates of ``cfg`` add to each step of the model (0 without
    covariates): a row's, then the centred dynamic ones."""
    dynamic = len(cfg.future_covariates) + len(cfg.past_covariates)
    return _row_width(cfg) + dynamic


def _check_known(cfg: ForecastConfig, cov: Covariates, series: str) -> None:
    """A DataError when ``cov`` lacks a covariate the model was trained with, or has one it
    was not."""
    for kind in KINDS:
        want = set(getattr(cfg, f"{kind}_covariates"))
        have = set(cov.kind(kind))
        if want - have:
            raise DataError(f"series {series!r}: the model was trained with the {kind} "
                            f"covariates {sorted(want)}; {sorted(want - have)} not given")
        if have - want:
            raise DataError(f"series {series!r}: {kind} covariates {sorted(have - want)} were "
                            f"not trained on (the model knows {sorted(want) or 'none'})")


def _normalized(cfg: ForecastConfig, name: str, values: np.ndarray) -> np.ndarray:
    mean, std = cfg.covariate_stats[name]
    return (values - mean) / std


def _static_columns(cfg: ForecastConfig, cov: Covariates, series: str) -> list[float]:
    cols: list[float] = []
    for name in cfg.static_covariates:
        if name in cfg.static_levels:
            continue
        value = np.float64(cov.static[name]) if _is_number(cov.static[name]) else np.nan
        if not np.isfinite(value):
            raise DataError(f"static covariate {name!r} of series {series!r} is "
                            f"{cov.static[name]!r}; it was trained as a number")
        cols.append(float(_normalized(cfg, name, value)))
    for name, levels in cfg.static_levels.items():
        value = str(cov.static[name])
        if value not in levels:
            raise DataError(f"static covariate {name!r} of series {series!r} is {value!r}, "
                            f"not one of the categories it was trained on: {levels}")
        cols += [float(level == value) for level in levels]
    return cols


def covariate_features(cfg: ForecastConfig, cov: Covariates | None, dates: np.ndarray,
                       observed: int | None = None, series: str = "") -> np.ndarray:
    """``[T, W]`` float32: the covariate inputs of the steps at each of
    ``dates [T]`` (the series' rows, a forecast's going on into its horizon).

    Rows from ``observed`` on are not the series' own (a forecast's horizon): future-known
    values must be given for them (a DataError names the dates without), past-only ones are
    never read there. ``None``: every row is observed (training)."""
    rows = len(dates)
    observed = rows if observed is None else observed
    if cov is None:
        cov = Covariates()
    _check_known(cfg, cov, series)
    cols = []
    for name in cfg.future_covariates:
        values = np.asarray(cov.future[name], dtype=np.float64)[:rows]
        missing = np.ones(rows, dtype=bool)
        missing[: len(values)] = ~np.isfinite(values)
        if missing[observed:].any():
            where = _shown(dates[observed:][missing[observed:]][:6], cfg)
            raise DataError(f"future covariate {name!r} of series {series!r} has no values "
                            f"for the horizon's {where}; give them ({FUTURE_HINT})")
        cols.append(_normalized(cfg, name, _finite(values, name, series, dates, cfg)))
    if cfg.past_covariates:
        for name in cfg.past_covariates:
            values = np.zeros(rows)
            seen = np.asarray(cov.past[name])[:observed]
            if len(seen) < observed:
                raise DataError(f"past covariate {name!r} of series {series!r} has "
                                f"{len(seen)} values for {observed} rows; give one a row")
            seen = _finite(seen, name, series, dates[:observed], cfg)
            values[1: len(seen) + 1] = _normalized(cfg, name, seen)[: rows - 1]
            cols.append(values)  # row t holds the value at t - 1
        cols.append(np.ones(rows))  # observed; window_inputs clears it after the context
    statics = _static_columns(cfg, cov, series)
    cols += [np.full(rows, value) for value in statics]
    if not cols:
        return np.zeros((rows, 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


def step_inputs(cfg: ForecastConfig, dates: np.ndarray, cov: Covariates | None = None,
                observed: int | None = None, series: str = "") -> np.ndarray:
    """``[T, K]`` float32: the calendar features of ``dates [T]`` then the covariate inputs
    (:func:`covariate_features`, same arguments) of their steps: the model's inputs besides
    the lags and the series embedding, before a window's :func:`window_inputs`."""
    cal = calendar_features(dates, cfg.calendar)
    if not covariate_width(cfg):
        covariate_features(cfg, cov, dates, observed, series)  # refuses covariates given
        return cal
    return np.concatenate([cal, covariate_features(cfg, cov, dates, observed, series)], 1)


def window_inputs(features: Tensor, cfg: ForecastConfig, observed: int) -> Tensor:
    """The inputs ``[B, S, K']`` of a window's S steps from their ``step_inputs``
    ``features [B, S, K]``, whose first ``observed`` steps are the context: the centred
    dynamic covariates appended (minus their mean over the context steps), and the past-only
    columns, centred or not, and the ``observed`` flag set to 0 at steps ``observed + 1`` on
    (they read rows after the context's, which a forecast does not know)."""
    if not covariate_width(cfg):
        return features
    start = 2 * len(cfg.calendar)
    future, past = len(cfg.future_covariates), len(cfg.past_covariates)
    dynamic = features[..., start: start + future + past]
    centred = dynamic - dynamic[:, :observed].mean(1, keepdim=True)
    features = torch.cat([features, centred], -1)
    if past:
        features[:, observed + 1:, start + future: start + future + past + 1] = 0
        features[:, observed + 1:, -past:] = 0
    return features
