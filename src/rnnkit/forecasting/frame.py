"""The forecaster on long DataFrames, in the convention of statsforecast, neuralforecast and
mlforecast: ``unique_id, ds, y`` rows in, ``unique_id, ds, DeepAR, DeepAR-median,
DeepAR-lo-80, DeepAR-hi-80`` rows out.

    from rnnkit.forecasting.frame import RNNForecast
    rf = RNNForecast(h=12, max_time=60).fit(df)              # df: unique_id, ds, y
    rf.predict(level=[80, 95])                               # the 12 steps after each series
    rf.cross_validation(df, h=12, n_windows=3)               # + cutoff and y columns

Covariates in neuralforecast's names: ``futr_exog_list`` (known ahead: ``predict`` reads
their horizon values from ``futr_df``), ``hist_exog_list`` (past-only) and
``stat_exog_list`` (one value per series, from ``df`` or ``fit``'s ``static_df``), columns of
``df``. An integer ``ds`` is a series without dates (steps), returned as integers.

A thin layer over the library: each series becomes a :class:`DatedSeries`, ``fit`` calls
:func:`train_forecaster`, ``predict`` :meth:`Forecaster.forecast` and ``cross_validation``
:func:`backtest`, so a frame gives the numbers a CSV of the same rows gives ``load_series``
at the same seed. pandas is needed by this module only (``pip install 'rnnkit[pandas]'``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import pandas as pd
except ImportError:  # pragma: no cover - the one optional dependency of this module
    raise ImportError("rnnkit.forecasting.frame needs pandas: pip install 'rnnkit[pandas]'"
                      ) from None

from rnnkit.data.errors import DataError
from rnnkit.forecasting.backtest import backtest
from rnnkit.forecasting.covariates import Covariates
from rnnkit.forecasting.data import DatedSeries, default_horizon, series_covariates
from rnnkit.forecasting.fit import FitReport, train_forecaster
from rnnkit.forecasting.frequency import (
    FREQUENCIES,
    format_dates,
    future_dates,
    grid_break,
    infer_frequency,
    read_dates,
    to_steps,
)
from rnnkit.forecasting.model import Forecast, Forecaster
from rnnkit.forecasting.windows import ForecastConfig

__all__ = ["RNNForecast"]

_TRAINING = {"h", "max_time", "max_steps", "seed", "ensemble"}  # RNNForecast's own arguments
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(ForecastConfig)} - {"freq", "horizon"}


@dataclasses.dataclass
class _Panel:
    """The series of a frame and how to write them back: the frame's id value of each
    series (by name), the column names, and the dtype (or date format) of its time column."""

    series: list[DatedSeries]
    ids: dict[str, Any]
    id_col: str
    time_col: str
    target_col: str
    id_dtype: Any
    time_dtype: Any  # datetime64 or integer (steps), or None when the dates were text

    def times(self, dates: np.ndarray, date_format: str) -> Any:
        """``dates [T]`` (datetime64[m], or steps: int64 or as ``Forecaster.forecast``
        returns them) as the frame wrote its time column."""
        if self.time_dtype is None:
            return format_dates(dates, date_format)
        if pd.api.types.is_integer_dtype(self.time_dtype):
            return to_steps(dates).astype(self.time_dtype)
        return pd.Series(dates.astype("datetime64[ns]")).astype(self.time_dtype).to_numpy()


@dataclasses.dataclass
class _Exog:
    """The covariate columns of a frame, in neuralforecast's names."""

    futr: list[str]
    hist: list[str]
    stat: list[str]

    def __bool__(self) -> bool:
        return bool(self.futr or self.hist or self.stat)


