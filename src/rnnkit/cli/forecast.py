"""``rnnkit forecast`` and ``rnnkit backtest``: the DeepAR-style forecaster of
:mod:`rnnkit.forecasting` from the command line.

``rnnkit forecast FILE.csv`` trains a forecaster on every row of the file (one series, or one
per ``--id-column`` value) and writes the forecast after its last date; ``rnnkit forecast RUN``
forecasts with a trained one from ``--context FILE`` (default: the file it trained on),
without retraining. ``rnnkit backtest FILE.csv`` scores it by rolling origin beside Naive and
SeasonalNaive.

A file without dates is read as steps 0..n-1 (or by its integer ``ds`` / ``step`` column):
no calendar features, the season ``--season`` states or the one inferred from the values
(said on stderr), and forecasts written under a ``step`` column (or the file's own).

Covariates: ``--future-covariates``, ``--past-covariates`` and ``--static-covariates`` name
columns of the CSV (:mod:`rnnkit.forecasting.covariates`); a forecast reads the future-known
ones' horizon values from ``--future FILE.csv``. A run keeps the names, so
``rnnkit forecast RUN --context FILE --future FILE`` and ``rnnkit backtest RUN`` read them.
"""

from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from rnnkit.cli import rundir
from rnnkit.cli.settings import (
    AblateSettings,
    BacktestSettings,
    ConfigError,
    ForecastSettings,
    set_threads,
)
from rnnkit.data.errors import DataError
from rnnkit.forecasting import (
    Covariates,
    DatedSeries,
    Forecaster,
    backtest,
    load_series,
    train_forecaster,
)
from rnnkit.forecasting.data import (
    default_horizon,
    load_future,
    series_covariates,
    series_frequency,
)
from rnnkit.forecasting.fit import (
    INTERRUPTED,
    describe_budget,
    describe_combination,
    forecast_config,
    statistical_fallback,
)
from rnnkit.forecasting.frequency import format_dates, to_steps
from rnnkit.forecasting.metrics import coverage_note
from rnnkit.forecasting.season import SEASON_THRESHOLD
from rnnkit.forecasting.windows import ShortSeriesWarning, drop_short
from rnnkit.train import CheckpointError

MODEL, META = "forecaster.pt", "forecaster.json"
CHART_SERIES = 6  # the fan chart draws this many series, the first ones
COVARIATE_FLAGS = ("future_covariates", "past_covariates", "static_covariates")


def load_csv_series(path: str, meta: dict[str, Any]) -> list[DatedSeries]:
    """The series of a CSV as ``meta`` (target, date_column, id_column, fill, season and
    the covariate columns of each kind) says."""
    return load_series(path, value=meta["target"] or None, date=meta["date_column"] or None,
                       by=meta["id_column"] or None, fill_gaps=meta["fill"] == "interpolate",
                       season=meta.get("season") or None,
                       future=meta.get("future_covariates") or (),
                       past=meta.get("past_covariates") or (),
                       static=meta.get("static_covariates") or ())


def series_meta(s: ForecastSettings | BacktestSettings | AblateSettings) -> dict[str, Any]:
    """What a run records of how its CSV is read (the columns, --fill, --season)."""
    return {"target": s.target, "date_column": s.date_column, "id_column": s.id_column,
            "fill": s.fill, "season": s.season,
            **{flag: list(getattr(s, flag)) for flag in COVARIATE_FLAGS}}


def _no_covariate_flags(s: ForecastSettings | BacktestSettings, run: Path, meta: dict) -> None:
    """A ConfigError for covariate columns named with a trained run (it keeps its own)."""
    given = [flag for flag in COVARIATE_FLAGS if getattr(s, flag)]
    if given:
        kept = ", ".join(f"{flag.split('_')[0]} {meta.get(flag) or []}"
                         for flag in COVARIATE_FLAGS)
        raise ConfigError(f"--{given[0].replace('_', '-')} is for training; {run} was trained "
                          f"with the covariates it keeps ({kept})")


