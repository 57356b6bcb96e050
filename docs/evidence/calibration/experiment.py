"""The forecaster's temperature rule against split conformal's level, on the validation split.

    python docs/evidence/calibration/experiment.py SEED BUDGET OUT.json

For each file of benchmarks/forecast.py's panel: drop the test rows, train once (BUDGET
seconds at most, 1 thread), score every temperature on the model's validation windows, let
both rules choose, and score each choice on the H rows after the training rows (the
validation split's held-out rows, never the test rows).

- today's rule (``fit.calibrate(by="coverage")``): the temperature of (1, 1.25, 1.5, 2, 3, 4,
  6, 8) whose validation coverage is closest to 80%, CRPS breaking ties;
- conformal: the smallest of (1, 1.1, 1.25, 1.4, 1.6, 1.8, 2, 2.5, 3, 4, 6, 8) whose
  validation coverage reaches ceil((n + 1) * 0.8) / n, n the validation values; else the one
  that covers most.

The logs and JSON beside this file came from its first, untidied version (the same
computation; "old" is today's rule, "new" the conformal level).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "src")]

import forecast as fb  # noqa: E402  (benchmarks/forecast.py)

from rnnkit.forecasting import load_series, train_forecaster  # noqa: E402
from rnnkit.forecasting.features import calendar_features  # noqa: E402
from rnnkit.forecasting.fit import validation_score  # noqa: E402
from rnnkit.forecasting.windows import WindowSampler, last_windows  # noqa: E402

TODAY = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
CONFORMAL = (1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0)


class Split:  # the attributes of benchmarks/forecast.py's arguments that split_group reads
    split = "validation"


def validation_scores(forecaster, trains, seed: int) -> tuple[dict, int]:
    """{temperature: (CRPS, coverage)} on the windows fit_model validated on; n values."""
    model, cfg = forecaster.model, forecaster.model.config
    values = [t.values for t in trains]
    calendars = [calendar_features(t.dates, cfg.calendar) for t in trains]
    sampler = WindowSampler(values, calendars, [len(v) - cfg.validation for v in values], cfg,
                            seed)
    val = last_windows(sampler, values, calendars, [len(v) for v in values],
                       cfg.validation // cfg.horizon)
    got = {}
    for t in sorted(set(TODAY) | set(CONFORMAL)):
        model.temperature.fill_(t)
        got[t] = validation_score(model, val, seed=seed, coverage=True)
    model.eval()
    return got, val.values.shape[0] * cfg.horizon


def main() -> None:
    seed, budget, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(1)
    rows = []
    for name, (file, value, by) in fb.PANEL.items():
        series = load_series(fb.DATA / file, value=value, by=by, fill_gaps=name == "co2")
        _, h, m, trains, actuals = fb.split_group(series, Split)
        forecaster, _ = train_forecaster(trains, h, max_time=budget, seed=seed)
        vs, n = validation_scores(forecaster, trains, seed)
        level = min(1.0, math.ceil((n + 1) * 0.8) / n)
        today = min(TODAY, key=lambda t: (round(abs(vs[t][1] - 0.8), 6), vs[t][0]))
        reach = [t for t in CONFORMAL if vs[t][1] >= level - 1e-9]
        conformal = reach[0] if reach else max(CONFORMAL, key=lambda t: (vs[t][1], -t))
        for s, t, y in zip(series, trains, actuals):
            row = {"series": fb.label_of(name, series, s), "n_val": n, "level": level,
                   "val_cover": {str(k): v[1] for k, v in vs.items()}}
            for rule, temperature in (("old", today), ("new", conformal)):
                forecaster.model.temperature.fill_(temperature)
                f = forecaster.forecast(t.values, t.dates, h, num_samples=500, series=s.name,
                                        seed=seed)
                sc = fb.scores(y, f.quantile(0.5), f.samples, t.values, m, 0.0)
                row[rule] = {"T": temperature, "mase": sc["mase"], "crps": sc["crps"],
                             "coverage": sc["coverage"]}
            rows.append(row)
            print(f"{row['series']:22} n={n:4} level={level:.3f}  today T={today} "
                  f"cover {row['old']['coverage']:.2f} CRPS {row['old']['crps']:.3f} | "
                  f"conformal T={conformal} cover {row['new']['coverage']:.2f} "
                  f"CRPS {row['new']['crps']:.3f}", flush=True)
        Path(out).write_text(json.dumps(rows, indent=1))
    for rule in ("old", "new"):
        cover = np.mean([r[rule]["coverage"] for r in rows])
        crps = np.exp(np.mean([np.log(r[rule]["crps"]) for r in rows]))
        print(f"{rule}: mean coverage {cover:.3f}, geometric-mean CRPS {crps:.3f}")


if __name__ == "__main__":
    main()
