"""Dated series from CSV files: one value column, a date column, optionally an id column
(long format: one row per series and date, e.g. ``symbol,date,price``)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.data.series import TIME_COLUMN_NAMES
from rnnkit.data.text import read_text_file
from rnnkit.forecasting.frequency import check_dates, parse_dates

__all__ = ["DatedSeries", "load_series", "interpolate_gaps"]


@dataclass
class DatedSeries:
    """One series: ``values [T]`` float64 at ``dates [T]`` (datetime64[m], sorted, unique)."""

    name: str
    dates: np.ndarray
    values: np.ndarray
    value_column: str = ""  # where load_series read it (for writing forecasts back)
    date_column: str = ""

    def __post_init__(self) -> None:
        if len(self.dates) != len(self.values):
            raise ValueError(f"{self.name}: {len(self.dates)} dates but {len(self.values)} values")
        check_dates(self.dates)

    def head(self, n: int) -> DatedSeries:
        """The first ``n`` rows (e.g. the training rows before a held-out tail)."""
        return DatedSeries(self.name, self.dates[:n], self.values[:n], self.value_column,
                           self.date_column)


def interpolate_gaps(values: np.ndarray) -> np.ndarray:
    """NaNs filled linearly between their neighbours (ends: the nearest value)."""
    values = np.asarray(values, dtype=np.float64).copy()
    bad = np.isnan(values)
    if bad.all():
        raise DataError("every value is missing")
    idx = np.arange(len(values))
    values[bad] = np.interp(idx[bad], idx[~bad], values[~bad])
    return values


def load_series(path: str | Path, value: str | None = None, date: str | None = None,
                by: str | None = None, fill_gaps: bool = False) -> list[DatedSeries]:
    """Read the ``value`` column (default: the first numeric column not named like a date)
    against the ``date`` column (default: the first named like one), one series per value of
    ``by`` (long format) or one series. Empty or non-numeric cells are a DataError naming the
    file's lines, unless ``fill_gaps`` interpolates them linearly."""
    path = Path(path)
    rows = list(csv.reader(read_text_file(path, kind="a CSV file").splitlines()))
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header and data rows")
    header, rows = [h.strip() for h in rows[0]], rows[1:]

    def column(name: str | None, what: str, default: list[str]) -> int:
        if name is None:
            if not default:
                raise DataError(f"{path}: no {what} column found in {header}; name it")
            name = default[0]
        if name not in header:
            raise DataError(f"{path}: no column {name!r}; the columns are {header}")
        return header.index(name)

    def numeric(j: int) -> bool:
        cells = [r[j].strip() for r in rows[:50] if j < len(r) and r[j].strip()]
        return bool(cells) and all(_float(c) is not None for c in cells)

    d = column(date, "date", [h for h in header if h.lower() in TIME_COLUMN_NAMES])
    v = column(value, "numeric value", [h for j, h in enumerate(header)
                                        if j != d and h != by and numeric(j)])
    groups: dict[str, list[int]] = {}
    if by is not None:
        b = column(by, "id", [])
        for i, r in enumerate(rows):
            groups.setdefault(r[b].strip(), []).append(i)
    else:
        groups[header[v]] = list(range(len(rows)))
    out = []
    for name, idx in groups.items():
        vals = np.array([_float(rows[i][v]) if v < len(rows[i]) else None for i in idx],
                        dtype=np.float64)  # None -> nan
        bad = [idx[k] + 2 for k in np.flatnonzero(~np.isfinite(vals))]
        if bad and not fill_gaps:
            shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5
                                                    else "")
            raise DataError(f"{path}: column {header[v]!r} has {len(bad)} empty or non-numeric "
                            f"value(s) at line(s) {shown}; fill them or pass fill_gaps")
        dates = parse_dates([rows[i][d] for i in idx])
        try:
            check_dates(dates)
        except DataError as e:
            raise DataError(f"{path}: series {name!r}: {e}") from None
        out.append(DatedSeries(name, dates, interpolate_gaps(vals) if bad else vals,
                               header[v], header[d]))
    return out


def _float(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None
