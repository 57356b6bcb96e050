"""Combining probabilistic forecasts of the same series and horizon.

M4's lesson (Makridakis et al. 2020): combinations beat the single methods they combine,
and the simple statistical forecasts are hard to beat on short series. Ways to pool sample
paths ``[S, H]``:

- ``"quantiles"`` (quantile averaging, Vincentization; Lichtendahl et al. 2013): each
  quantile of the result is the weighted mean of the two forecasts' quantiles, so the
  median is the weighted mean of the medians and the interval the weighted mean of the
  intervals. The result's rows are the sorted quantiles step by step, not paths.
- ``"mixture"`` (linear pooling, ``mixture``): a share of each forecast's paths; wider than
  any of them where they disagree.

``widened_mixture`` widens one forecast's interval in a mixture without moving the
mixture's median: a mixture's median moves toward its narrower components.

``combined_paths`` is the forecaster's combination: the network's sample paths mixed with
a statistical forecast's (``STATISTICAL_METHODS``: the Theta method by default, or the
damped trend) and the seasonal-naive forecast's (``COMPONENTS``). Where no rows are held out
to score the network on, ``statistical_split`` still scores the two statistical forecasts,
refitted at rolling origins within the training rows (cross-validation on a rolling
forecasting origin; Hyndman & Athanasopoulos, *FPP* 3rd ed., Sec. 5.10).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit.forecasting.baselines import naive, seasonal_naive
from rnnkit.forecasting.damped import damped_trend_point_spread
from rnnkit.forecasting.forecast import Forecast
from rnnkit.forecasting.metrics import crps_by_step
from rnnkit.forecasting.theta import (
    PointSpread,
    gaussian_paths,
    rolling_origins,
    theta_point_spread,
)

__all__ = ["combine", "pool", "mixture", "widened_mixture", "statistical_forecasts",
           "mix_forecasts", "combined_paths", "statistical_paths", "statistical_split", "HOWS",
           "COMPONENTS", "STATISTICAL_SPLITS", "STATISTICAL_METHODS", "STATISTICAL_NAMES"]

HOWS = ("quantiles", "mixture")
# the forecasts combined_paths mixes, in the order of its weights
COMPONENTS = ("network", "statistical", "SeasonalNaive")
# the statistical forecasts it can mix in (ForecastConfig.statistical), and their names
STATISTICAL_METHODS: dict[str, PointSpread] = {"theta": theta_point_spread,
                                               "damped_trend": damped_trend_point_spread}
STATISTICAL_NAMES = {"theta": "Theta", "damped_trend": "DampedTrend"}
# the shares of it and SeasonalNaive in the statistical part statistical_split chooses
STATISTICAL_SPLITS = ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0))


def _quantile_rows(samples: np.ndarray, s: int) -> np.ndarray:
    """``[s, H]``: the samples' quantiles at the midpoints ``(i + 0.5) / s``, ascending."""
    if len(samples) == s:
        return np.sort(samples, axis=0)
    return np.quantile(samples, (np.arange(s) + 0.5) / s, axis=0)


