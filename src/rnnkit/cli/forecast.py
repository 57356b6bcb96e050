"""``rnnkit forecast`` and ``rnnkit backtest``: the DeepAR-style forecaster of
:mod:`rnnkit.forecasting` from the command line.

``rnnkit forecast FILE.csv`` trains a forecaster on every row of the file (one series, or one
per ``--id-column`` value) and writes the forecast after its last date; ``rnnkit forecast RUN``
forecasts with a trained one from ``--context FILE`` (default: the file it trained on),
without retraining. ``rnnkit backtest FILE.csv`` scores it by rolling origin beside Naive and
SeasonalNaive.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.cli import rundir
from rnnkit.cli.settings import BacktestSettings, ConfigError, ForecastSettings, set_threads
from rnnkit.data.errors import DataError
from rnnkit.forecasting import (
    DatedSeries,
    Forecaster,
    backtest,
    infer_frequency,
    load_series,
    train_forecaster,
)

MODEL, META = "forecaster.pt", "forecaster.json"


def default_horizon(series: list[DatedSeries]) -> int:
    """Two seasons for (half-)hourly data, one season otherwise, 10 steps for yearly data."""
    freq = infer_frequency(series[0].dates)
    if freq.name in ("hourly", "half-hourly"):
        return 2 * freq.season
    return freq.season if freq.season > 1 else 10


def load_csv_series(path: str, meta: dict[str, Any]) -> list[DatedSeries]:
    """The series of a CSV as ``meta`` (target, date_column, id_column, fill) says."""
    return load_series(path, value=meta["target"] or None, date=meta["date_column"] or None,
                       by=meta["id_column"] or None, fill_gaps=meta["fill"] == "interpolate")


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
    CSV written."""
    set_threads(s.threads)
    levels = _levels(s.quantiles)
    found = find_run(s.source, s.runs_dir)
    if found is not None:
        run = found
        meta = json.loads((run / META).read_text())
        forecaster = Forecaster.load(run / MODEL)
        if s.ensemble != 1:
            raise ConfigError(f"--ensemble is for training; {run} is trained (ensemble of "
                              f"{forecaster.config.ensemble})")
        series = load_csv_series(s.context or meta["file"], meta)
    else:
        if s.context:
            raise ConfigError("--context is for a trained run; a CSV file is trained on itself")
        source = Path(s.source)
        meta = {"target": s.target, "date_column": s.date_column, "id_column": s.id_column,
                "fill": s.fill, "file": str(source.resolve())}
        series = load_csv_series(s.source, meta)
        horizon = s.horizon or default_horizon(series)
        run = rundir.pick_name(s.runs_dir, s.name, f"forecast-{source.stem}")
        print(f"training a forecaster of {horizon} steps on {len(series)} series of "
              f"{source} for at most {s.max_time:g} s", file=sys.stderr)
        forecaster, report = train_forecaster(series, horizon, max_time=s.max_time or None,
                                              seed=s.seed, ensemble=s.ensemble)
        run.mkdir(parents=True)
        forecaster.save(run / MODEL)
        (run / META).write_text(json.dumps({**meta, "horizon": horizon}) + "\n")
        print(f"trained: {report.steps} steps ({report.stop_reason}) in {report.seconds:.0f} s;"
              f" run directory {run}", file=sys.stderr)
    meta = json.loads((run / META).read_text())
    horizon = s.horizon or meta["horizon"]
    out = Path(s.output) if s.output else run / "forecast.csv"
    if not out.parent.is_dir():
        raise DataError(f"--output {out}: the directory {out.parent} does not exist")
    known = set(forecaster.series_names)
    rows, panels = [], []
    for one in series:
        name = one.name if one.name in known else None
        fc = forecaster.forecast(one.values, one.dates, horizon, s.samples, series=name,
                                 levels=levels, seed=s.seed)
        rows += [[one.name, _date_text(d), m, *q]
                 for d, m, *q in zip(fc.dates, fc.mean, *fc.quantiles)]
        panels.append((one, fc))
    target = series[0].value_column
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        id_header = [meta["id_column"]] if meta["id_column"] else []
        writer.writerow([*id_header, series[0].date_column, target,
                         *(f"{target}_q{q:g}" for q in levels)])
        for name, date, mean, *qs in rows:
            writer.writerow([*([name] if id_header else []), date, f"{mean:.6g}",
                             *(f"{q:.6g}" for q in qs)])
    _fan_chart(panels, out.with_suffix(".png"), target)
    print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)
    return out


def _date_text(date: np.datetime64) -> str:
    """``2024-01-31`` for a date at midnight, else ``2024-01-31 13:30``."""
    text = str(date.astype("datetime64[m]")).replace("T", " ")
    return text[:10] if text.endswith("00:00") else text


def _fan_chart(panels: list[tuple[DatedSeries, Any]], path: Path, target: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panels[:6]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.6 * len(shown)), squeeze=False)
    for ax, (one, fc) in zip(axes[:, 0], shown):
        tail = max(3 * len(fc.dates), 24)
        ax.plot(one.dates[-tail:], one.values[-tail:], color="black", lw=0.8, label="history")
        lo, hi = fc.interval(0.8)
        ax.fill_between(fc.dates, lo, hi, color="C1", alpha=0.25, label="80% interval")
        ax.plot(fc.dates, fc.mean, color="C1", lw=1.2, label="mean")
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
        file, default_out = meta["file"], run / "backtest.json"
    else:
        meta = {"target": s.target, "date_column": s.date_column, "id_column": s.id_column,
                "fill": s.fill}
        file, default_out = s.file, Path(f"backtest-{Path(s.file).stem}.json")
    series = load_csv_series(file, meta)
    horizon = s.horizon or meta.get("horizon") or default_horizon(series)
    out = Path(s.output) if s.output else default_out
    if not out.parent.is_dir():
        raise DataError(f"--output {out}: the directory {out.parent} does not exist")
    result = backtest(series, horizon, windows=s.windows, max_time=s.max_time or None,
                      num_samples=s.samples, seed=s.seed, ensemble=s.ensemble)
    names = {"deepar": "rnnkit", "naive": "Naive", "seasonal_naive": "SeasonalNaive"}
    metrics = ("mae", "rmse", "mase", "smape", "crps", "coverage")
    print(f"{file}: {s.windows} windows of {horizon} steps, {len(series)} series")
    print(f"{'method':<14}" + "".join(f"{m:>10}" for m in metrics))
    for key, summary in result["methods"].items():
        print(f"{names[key]:<14}" + "".join(
            f"{summary[m]:>10.4g}" if m in summary else f"{'-':>10}" for m in metrics))
    out.write_text(json.dumps({"file": file, "horizon": horizon, "windows": s.windows,
                               **result}, default=float, indent=1) + "\n")
    _by_step_chart(result["methods"], out.with_suffix(".png"), names)
    print(f"wrote {out} (metrics by horizon step and by window) and "
          f"{out.with_suffix('.png')}", file=sys.stderr)
    return result


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