class RNNForecast:
    """DeepAR forecasts of the series of a long DataFrame (statsforecast's interface).

    Args:
        h: the horizon trained for (default: ``rnnkit forecast``'s, one season, two for
            hourly data, 10 steps for yearly); ``predict`` may ask for another.
        freq: the frequency the dates must have ("daily", "monthly"... or a pandas alias
            such as "D", "MS", "QS"); default: inferred from the dates.
        max_time, max_steps: training budget in seconds and optimizer steps (None: none);
            with ``max_time`` the steps taken vary with the machine, so a run is repeatable
            only under ``max_steps`` alone (``max_time=None``).
        seed: training and sampling seed; ``num_samples``: sample paths per forecast.
        ensemble: models trained from seeds ``seed ..`` whose paths a forecast pools
            (None: the library's default, ``windows.default_config``'s).
        alias: the name of the forecast columns (``DeepAR``, ``DeepAR-lo-80``, ...).
        futr_exog_list, hist_exog_list, stat_exog_list: covariate columns of ``df``, known
            for the horizon too (``predict`` needs ``futr_df``), observed only (past-only), or
            one value per series (``forecasting.covariates``).
        season: steps in a season (1: none), replacing the frequency's; for an integer
            ``ds`` inferred from the values when not given (as ``load_series``).
        **config: fields of :class:`ForecastConfig` (``hidden_size=20``, ``lags=(1, 12)``)
            for ``default_config``.

    After ``fit``: ``forecaster_`` (the :class:`Forecaster`), ``report_`` (its
    :class:`FitReport`; ``report_.statistical_only`` names the series too short to train the
    network on, which the statistical forecasts forecast alone, ``report_.left_out`` those
    too short for them too, which ``predict`` leaves out).
    """

    def __init__(self, h: int | None = None, freq: str | None = None,
                 max_time: float | None = 60, max_steps: int | None = None, seed: int = 0,
                 num_samples: int = 200, ensemble: int | None = None, alias: str = "DeepAR",
                 futr_exog_list: Sequence[str] = (), hist_exog_list: Sequence[str] = (),
                 stat_exog_list: Sequence[str] = (), season: int | None = None,
                 **config: Any) -> None:
        unknown = sorted(set(config) - _CONFIG_FIELDS)
        if unknown:
            raise TypeError(f"RNNForecast: unknown argument(s) {unknown}; the settings are "
                            f"{sorted(_CONFIG_FIELDS)}")
        if h is not None:
            _check_horizon(h)
        if num_samples < 1:
            raise DataError(f"num_samples must be >= 1, got {num_samples}")
        self.h, self.freq, self.max_time, self.max_steps = h, freq, max_time, max_steps
        self.seed, self.num_samples, self.ensemble, self.alias = seed, num_samples, ensemble, alias
        self.exog = _Exog(list(futr_exog_list), list(hist_exog_list), list(stat_exog_list))
        self.season = season
        self.config = config
        self.forecaster_: Forecaster | None = None
        self.report_: FitReport | None = None
        self._panel: _Panel | None = None

    def fit(self, df: pd.DataFrame, id_col: str = "unique_id", time_col: str = "ds",
            target_col: str = "y", static_df: pd.DataFrame | None = None) -> RNNForecast:
        """Train on every row of ``df`` (one series per ``id_col`` value, in order of first
        appearance, rows sorted by ``time_col``); returns self. ``static_df``: one row per
        id with the ``stat_exog_list`` columns (default: those columns of ``df``, which must
        not vary within a series). Bad input is a DataError naming the series and rows: a
        missing column, a missing id, a value or covariate that is not a finite number, a
        date repeated or missing within a series, dates off ``freq``."""
        panel = self._read(df, id_col, time_col, target_col, static_df)
        h = self.h if self.h is not None else default_horizon(panel.series)
        self.forecaster_, self.report_ = train_forecaster(
            panel.series, h, max_time=self.max_time, max_steps=self.max_steps, seed=self.seed,
            covariates=series_covariates(panel.series), **self._ensemble(), **self.config)
        self._panel = panel
        return self

    def predict(self, h: int | None = None, level: Sequence[float] | None = None,
                futr_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """The ``h`` steps (default: the trained horizon) after the end of each series
        ``fit`` trained on: ``id_col, time_col, <alias>`` (the mean of the sample paths),
        ``<alias>-median`` and, for each ``level`` L (in percent), ``<alias>-lo-L`` and
        ``<alias>-hi-L``, the central L% interval of the paths. One row per series and
        step, series in ``fit``'s order. Steps beyond the trained horizon warn.
        ``futr_df``: the ``futr_exog_list`` columns at those steps (``id_col``, ``time_col``
        and the columns; other rows are ignored); a DataError names the dates it lacks."""
        if self.forecaster_ is None or self._panel is None:
            raise RuntimeError("RNNForecast.predict: call fit(df) first")
        h = self.forecaster_.config.horizon if h is None else _check_horizon(h)
        levels = _levels(level)
        trained = set(self.forecaster_.forecast_series)
        series = [s for s in self._panel.series if s.name in trained]
        covs = _horizon_covariates(self._panel, series, self.exog.futr, futr_df, h,
                                   self.forecaster_.freq)
        forecasts = [(s, self.forecaster_.forecast(s.values, s.dates, h, self.num_samples,
                                                    series=s.name, seed=self.seed,
                                                    covariates=c))
                     for s, c in zip(series, covs)]
        return _frame(self._panel, forecasts, levels, self.alias)

    def _ensemble(self) -> dict[str, int]:
        """``{"ensemble": K}`` when one was given; else nothing (the library's default)."""
        return {} if self.ensemble is None else {"ensemble": self.ensemble}

    def _read(self, df: pd.DataFrame, id_col: str, time_col: str, target_col: str,
              static_df: pd.DataFrame | None = None) -> _Panel:
        """The series of ``df`` with their covariates and this forecaster's season."""
        panel = _read_frame(df, id_col, time_col, target_col, self.freq, self.exog, static_df)
        if self.season is not None:
            panel.series = [dataclasses.replace(s, season=self.season) for s in panel.series]
        return panel

    def cross_validation(self, df: pd.DataFrame, h: int, n_windows: int = 1,
                         step_size: int | None = None, level: Sequence[float] | None = None,
                         refit: bool = True, id_col: str = "unique_id", time_col: str = "ds",
                         target_col: str = "y", static_df: pd.DataFrame | None = None
                         ) -> pd.DataFrame:
        """Rolling-origin forecasts (:func:`backtest`): ``n_windows`` cutoffs ``step_size``
        rows apart (default ``h``), the last ``h`` rows before each series' end; the model
        is trained on the rows up to each cutoff (once, on the first, when not ``refit``)
        and forecasts the ``h`` after it. Returns ``predict``'s columns with ``cutoff``
        (the last training date) and ``target_col`` (the actual value) after the time
        column, in statsforecast's order: by window, then series. The covariate columns of
        ``df`` are read as ``fit`` reads them; each window's forecast reads the future-known
        ones of its horizon rows from ``df``. Leaves ``fit``'s model alone."""
        _check_horizon(h)
        if not isinstance(n_windows, int | np.integer) or n_windows < 1:
            raise DataError(f"n_windows must be an integer >= 1, got {n_windows!r}")
        if step_size is not None and (not isinstance(step_size, int | np.integer)
                                      or step_size < 1):
            raise DataError(f"step_size must be an integer >= 1, got {step_size!r}")
        levels = _levels(level)
        panel = self._read(df, id_col, time_col, target_col, static_df)
        forecasts: list[tuple[DatedSeries, Forecast, DatedSeries]] = []
        backtest(panel.series, h, windows=n_windows, step=step_size, refit=refit,
                 max_time=self.max_time, max_steps=self.max_steps, seed=self.seed,
                 num_samples=self.num_samples, **self._ensemble(),
                 on_forecast=lambda s, t, fc: forecasts.append((t, fc, s)),
                 covariates=series_covariates(panel.series), **self.config)
        out = _frame(panel, [(t, fc) for t, fc, _ in forecasts], levels, self.alias)
        cutoffs = [np.repeat(t.dates[-1:], h) for t, _, _ in forecasts]
        actual = [s.values[len(t.values): len(t.values) + h] for t, _, s in forecasts]
        out.insert(2, "cutoff", np.concatenate([panel.times(c, t.date_format) for c, (t, _, _)
                                                in zip(cutoffs, forecasts)]))
        out.insert(3, target_col, np.concatenate(actual).astype(np.float64))
        return out


def _check_horizon(h: Any) -> int:
    if isinstance(h, bool) or not isinstance(h, int | np.integer) or h < 1:
        raise DataError(f"h must be an integer >= 1 (steps to forecast), got {h!r}")
    return int(h)


def _levels(level: Sequence[float] | None) -> list[float]:
    """The interval levels in percent, ascending; a DataError for one outside (0, 100)."""
    levels = sorted(float(x) for x in (level or ()))
    bad = [x for x in levels if not 0 < x < 100]
    if bad:
        raise DataError(f"level must hold percentages in (0, 100), e.g. level=[80, 95]; got "
                        f"{list(level)}")
    return levels


def _frame(panel: _Panel, forecasts: Sequence[tuple[DatedSeries, Forecast]],
           levels: list[float], alias: str) -> pd.DataFrame:
    """One row per (series, forecast date): id, time, mean, median and the intervals of
    each forecast of the series (its ``DatedSeries`` gives the id and the date format)."""
    # (100 - L) / 200, not 0.5 - L / 200: the latter gives 0.09999999999999998 for L = 80
    tails = [(100 - lv) / 200 for lv in reversed(levels)] + [(100 + lv) / 200 for lv in levels]
    # the quantiles over the paths as Forecaster.forecast takes them: one call, all levels
    qs = [np.quantile(fc.samples, [0.5, *tails], axis=0) for _, fc in forecasts]
    names = ([f"{alias}-median"] + [f"{alias}-lo-{lv:g}" for lv in reversed(levels)]
             + [f"{alias}-hi-{lv:g}" for lv in levels])
    ids = [panel.ids[s.name] for s, fc in forecasts for _ in fc.dates]
    out = pd.DataFrame({
        panel.id_col: pd.Series(ids, dtype=panel.id_dtype),
        panel.time_col: np.concatenate([panel.times(fc.dates, s.date_format)
                                        for s, fc in forecasts]),
        alias: np.concatenate([fc.mean for _, fc in forecasts]).astype(np.float64),
    })
    for k, name in enumerate(names):
        out[name] = np.concatenate([q[k] for q in qs]).astype(np.float64)
    return out


def _read_frame(df: pd.DataFrame, id_col: str, time_col: str, target_col: str,
                freq: str | None, exog: _Exog | None = None,
                static_df: pd.DataFrame | None = None) -> _Panel:
    """The series of ``df`` with the covariates ``exog`` names, checked (see
    ``RNNForecast.fit``)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    exog = exog or _Exog([], [], [])
    missing = [c for c in (id_col, time_col, target_col) if c not in df.columns]
    if missing:
        raise DataError(f"the DataFrame has no column {', '.join(map(repr, missing))} "
                        f"(columns: {list(df.columns)}); name its columns with id_col=, "
                        "time_col=, target_col=")
    _check_exog(df, exog, static_df, (id_col, time_col, target_col))
    if df.empty:
        raise DataError("the DataFrame has no rows")
    no_id = np.flatnonzero(df[id_col].isna().to_numpy())
    if no_id.size:
        raise DataError(f"column {id_col!r} is missing at rows {_rows(df, no_id)}; every row "
                        "needs the id of its series")
    values = _numbers(df[target_col])
    dates, date_format = _dates(df[time_col], time_col)
    keys = df[id_col].to_numpy()
    names = [str(k) for k in pd.unique(keys)]
    if len(set(names)) < len(names):
        raise DataError(f"column {id_col!r} holds ids that read alike as text "
                        f"({names[:10]}); give each series one id")
    ids = dict(zip(names, pd.unique(keys)))
    want = _frequency(freq) if freq is not None else None
    dynamic = {c: _numbers(df[c], target=False) for c in exog.futr + exog.hist}
    statics = _statics(df, static_df, exog.stat, id_col, names, ids)
    series = []
    for name, rows in zip(names, _groups(keys)):
        order = rows[np.argsort(dates[rows], kind="stable")]
        one = _series(name, dates[order], values[order], df.index[order], want,
                      (target_col, time_col, id_col, date_format))
        if exog:
            one.covariates = Covariates(
                {c: _finite(dynamic[c][order], c, name, df.index[order]) for c in exog.futr},
                {c: _finite(dynamic[c][order], c, name, df.index[order]) for c in exog.hist},
                statics[name])
        series.append(one)
    time_dtype = None if date_format else df[time_col].dtype
    return _Panel(series, ids, id_col, time_col, target_col, df[id_col].dtype, time_dtype)


def _check_exog(df: pd.DataFrame, exog: _Exog, static_df: pd.DataFrame | None,
                taken: tuple[str, str, str]) -> None:
    """A DataError for a covariate column that ``df`` lacks (``static_df`` for the static
    ones when given), that is the id, time or target column, or named in two lists."""
    lists = {"futr_exog_list": exog.futr, "hist_exog_list": exog.hist,
             "stat_exog_list": exog.stat}
    seen: dict[str, str] = {}
    for arg, names in lists.items():
        frame = static_df if arg == "stat_exog_list" and static_df is not None else df
        where = "static_df" if frame is static_df else "the DataFrame"
        for c in names:
            if c in taken:
                raise DataError(f"{arg}: {c!r} is the id, time or target column; it cannot be "
                                "a covariate too")
            if c in seen:
                raise DataError(f"{c!r} is in {seen[c]} and {arg}; give it in one list")
            seen[c] = arg
            if c not in frame.columns:
                raise DataError(f"{arg}: {where} has no column {c!r} (columns: "
                                f"{list(frame.columns)})")


def _finite(values: np.ndarray, column: str, series: str, labels: pd.Index) -> np.ndarray:
    """``values`` of a covariate ``column`` of ``series``, or a DataError naming the rows
    (``labels``) that are missing or not finite."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"series {series!r}: covariate {column!r} is missing or not finite at "
                        f"rows {[labels[i] for i in bad[:5]]}; fill or drop them (e.g. "
                        "df[...].interpolate())")
    return values