def _forecast_covariates(series: list[DatedSeries], meta: dict[str, Any], future: str,
                         horizon: int) -> list[Covariates | None]:
    """The covariates of each series for a forecast of ``horizon`` steps: the future-known
    ones go on with the values of the ``--future`` file (a DataError names the dates it
    lacks); a ConfigError when the file is needed and not given, or given and not needed."""
    names = meta.get("future_covariates") or []
    if future and not names:
        raise ConfigError("--future gives the values of future covariates at the forecast's "
                          "steps; this forecaster has none (name them with "
                          "--future-covariates when training)")
    if names and not future:
        raise ConfigError(f"the future covariates {names} are needed at each of the {horizon} "
                          "forecast steps: give --future FILE.csv with the date (and id) column "
                          "and those columns")
    if names:
        return list(load_future(future, series, horizon, names))
    return [x.covariates for x in series]


def note_steps(series: list[DatedSeries], stated: int | None) -> None:
    """Say on stderr how a file without dates was read: its steps and its season."""
    if not series[0].undated:
        return
    first = series[0]
    where = (f"its column {first.date_column!r} as steps" if first.date_column else
             f"its rows as steps {first.dates[0]}..{first.dates[-1]}")
    season = series_frequency(series).season
    why = ("--season" if stated else
           f"inferred: autocorrelation of the differences above {SEASON_THRESHOLD:g} at that "
           "lag; state it with --season" if season > 1 else
           "none found in the autocorrelation of the differences; state one with --season")
    print(f"note: no dates: read {where}; season {season} ({why}); name a date column with "
          "--date-column", file=sys.stderr)


def _levels(texts: list[str]) -> tuple[float, ...]:
    try:
        levels = tuple(sorted(float(t) for t in texts))
    except ValueError:
        raise ConfigError(f"--quantiles must be numbers in (0, 1), got {texts}") from None
    if not levels or not all(0 < q < 1 for q in levels):
        raise ConfigError(f"--quantiles must be numbers in (0, 1), got {texts}")
    return levels


def forecast(s: ForecastSettings) -> Path:
    """Train (a CSV file) or load (a run) a forecaster and write its forecast; returns the
    CSV written. Ctrl-C in training keeps the best weights so far: the forecaster is saved
    and the forecast written, then the KeyboardInterrupt goes on (exit 130, as for train)."""
    set_threads(s.threads)
    levels = _levels(s.quantiles)
    if s.output:
        _check_output(Path(s.output))
    found = find_run(s.source, s.runs_dir)
    if found is not None:
        run, meta, forecaster, series, covs = _load_run(found, s)
        interrupted = False
    else:
        run, meta, forecaster, series, covs, interrupted = _train_run(s)
    horizon = s.horizon or meta["horizon"]
    out = Path(s.output) if s.output else run / "forecast.csv"
    panels = _forecast_each(forecaster, series, horizon, s, levels, covs)
    _write_csv(out, panels, levels, meta["id_column"], series[0])
    _fan_chart(panels, out.with_suffix(".png"), series[0].value_column)
    print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt
    return out


def _check_output(out: Path) -> None:
    """Refuse an --output whose directory is missing before anything is trained."""
    if not out.parent.is_dir():
        raise DataError(f"--output {out}: the directory {out.parent} does not exist")


