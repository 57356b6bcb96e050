"""Why the forecaster's 80% intervals cover too little on the hourly series: validation rows
only (the test split's last H rows are never read).

    python docs/evidence/coverage/diagnose.py seattle-temps > seattle-temps.log

1. Drop the test rows and 5 more horizons; train the default forecaster (120 s at most, 1
   thread, seed 0) on the rest. For temperatures 1 to 3: the coverage of its own validation
   windows, and of the 5 origins after its training rows (H rows apart, the last ending
   where the test rows begin).
2. At temperature 1 and at the calibrated one: coverage by horizon step on the validation
   windows, and the factor on the interval's half-width that would have covered 80% at that
   step (the 0.8-quantile of |y - median| / half-width).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.forecasting import load_series, train_forecaster  # noqa: E402
from rnnkit.forecasting.features import calendar_features  # noqa: E402
from rnnkit.forecasting.fit import _windows, validation_score  # noqa: E402

FILES = {"seattle-temps": ("seattle-temps.csv", "temp", 48),
         "seattle-weather": ("seattle-weather.csv", "temp_max", 7)}


def main(name: str) -> None:
    torch.set_num_threads(1)
    file, column, H = FILES[name]
    series = load_series(ROOT.parent / "shared" / "data" / file, value=column)[0]
    end = len(series.values) - H - 5 * H
    train = series.head(end)
    forecaster, report = train_forecaster([train], H, max_time=120, seed=0)
    model, cfg = forecaster.model, forecaster.config
    _, val = _windows(cfg, [train.values], [calendar_features(train.dates, cfg.calendar)], 0)
    chosen = float(model.temperature)
    print(f"{name}: calibrated temperature {chosen:g}, {len(val.values)} validation windows, "
          f"best step {report.best_step}")
    for temperature in (1.0, 1.25, 1.5, 2.0, 3.0):
        model.temperature.fill_(temperature)
        _, cover = validation_score(model, val, num_samples=200, seed=0, coverage=True)
        after = []
        for k in range(5):
            origin = end + k * H
            context = series.head(origin)
            fc = forecaster.forecast(context.values, context.dates, H, num_samples=200)
            lo, hi = fc.interval(0.8)
            y = series.values[origin: origin + H]
            after.append(float(np.mean((lo <= y) & (y <= hi))))
        print(f"T={temperature:g}: validation windows {cover:.2f} | next 5 origins "
              f"{np.mean(after):.2f} {np.round(after, 2).tolist()}")
    context = val.values[:, : cfg.max_lag + cfg.context_length]
    y = val.values[:, -H:].numpy()
    steps = np.linspace(0, H - 1, 6).astype(int)
    for temperature in (1.0, chosen):
        model.temperature.fill_(temperature)
        torch.manual_seed(0)
        paths = model.sample_paths(context, val.calendar, val.series, H, 200).numpy()
        lo, hi = np.quantile(paths, [0.1, 0.9], axis=1)
        median = np.median(paths, 1)
        cover = ((lo <= y) & (y <= hi)).mean(0)
        need = np.quantile(np.abs(y - median) / ((hi - lo) / 2 + 1e-9), 0.8, axis=0)
        print(f"T={temperature:g} by step {(steps + 1).tolist()}: coverage "
              f"{np.round(cover[steps], 2).tolist()}, factor for 80% "
              f"{np.round(need[steps], 2).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "seattle-temps")