def _statics(df: pd.DataFrame, static_df: pd.DataFrame | None, columns: list[str],
             id_col: str, names: list[str], ids: dict[str, Any]) -> dict[str, dict]:
    """``{series name: {column: value}}`` of the static covariates: from ``static_df`` (one
    row per id) when given, else from ``df``, where a column must hold one value per series.
    A number stays a number (float), anything else is a category (text)."""
    out: dict[str, dict] = {name: {} for name in names}
    source = df if static_df is None else static_df
    where = "the DataFrame" if static_df is None else "static_df"
    if columns and id_col not in source.columns:
        raise DataError(f"static_df has no column {id_col!r}; give one row per series with "
                        "its id and the stat_exog_list columns")
    for c in columns:
        numeric = (pd.api.types.is_numeric_dtype(source[c])
                   and not pd.api.types.is_bool_dtype(source[c]))
        for name in names:
            rows = source.index[(source[id_col] == ids[name]).to_numpy()]
            values = source.loc[rows, c]
            if values.empty:
                raise DataError(f"static_df has no row for series {name!r}; give one per "
                                "series")
            if values.isna().any():
                raise DataError(f"series {name!r}: static covariate {c!r} is missing in "
                                f"{where} at rows {list(rows[values.isna().to_numpy()][:5])}")
            if values.nunique() > 1:
                first, other = values.iloc[0], values[values != values.iloc[0]]
                raise DataError(f"series {name!r}: static covariate {c!r} varies: {first!r} "
                                f"at row {rows[0]!r}, {other.iloc[0]!r} at row "
                                f"{other.index[0]!r}; a static covariate has one value per "
                                "series (one that changes goes in futr_exog_list or "
                                "hist_exog_list)")
            out[name][c] = float(values.iloc[0]) if numeric else str(values.iloc[0])
    return out


