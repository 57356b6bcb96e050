"""DeepAR-style probabilistic forecasting of dated series (Salinas et al. 2020).

    series = load_series("airpassengers.csv")                  # [DatedSeries]
    forecaster, report = train_forecaster(series, horizon=12, max_time=60)
    fc = forecaster.forecast(series[0].values, series[0].dates, horizon=12)
    fc.mean, fc.quantiles, fc.samples                          # [H], [Q, H], [S, H]

Covariates (future-known, past-only, static) go in as one ``Covariates`` per series
(``train_forecaster(..., covariates=[...])``; ``load_series(..., future=[...])`` reads them
into each series' ``covariates``). The DataFrame API is ``rnnkit.forecasting.frame``.

Modules: frequency (dates), data (CSV), covariates, features (lags, calendar, scaling), windows
(training windows and default sizes), model (DeepAR, Forecaster), fit (the training loop),
forecast (sample paths), theta (the Theta method), combination (pooling two forecasts: a
forecast mixes the network's paths with Theta's at the share chosen on validation windows),
metrics, baselines (Naive, SeasonalNaive), backtest (rolling origin).
"""

from rnnkit.forecasting.backtest import backtest
from rnnkit.forecasting.baselines import naive, seasonal_naive
from rnnkit.forecasting.covariates import Covariates
from rnnkit.forecasting.data import DatedSeries, load_future, load_series
from rnnkit.forecasting.fit import FitReport, train_forecaster
from rnnkit.forecasting.frequency import Frequency, future_dates, infer_frequency, parse_dates
from rnnkit.forecasting.metrics import evaluate
from rnnkit.forecasting.model import DeepAR, DeepAREnsemble, Forecast, Forecaster
from rnnkit.forecasting.theta import theta
from rnnkit.forecasting.windows import ForecastConfig, default_config

__all__ = [
    "DatedSeries", "load_series", "load_future", "Covariates", "train_forecaster", "FitReport",
    "Forecaster", "Forecast",
    "DeepAR", "DeepAREnsemble", "ForecastConfig", "default_config", "Frequency", "infer_frequency",
    "parse_dates", "future_dates", "naive", "seasonal_naive", "theta", "evaluate", "backtest",
]
