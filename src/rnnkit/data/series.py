"""Numeric time series from CSV files: choose columns, refuse gaps loudly, never fill silently."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.data.text import read_text_file

# Columns with these names are time stamps, not signals, so they are never picked by default.
TIME_COLUMN_NAMES = {"date", "time", "datetime", "timestamp", "index", "year", "month", "day"}


@dataclass
class Series:
    """A multivariate series read from a CSV file, rows in file order."""

    values: np.ndarray  # [T, C] float32, one column per chosen CSV column
    columns: list[str]  # the chosen columns' header names, in the order of ``values``
    path: str  # where it came from, for messages


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    text = read_text_file(path, kind="a CSV file")
    rows = list(csv.reader(text.splitlines()))
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines; a blank line inside the data is a missing row
    header = [name.strip() for name in rows[0]]
    if all(_parse_float(name) is not None for name in header):
        raise DataError(f"{path}: the first row must be a header naming the columns, got {rows[0]}")
    if len(rows) < 2:
        raise DataError(f"{path}: has a header but no data rows")
    return header, rows[1:]


def _resolve_columns(path: Path, header: list[str], rows: list[list[str]],
                     columns: list[str] | None) -> list[int]:
    if columns:
        chosen = []
        for name in columns:
            if name in header:
                chosen.append(header.index(name))
            elif name.isdigit() and int(name) < len(header):
                chosen.append(int(name))
            else:
                raise DataError(f"{path}: no column {name!r}; the columns are {header}")
        return chosen

    def numeric(j: int) -> bool:
        cells = [row[j].strip() for row in rows if j < len(row) and row[j].strip()]
        return bool(cells) and all(_parse_float(c) is not None for c in cells)

    chosen = [j for j in range(len(header))
              if header[j].lower() not in TIME_COLUMN_NAMES and numeric(j)]
    if not chosen:
        raise DataError(
            f"{path}: no numeric column to model (columns: {header}); "
            "name the ones to use with --columns"
        )
    return chosen


def _rows_list(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def load_csv(path: str | Path, columns: list[str] | None = None) -> Series:
    """Read the chosen numeric ``columns`` (names or 0-based indices; default: every numeric
    column not named like a time stamp). Missing, NaN, infinite or non-numeric cells raise a
    DataError naming the column and the file's line numbers."""
    path = Path(path)
    header, rows = _read_rows(path)
    chosen = _resolve_columns(path, header, rows, columns)
    values = np.empty((len(rows), len(chosen)), dtype=np.float64)
    for k, j in enumerate(chosen):
        bad_lines, bad_text = [], []
        for i, row in enumerate(rows):
            cell = row[j].strip() if j < len(row) else ""
            number = _parse_float(cell)
            if number is None or not math.isfinite(number):
                bad_lines.append(i + 2)  # 1-based, after the header line
                bad_text.append(cell)
            else:
                values[i, k] = number
        if bad_lines:
            if all(t == "" for t in bad_text):
                what = "empty"
            elif all(_parse_float(t) is not None for t in bad_text):
                what = "NaN or infinite"
            elif all(t != "" for t in bad_text):
                what = "non-numeric"
            else:
                what = "empty or non-numeric"
            raise DataError(
                f"{path}: column {header[j]!r} has {len(bad_lines)} {what} value(s) at line(s) "
                f"{_rows_list(bad_lines)} (e.g. {bad_text[0]!r}); fill or drop those rows first"
            )
    return Series(values.astype(np.float32), [header[j] for j in chosen], str(path))