def _horizon_covariates(panel: _Panel, series: list[DatedSeries], futr: list[str],
                        futr_df: pd.DataFrame | None, h: int, freq: Any
                        ) -> list[Covariates | None]:
    """Each series' covariates for a forecast of ``h`` steps: the future-known ones go on
    with ``futr_df``'s values at the ``h`` dates (of ``freq``) after the series' end."""
    if futr_df is not None and not futr:
        raise DataError("futr_df gives the future values of futr_exog_list columns; this "
                        "forecaster has none (pass futr_exog_list= to RNNForecast)")
    if not futr:
        return [s.covariates for s in series]
    if futr_df is None:
        raise DataError(f"predict needs futr_df= with the future values of {futr} at the {h} "
                        f"steps after each series ({panel.id_col!r}, {panel.time_col!r} and "
                        "those columns)")
    _check_exog(futr_df, _Exog(futr, [], []), None, ())
    for c in (panel.id_col, panel.time_col):
        if c not in futr_df.columns:
            raise DataError(f"futr_df has no column {c!r} (columns: {list(futr_df.columns)})")
    dates, _ = _dates(futr_df[panel.time_col], panel.time_col)
    keys = pd.MultiIndex.from_arrays([futr_df[panel.id_col].to_numpy(), to_steps(dates)])
    at = pd.Series(np.arange(len(futr_df)), index=keys)
    at = at[~at.index.duplicated()]
    out, missing = [], {}
    for s in series:
        want = future_dates(s.dates[-1], freq, h)
        rows = at.reindex(pd.MultiIndex.from_arrays([[panel.ids[s.name]] * h, to_steps(want)]))
        if rows.isna().any():
            missing[s.name] = format_dates(want[rows.isna().to_numpy()], s.date_format)
            continue
        picked = rows.to_numpy().astype(int)
        cov = s.covariates
        future = {c: np.concatenate([cov.future[c], _finite(
            _numbers(futr_df[c], target=False)[picked], c, s.name, futr_df.index[picked])])
            for c in futr}
        out.append(Covariates(future, dict(cov.past), dict(cov.static)))
    if missing:
        name, dates_missing = next(iter(missing.items()))
        raise DataError(f"futr_df has no row for series {name!r} at "
                        f"{', '.join(dates_missing[:6])}"
                        f"{' and more' if len(dates_missing) > 6 else ''}"
                        f"{f' (nor for series {list(missing)[1:6]})' if len(missing) > 1 else ''}"
                        f": the forecast of {h} steps needs {futr} at each of them")
    return out


