"""DeepAR-style probabilistic forecasting of dated series (Salinas et al. 2020).

    series = load_series("airpassengers.csv")                  # [DatedSeries]
    forecaster, report = train_forecaster(series, horizon=12, max_time=60)
    fc = forecaster.forecast(series[0].values, series[0].dates, horizon=12)
    fc.mean, fc.quantiles, fc.samples                          # [H], [Q, H], [S, H]

Modules: frequency (dates), data (CSV), features (lags, calendar, scaling), windows
(training windows and default sizes), model (DeepAR, Forecaster), fit (the training loop),
metrics, baselines (Naive, SeasonalNaive), backtest (rolling origin).
"""

from rnnkit.forecasting.backtest import backtest
from rnnkit.forecasting.baselines import naive, seasonal_naive
from rnnkit.forecasting.data import DatedSeries, load_series
from rnnkit.forecasting.fit import FitReport, train_forecaster
from rnnkit.forecasting.frequency import Frequency, future_dates, infer_frequency, parse_dates
from rnnkit.forecasting.metrics import evaluate
from rnnkit.forecasting.model import DeepAR, DeepAREnsemble, Forecast, Forecaster
from rnnkit.forecasting.windows import ForecastConfig, default_config

__all__ = [
    "DatedSeries", "load_series", "train_forecaster", "FitReport", "Forecaster", "Forecast",
    "DeepAR", "DeepAREnsemble", "ForecastConfig", "default_config", "Frequency", "infer_frequency",
    "parse_dates", "future_dates", "naive", "seasonal_naive", "evaluate", "backtest",
]