def _load_run(run: Path, s: ForecastSettings) -> tuple[Path, dict, Forecaster,
                                                     list[DatedSeries], list]:
    """A trained run's settings, forecaster, the series to forecast after (--context, or
    the file it trained on) and their covariates for the forecast (``--future``)."""
    try:
        meta = json.loads((run / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{run / META}: not the JSON rnnkit forecast writes ({err}); train a "
                        "new forecaster with: rnnkit forecast FILE.csv") from None
    try:
        forecaster = Forecaster.load(run / MODEL)
    except CheckpointError as err:
        file = meta.get("file", "FILE.csv")
        raise CheckpointError(f"{err}; train a new one with: rnnkit forecast {file}") from None
    if s.ensemble is not None:
        raise ConfigError(f"--ensemble is for training; {run} is trained (ensemble of "
                          f"{forecaster.config.ensemble})")
    if s.combine != "validation" or s.statistical is not None:
        flag = "--combine" if s.combine != "validation" else "--statistical"
        raise ConfigError(f"{flag} is for training; {run} is trained "
                          f"({describe_combination(meta.get('combine', {}))})")
    if s.season is not None:
        raise ConfigError(f"--season is for training; {run} is trained with lags "
                          f"{list(forecaster.config.lags)}")
    _no_covariate_flags(s, run, meta)
    series = load_csv_series(s.context or meta["file"], meta)
    covs = _forecast_covariates(series, meta, s.future, s.horizon or meta["horizon"])
    return run, meta, forecaster, series, covs


def _train_run(s: ForecastSettings) -> tuple[Path, dict, Forecaster, list[DatedSeries], list,
                                              bool]:
    """Train a forecaster on the CSV file ``s.source`` in a new run directory (made only once
    the input is accepted, the --future file included; removed if training fails); returns
    the run, its settings, the forecaster, the series it forecasts, their covariates for the
    forecast and whether Ctrl-C stopped training."""
    if s.context:
        raise ConfigError("--context is for a trained run; a CSV file is trained on itself")
    source = Path(s.source)
    meta = {**series_meta(s), "file": str(source.resolve())}
    series = load_csv_series(s.source, meta)
    note_steps(series, s.season)
    meta["season"] = series[0].season or None  # inferred: the context is read with it
    horizon = s.horizon or default_horizon(series)
    max_time = s.max_time or None
    options = fit_options(s)
    network, alone, left_out = trainable(series, horizon, options)
    series = [one for one in series if one.name not in left_out]  # in the file's order
    covs = _forecast_covariates(series, meta, s.future, horizon)
    meta.update(horizon=horizon, left_out=left_out)
    run = rundir.make_new(s.runs_dir, s.name, f"forecast-{source.stem}",
                          reuse="forecast with it: rnnkit forecast {path}")
    with rundir.removed_on_error(run):
        if network:
            cfg = forecast_config(network, horizon, covariates=series_covariates(network),
                                  **options)
            members = (f" (an ensemble of {cfg.ensemble}, 1/{cfg.ensemble} each)"
                       if cfg.ensemble > 1 else "")
            print(f"training a forecaster of {horizon} steps on {len(network)} series of "
                  f"{source} {describe_budget(cfg, max_time, None)}{members}; run directory "
                  f"{run}", file=sys.stderr)
        with warnings.catch_warnings():  # trainable named the short series
            warnings.simplefilter("ignore", ShortSeriesWarning)
            forecaster, report = train_forecaster(
                series, horizon, max_time=max_time, seed=s.seed,
                covariates=series_covariates(series), **options)
        forecaster.save(run / MODEL)
        meta.update(steps=report.steps, stop_reason=report.stop_reason, combine=report.combine,
                    statistical_only=report.statistical_only)
        (run / META).write_text(json.dumps(meta) + "\n")
    interrupted = report.stop_reason == INTERRUPTED
    if interrupted:
        print(f"interrupted after {report.steps} steps in {report.seconds:.0f} s: saved the "
              f"forecaster with its best weights so far in {run}; forecasting with it",
              file=sys.stderr)
    elif not network:
        print(f"no network trained (every series is too short for it); "
              f"{describe_combination(report.combine)}; run directory {run}", file=sys.stderr)
    else:
        print(f"trained: {report.steps} steps ({report.stop_reason}) in {report.seconds:.0f} s;"
              f" {describe_combination(report.combine)}; run directory {run}", file=sys.stderr)
    return run, meta, forecaster, series, covs, interrupted


def fit_options(s: Any) -> dict[str, Any]:
    """The config fields the command line sets for training; an option not given leaves the
    library's default (an ensemble for a panel, the mixture with the statistical forecasts)."""
    options: dict[str, Any] = {} if s.ensemble is None else {"ensemble": s.ensemble}
    if s.combine == "off":
        options["combine"] = ""
    if s.statistical is not None:
        options["statistical"] = s.statistical
    return options


def trainable(series: list[DatedSeries], horizon: int, options: dict[str, Any]
              ) -> tuple[list[DatedSeries], list[DatedSeries], dict[str, int]]:
    """The series long enough to train a forecaster of ``horizon`` steps on, those too
    short for it that the statistical forecasts forecast alone (none with ``--combine
    off``), and the others' rows by name (``windows.drop_short``, whose warnings are
    printed here as notes): before any training or run directory. No series forecast is a
    DataError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept, alone, left_out = drop_short(series, horizon, statistical_fallback(options))
    for warning in caught:
        print(f"note: {warning.message}", file=sys.stderr)
    return kept, alone, left_out


def _forecast_each(forecaster: Forecaster, series: list[DatedSeries], horizon: int,
                   s: ForecastSettings, levels: tuple[float, ...],
                   covs: list[Covariates | None]) -> list[tuple[DatedSeries, Any]]:
    """(series, forecast) for each series with its covariates ``covs``; one that cannot be
    forecast is named on stderr and left out (all of them: a DataError naming each)."""
    known = set(forecaster.forecast_series)
    panels, failed = [], []
    for one, cov in zip(series, covs):
        name = one.name if one.name in known else None
        try:
            fc = forecaster.forecast(one.values, one.dates, horizon, s.samples, series=name,
                                     levels=levels, seed=s.seed, covariates=cov)
        except DataError as err:  # the model names the series it knows; name the others
            failed.append(str(err) if name is not None else f"series {one.name!r}: {err}")
            continue
        panels.append((one, fc))
    if not panels:
        raise DataError("; ".join(failed))
    for why in failed:
        print(f"note: not forecast: {why}", file=sys.stderr)
    return panels


def _write_csv(out: Path, panels: list[tuple[DatedSeries, Any]], levels: tuple[float, ...],
               id_column: str, first: DatedSeries) -> None:
    """One row per series and date: [id,] date, mean, quantiles."""
    target = first.value_column
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        id_column = id_column or first.id_column  # a unique_id column found without a flag
        id_header = [id_column] if id_column else []
        writer.writerow([*id_header, first.date_column or "step", target,
                         *(f"{target}_q{q:g}" for q in levels)])
        for one, fc in panels:
            dates = format_dates(fc.dates, one.date_format)  # in the file's own style
            for date, mean, *qs in zip(dates, fc.mean, *fc.quantiles):
                writer.writerow([*([one.name] if id_header else []), date,
                                 f"{mean:.6g}", *(f"{q:.6g}" for q in qs)])


def _fan_chart(panels: list[tuple[DatedSeries, Any]], path: Path, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panels[:CHART_SERIES]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.6 * len(shown)), squeeze=False)
    if len(shown) < len(panels):
        what = f"first {len(shown)} of {len(panels)} series"
        fig.suptitle(f"{target}: the {what} (all are in the CSV)", fontsize="medium")
        print(f"note: the fan chart {path} shows the {what}; the CSV has them all",
              file=sys.stderr)
    for ax, (one, fc) in zip(axes[:, 0], shown):
        tail = max(3 * len(fc.dates), 24)
        # steps come back from the model as datetime64 minutes (frequency.to_steps)
        future = to_steps(fc.dates) if one.undated else fc.dates
        ax.plot(one.dates[-tail:], one.values[-tail:], color="black", lw=0.8, label="history")
        lo, hi = fc.interval(0.8)
        ax.fill_between(future, lo, hi, color="C1", alpha=0.25, label="80% interval")
        ax.plot(future, fc.mean, color="C1", lw=1.2, label="mean")
        ax.set_title(one.name, fontsize="small")
        ax.set_ylabel(target)
    axes[0, 0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def find_run(source: str, runs_dir: str) -> Path | None:
    """The run directory ``source`` names (a path, or a name under ``runs_dir``) when it
    holds a trained forecaster, else None."""
    for run in (Path(source), Path(runs_dir) / source):
        if (run / MODEL).is_file() and (run / META).is_file():
            return run
    return None


def run_backtest(s: BacktestSettings) -> dict:
    """Rolling-origin backtest of a CSV file, or of a run's file with its columns and
    horizon (the forecaster is trained again at every origin: the run's own weights have
    seen the test rows); prints a table, writes JSON and a PNG by horizon step."""
    set_threads(s.threads)
    run = find_run(s.file, s.runs_dir)
    if run is not None:
        meta = json.loads((run / META).read_text())
        _no_covariate_flags(s, run, meta)
        meta["season"] = s.season or meta.get("season")
        file, default_out = meta["file"], run / "backtest.json"
    else:
        meta = series_meta(s)
        file, default_out = s.file, Path(f"backtest-{Path(s.file).stem}.json")
    series = load_csv_series(file, meta)
    note_steps(series, s.season)
    horizon = s.horizon or meta.get("horizon") or default_horizon(series)
    out = Path(s.output) if s.output else default_out
    if not out.parent.is_dir():
        raise DataError(f"--output {out}: the directory {out.parent} does not exist")
    print(f"backtest: {s.windows} windows of {horizon} steps on {len(series)} series of "
          f"{file}, training a forecaster at each", file=sys.stderr)
    result = backtest(series, horizon, windows=s.windows, max_time=s.max_time or None,
                      num_samples=s.samples, seed=s.seed, on_window=_print_window,
                      covariates=series_covariates(series),
                      **fit_options(s))
    names = {"deepar": "rnnkit", "naive": "Naive", "seasonal_naive": "SeasonalNaive"}
    metrics = ("mae", "rmse", "mase", "smape", "crps", "coverage")
    print(f"{file}: {s.windows} windows of {horizon} steps, {len(series)} series")
    print(f"{'method':<14}" + "".join(f"{m:>10}" for m in metrics))
    for key, summary in result["methods"].items():
        print(f"{names[key]:<14}" + "".join(
            f"{summary[m]:>10.4g}" if m in summary else f"{'-':>10}" for m in metrics))
    ours = result["methods"]["deepar"]
    note = (coverage_note(ours["coverage"], s.windows * horizon * len(series))
            if "coverage" in ours else None)
    if note:
        print(f"note: {note}", file=sys.stderr)
    out.write_text(json.dumps({"file": file, "horizon": horizon, "windows": s.windows,
                               "season": series_frequency(series).season, **result,
                               "coverage_note": note}, default=float, indent=1) + "\n")
    _by_step_chart(result["methods"], out.with_suffix(".png"), names)
    print(f"wrote {out} (metrics by horizon step and by window) and "
          f"{out.with_suffix('.png')}", file=sys.stderr)
    return result


def _print_window(done: dict[str, Any]) -> None:
    """One line on stderr per backtest window: a long backtest shows it is alive."""
    fit = done["fit"]
    trained = (f"trained {fit['steps']} steps ({fit['stop_reason']}) in {fit['seconds']:.0f} s, "
               if fit else "")
    print(f"window {done['window']}/{done['windows']}: {trained}MASE {done['deepar']:.3g} "
          f"(Naive {done['naive']:.3g}, SeasonalNaive {done['seasonal_naive']:.3g})",
          file=sys.stderr, flush=True)


def _by_step_chart(methods: dict[str, Any], path: Path, names: dict[str, str]) -> None:
    """MAE and CRPS of each method by horizon step, and rnnkit's 80% coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for key, summary in methods.items():
        steps = summary["by_step"]
        for ax, metric in zip(axes, ("mae", "crps", "coverage")):
            if metric in steps and (metric != "coverage" or key == "deepar"):
                ax.plot(range(1, len(steps[metric]) + 1), steps[metric], marker=".",
                        label=names[key])
    for ax, title in zip(axes, ("MAE", "CRPS", "80% interval coverage (rnnkit)")):
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("horizon step")
    axes[2].axhline(0.8, color="gray", linewidth=0.8)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