def _rows(df: pd.DataFrame, at: np.ndarray) -> str:
    """The index labels of the rows ``at`` (the first five, and how many more)."""
    labels = [df.index[i] for i in at[:5]]
    more = f" and {len(at) - 5} more" if len(at) > 5 else ""
    return f"{labels}{more}"


def _groups(keys: np.ndarray) -> list[np.ndarray]:
    """The row positions of each id, ids in order of first appearance."""
    codes, _ = pd.factorize(keys)
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)


def _numbers(column: pd.Series, target: bool = True) -> np.ndarray:
    """The target (or a covariate) column as float64; a DataError for text. Booleans are
    refused as a target, read as 0/1 as a covariate (a holiday flag)."""
    if ((target and pd.api.types.is_bool_dtype(column))
            or not pd.api.types.is_numeric_dtype(column)):
        fix = "name the column to forecast with target_col=" if target else (
            "a category belongs in stat_exog_list")
        kind = "column" if target else "covariate column"
        raise DataError(f"{kind} {column.name!r} holds {column.dtype}, not numbers; convert it "
                        f"with pd.to_numeric(df[{column.name!r}]) or {fix}")
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _dates(column: pd.Series, time_col: str) -> tuple[np.ndarray, str]:
    """The time column as datetime64[m], and the format its text was read in ("" for a
    datetime column): datetimes, or date strings as ``load_series`` reads them."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        raise DataError(f"column {time_col!r} has a time zone ({column.dtype.tz}); drop it "
                        f"with df[{time_col!r}].dt.tz_localize(None)")
    if pd.api.types.is_datetime64_dtype(column):
        if column.isna().any():
            at = np.flatnonzero(column.isna().to_numpy())
            raise DataError(f"column {time_col!r} is missing at rows "
                            f"{[column.index[i] for i in at[:5]]}; every row needs its date")
        return column.to_numpy().astype("datetime64[m]"), ""
    if pd.api.types.is_integer_dtype(column):  # a series without dates: steps
        return column.to_numpy(dtype=np.int64), ""
    if pd.api.types.is_numeric_dtype(column):
        raise DataError(f"column {time_col!r} holds {column.dtype}: give integer steps (a "
                        f"series without dates, e.g. df[{time_col!r}].astype(int)) or datetimes "
                        f"(pd.to_datetime(df[{time_col!r}]))")
    texts = ["" if pd.isna(t) else str(t) for t in column]
    return read_dates(texts, lambda i: f"column {time_col!r}, row {column.index[i]!r}")


def _frequency(freq: str) -> Any:
    """The Frequency ``freq`` names: an rnnkit name ("monthly") or a pandas alias ("MS")."""
    if freq in FREQUENCIES:
        return FREQUENCIES[freq]
    try:
        dates = pd.date_range("2001-01-01", periods=3, freq=freq).to_numpy()
        return infer_frequency(dates.astype("datetime64[m]"))
    except (ValueError, DataError):
        raise DataError(f"freq={freq!r}: not a frequency rnnkit forecasts; give one of "
                        f"{sorted(FREQUENCIES)} or a pandas alias such as 'D', 'MS', 'QS'"
                        ) from None


def _series(name: str, dates: np.ndarray, values: np.ndarray, labels: pd.Index, freq: Any,
            columns: tuple[str, str, str, str]) -> DatedSeries:
    """One series' rows (sorted by date) as a DatedSeries, or a DataError naming the
    series and the rows that are not finite numbers or not on the grid of its dates."""
    target, time, id_col, date_format = columns
    where = f"series {name!r}"
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{where}: column {target!r} is missing or not finite at rows "
                        f"{[labels[i] for i in bad[:5]]}; fill or drop them (e.g. "
                        "df[...].interpolate())")
    repeat = np.flatnonzero(np.diff(to_steps(dates)) == 0)
    if repeat.size:
        i = int(repeat[0])
        shown = format_dates(dates[i:i + 1], date_format or "%Y-%m-%d")[0]
        rows = [labels[j] for j in np.flatnonzero(dates == dates[i])]
        raise DataError(f"{where}: the date {shown} is repeated (rows {rows[:5]}); give one "
                        f"row per date and series ({id_col!r} names the series)")
    if len(dates) > 1:
        _check_grid(where, dates, freq, labels, date_format)
    return DatedSeries(name, dates, values, target, time, date_format or "%Y-%m-%d", id_col)


def _check_grid(where: str, dates: np.ndarray, want: Any, labels: pd.Index,
                date_format: str) -> None:
    """A DataError when ``dates`` (sorted, unique) are off ``want`` (if given), unevenly
    spaced, or miss a date of their frequency."""
    try:
        freq = infer_frequency(dates)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    if want is not None and freq != want:
        raise DataError(f"{where}: the dates are {freq.name}, not {want.name} as freq= says")
    gap = grid_break(dates, freq)
    if gap is None:
        return
    i = gap.after
    fmt = date_format or "%Y-%m-%d"
    if not gap.missing:
        raise DataError(f"{where}: the dates are not evenly spaced: "
                        f"{format_dates(dates[i + 1:i + 2], fmt)[0]} (row {labels[i + 1]!r}) is "
                        f"not a whole number of {freq.name} steps after "
                        f"{format_dates(dates[i:i + 1], fmt)[0]}; give one row per "
                        f"{freq.name} date")
    first = format_dates(np.array([gap.first]), fmt)[0]
    raise DataError(f"{where}: {gap.missing} {freq.name} date(s) are missing, the first {first} "
                    f"(after row {labels[i]!r}); add their rows (e.g. interpolated) or drop the "
                    "series")