def mixture(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``[S, H]`` (S: the first part's samples): a share ``weights[i]`` (they sum to 1) of
    each ``parts[i] [S_i, H]``; the first part's are its own first paths, the others' their
    quantile rows (so the result does not depend on their samples' order)."""
    if len(parts) != len(weights):
        raise ValueError(f"{len(parts)} forecasts and {len(weights)} weights")
    if min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"weights must be >= 0 and sum to 1, got {tuple(weights)}")
    if len({p.shape[1] for p in parts}) > 1:
        raise ValueError("the forecasts' horizons differ: "
                         f"{' and '.join(str(p.shape[1]) for p in parts)} steps")
    s = len(parts[0])
    ends = np.round(np.cumsum(weights) * s).astype(int)
    counts = np.diff(np.r_[0, ends])
    counts[-1] += s - ends[-1]
    rows = [parts[0][: counts[0]]]
    rows += [_quantile_rows(p, k) for p, k in zip(parts[1:], counts[1:]) if k > 0]
    return np.concatenate(rows)


def pool(a: np.ndarray, b: np.ndarray, weight: float, how: str = "mixture") -> np.ndarray:
    """``[S, H]``: ``weight`` of the samples ``a [S, H]`` and ``1 - weight`` of ``b [S', H]``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if how not in HOWS:
        raise ValueError(f"how must be one of {HOWS}, got {how!r}")
    if how == "quantiles":
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"the forecasts' horizons differ: {a.shape[1]} and {b.shape[1]} "
                             "steps")
        s = len(a)
        return weight * _quantile_rows(a, s) + (1 - weight) * _quantile_rows(b, s)
    return mixture([a, b], [weight, 1 - weight])


def widened_mixture(parts: Sequence[np.ndarray], wide: Sequence[np.ndarray],
                    weights: Sequence[float]) -> np.ndarray:
    """``[S, H]``: the mixture of ``wide`` (the ``parts`` with some intervals widened),
    shifted step by step to the median of the mixture of ``parts``: the interval widens,
    the point forecast (the median) stays."""
    mixed = mixture(wide, weights)
    return mixed - np.median(mixed, 0) + np.median(mixture(parts, weights), 0)


def _point_spread(method: str) -> PointSpread:
    if method not in STATISTICAL_METHODS:
        raise ValueError(f"method must be one of {tuple(STATISTICAL_METHODS)}, got {method!r}")
    return STATISTICAL_METHODS[method]


def statistical_forecasts(values: np.ndarray, horizon: int, m: int, num_samples: int,
                          seed: int = 0, method: str = "theta"
                          ) -> tuple[Forecast, Forecast]:
    """The statistical forecast ``method`` (of ``STATISTICAL_METHODS``) and the
    seasonal-naive one (naive where ``values`` has no more than ``m`` rows) of ``values [T]``
    (season ``m``), ``num_samples`` paths each."""
    values = np.asarray(values, np.float64)
    stat = gaussian_paths(_point_spread(method), values, horizon, m, num_samples=num_samples,
                          seed=seed)
    base = (seasonal_naive(values, horizon, m, num_samples=num_samples, seed=seed + 1)
            if len(values) > m else naive(values, horizon, num_samples=num_samples, seed=seed + 1))
    return stat, base


def mix_forecasts(network: np.ndarray, stat: Forecast, base: Forecast,
                  weights: Sequence[float], theta_spread: float = 1.0) -> np.ndarray:
    """``[S, H]``: the network's paths mixed with the statistical forecast ``stat`` and the
    seasonal-naive ``base`` at shares ``weights``, ``stat``'s interval widened by
    ``theta_spread`` about its point forecast (``widened_mixture``)."""
    if tuple(weights) == (1.0, 0.0, 0.0):
        return network
    parts = [network, stat.samples, base.samples]
    if theta_spread == 1.0:
        return mixture(parts, weights)
    wide = [network, stat.mean + theta_spread * (stat.samples - stat.mean), base.samples]
    return widened_mixture(parts, wide, weights)


def combined_paths(network: np.ndarray, values: np.ndarray, horizon: int, m: int,
                   weights: Sequence[float], theta_spread: float = 1.0,
                   seed: int = 0, method: str = "theta") -> np.ndarray:
    """``[S, H]``: the network's sample paths ``network [S, H]`` mixed with the statistical
    forecast ``method`` and the seasonal-naive one (naive where ``values`` has no more than
    ``m`` rows) of ``values [T]`` (season ``m``), at shares ``weights`` (``COMPONENTS``'
    order), the statistical forecast's interval widened by ``theta_spread`` about its point
    forecast and the whole kept at the median of the mixture without widening
    (``widened_mixture``)."""
    if theta_spread <= 0:
        raise ValueError(f"theta_spread must be > 0, got {theta_spread}")
    if tuple(weights) == (1.0, 0.0, 0.0):  # nothing to fit
        return network
    stat, base = statistical_forecasts(values, horizon, m, len(network), seed, method)
    return mix_forecasts(network, stat, base, weights, theta_spread)


def statistical_paths(values: np.ndarray, horizon: int, m: int, split: Sequence[float],
                      theta_spread: float = 1.0, num_samples: int = 200, seed: int = 0,
                      method: str = "theta") -> np.ndarray:
    """``[S, H]``: the statistical forecast ``method`` and the seasonal-naive one of
    ``values [T]`` (season ``m``) mixed at the shares ``split`` (of ``STATISTICAL_SPLITS``'
    kind: statistical, SeasonalNaive), the first's interval widened by ``theta_spread``: a
    series' forecast without the network."""
    stat, base = statistical_forecasts(values, horizon, m, num_samples, seed, method)
    # the network's share is 0: its paths only set the number of samples
    return mix_forecasts(stat.samples, stat, base, (0.0, *split), theta_spread)


def statistical_split(series: Sequence[np.ndarray], horizon: int, m: int,
                      theta_spread: float = 1.0, num_samples: int = 50, seed: int = 0,
                      method: str = "theta"
                      ) -> tuple[tuple[float, float], dict[str, float], int]:
    """The shares of the statistical forecast ``method`` and SeasonalNaive (one of
    ``STATISTICAL_SPLITS``) whose mixture (the first's interval widened by
    ``theta_spread``, as ``mix_forecasts`` does) has the lowest
    CRPS of ``horizon``-step forecasts from the ``theta.rolling_origins`` of each series
    ``[T_i]`` (season ``m``), each divided by the mean |value| before its origin and pooled
    over the series; ties go to the earlier split. Returns ``(split, {"1/0": mean CRPS,
    ...}, origins scored)``; with no origin, the even split and no scores."""
    totals = np.zeros(len(STATISTICAL_SPLITS))
    count = 0
    for values in series:
        y = np.asarray(values, np.float64)
        for o in rolling_origins(len(y), horizon, m):
            stat, base = statistical_forecasts(y[:o], horizon, m, num_samples, seed, method)
            scale = float(np.mean(np.abs(y[:o]))) or 1.0
            for j, (a, b) in enumerate(STATISTICAL_SPLITS):
                # the network's share is 0: its paths only set the number of samples
                mixed = mix_forecasts(stat.samples, stat, base, (0.0, a, b), theta_spread)
                totals[j] += crps_by_step(mixed, y[o: o + horizon]).mean() / scale
            count += 1
    if not count:
        return (0.5, 0.5), {}, 0
    mean = totals / count
    scores = {"/".join(f"{w:g}" for w in split): float(s)
              for split, s in zip(STATISTICAL_SPLITS, mean)}
    return STATISTICAL_SPLITS[int(np.argmin(mean))], scores, count


def combine(a: Forecast, b: Forecast, weight: float, how: str = "mixture") -> Forecast:
    """``weight`` of forecast ``a`` and ``1 - weight`` of ``b`` (same horizon), with ``a``'s
    dates, number of samples and quantile levels."""
    samples = pool(a.samples, b.samples, weight, how)
    return Forecast(a.dates, samples, samples.mean(0), np.quantile(samples, a.levels, axis=0),
                    a.levels)
