"""Rolling-origin evaluation: forecast W windows of H steps at the end of the series.

Origin k (k = 0 .. W-1) cuts every series ``(W - 1 - k) * step + H`` rows before its end:
the model is trained on the rows before the cut (once on the first origin's rows when
``refit`` is False), forecasts H steps from them, and is scored on the next H rows beside
Naive and SeasonalNaive. Metrics are averaged over windows and series.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.forecasting.baselines import naive, seasonal_naive
from rnnkit.forecasting.covariates import Covariates
from rnnkit.forecasting.data import DatedSeries, series_covariates, series_frequency
from rnnkit.forecasting.fit import train_forecaster
from rnnkit.forecasting.metrics import evaluate
from rnnkit.forecasting.model import Forecast
from rnnkit.forecasting.windows import min_length, too_short, window_rows

__all__ = ["backtest", "summarize", "min_train_rows"]

SUMMARY = ("mae", "rmse", "mase", "smape", "crps", "scaled_crps", "coverage")


def summarize(results: Sequence[dict]) -> dict:
    """Means over ``evaluate`` results: overall metrics and ``by_step`` lists."""
    out = {k: float(np.mean([r[k] for r in results])) for k in SUMMARY
           if all(r[k] is not None for r in results)}
    steps = results[0]["by_step"]
    out["by_step"] = {k: np.mean([r["by_step"][k] for r in results], axis=0).tolist()
                      for k in steps}
    return out


def min_train_rows(horizon: int, season: int, panel: bool = False) -> int:
    """The rows a series needs before the first origin: enough to train on (alone:
    ``windows.min_length``; in a panel, one window of its own, ``windows.window_rows``, the
    panel pooling the rest: ``windows.too_short``) and for MASE's scale, the seasonal naive
    error over them (two seasons and one)."""
    return max(window_rows(horizon) if panel else min_length(horizon), 2 * max(season, 1) + 1)


def backtest(series: DatedSeries | Sequence[DatedSeries], horizon: int, windows: int = 3,
             step: int | None = None, refit: bool = True, max_time: float | None = 60,
             num_samples: int = 200, seed: int = 0, max_steps: int | None = None,
             on_window: Callable[[dict], None] | None = None,
             on_forecast: Callable[[DatedSeries, DatedSeries, Forecast], None] | None = None,
             covariates: Sequence[Covariates] | None = None, **overrides) -> dict:
    """Rolling-origin backtest of the DeepAR forecaster and the baselines.

    Args:
        series: one or several series of one frequency (trained together).
        horizon: H; ``step`` rows between origins (default H).
        windows: W origins; ``refit``: train again at every origin.
        max_time, max_steps: training budget per fit; ``overrides`` go to ``default_config``.
        on_window: called after each origin with ``{"window": k (from 1), "windows": W,
            "fit": the FitReport as a dict (None when not refitted), "deepar", "naive",
            "seasonal_naive": each method's MASE at that origin, mean over series}``.
        on_forecast: called with ``(series, train, forecast)`` for each series at each
            origin: ``train`` its rows before the origin, ``forecast`` the model's
            ``Forecast`` of the next H rows (e.g. to keep the forecasts themselves).
        covariates: one ``Covariates`` per series, over all its rows: each origin trains on
            their rows before it; its forecast reads the future-known ones for the H rows
            after it too, the past-only ones only before it (default: the series' own
            ``covariates``).

    Returns:
        ``{"methods": {name: summary}, "windows": [{"origin", "series", name: metrics}],
        "fits": [FitReport as a dict]}`` with ``summary`` as in :func:`summarize` (MASE uses
        the frequency's season).
    """
    series = [series] if isinstance(series, DatedSeries) else list(series)
    if horizon < 1 or windows < 1:
        raise ValueError(f"horizon and windows must be >= 1, got {horizon}, {windows}")
    step = horizon if step is None else step
    m = series_frequency(series).season
    back = (windows - 1) * step + horizon
    need = min_train_rows(horizon, m, panel=len(series) > 1)
    train_rows = [(s.name, len(s.values) - back) for s in series]
    pooled_short = too_short(train_rows, horizon)  # all of them when the panel is too small
    short = [name for name, rows in train_rows if rows < need or name in pooled_short]
    if short:
        raise DataError(f"series {short} are too short for {windows} windows of {horizon} "
                        f"steps {step} apart: each needs {need} rows before the first window, "
                        f"{back + need} in all; give fewer --windows or a shorter --horizon")
    if covariates is None:
        covariates = series_covariates(series)
    if covariates is not None and len(covariates) != len(series):
        raise ValueError(f"{len(covariates)} covariates for {len(series)} series")
    covs = list(covariates) if covariates is not None else [None] * len(series)
    records, fits, forecaster = [], [], None
    for k in range(windows):
        offset = (windows - 1 - k) * step + horizon
        train = [s.head(len(s.values) - offset) for s in series]
        fit = None
        if forecaster is None or refit:
            forecaster, report = train_forecaster(
                train, horizon, max_time=max_time, max_steps=max_steps, seed=seed,
                covariates=None if covariates is None else
                [c.head(len(t.values)) for c, t in zip(covs, train)], **overrides)
            fit = dataclasses.asdict(report)
            fits.append(fit)
        first = len(records)
        for s, t, c in zip(series, train, covs):
            cut = len(t.values)
            actual = s.values[cut: cut + horizon]
            fc = forecaster.forecast(t.values, t.dates, horizon, num_samples, series=s.name,
                                     seed=seed + k,
                                     covariates=None if c is None else c.head(cut + horizon))
            if on_forecast is not None:
                on_forecast(s, t, fc)
            record = {"origin": str(s.dates[cut]), "series": s.name,
                      "deepar": evaluate(actual, fc.quantile(0.5), t.values, m, fc.samples)}
            for name, base in (("naive", naive(t.values, horizon, seed=seed + k)),
                               ("seasonal_naive", seasonal_naive(t.values, horizon, m,
                                                                 seed=seed + k))):
                record[name] = evaluate(actual, base.mean, t.values, m, base.samples)
            records.append(record)
        if on_window is not None:
            on_window({"window": k + 1, "windows": windows, "fit": fit,
                       **{name: float(np.mean([r[name]["mase"] for r in records[first:]]))
                          for name in ("deepar", "naive", "seasonal_naive")}})
    methods = {name: summarize([r[name] for r in records])
               for name in ("deepar", "naive", "seasonal_naive")}
    return {"methods": methods, "windows": records, "fits": fits}
