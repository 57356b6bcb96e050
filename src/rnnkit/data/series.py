"""Numeric time series from CSV files: choose columns, refuse gaps loudly, never fill silently."""

from __future__ import annotations

import csv
import io
import math
import re
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


# Cells that mean "no value here" (pandas' and R's usual spellings): gaps, not text, when
# deciding whether a column is numeric; inside a numeric column they are still an error.
MISSING_MARKERS = {"na", "n/a", "#n/a", "nan", "null", "none", "nil", "-", "--", "?", "."}

FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_missing(cell: str) -> bool:
    """An empty cell, a missing marker such as NA, or NaN: a gap in the data, not text."""
    cell = cell.strip().lower()
    return cell in ("", *MISSING_MARKERS) or cell.lstrip("+-") == "nan"


def read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header's names, the data rows, and the 1-based line in the file where each data
    row starts (a quoted cell may span lines). A DataError for a file without a header or
    data rows, a repeated column name, or a row with more cells than the header has names."""
    text = read_text_file(path, kind="a CSV file")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    lines: list[int] = []
    lines_read = 0
    try:
        for row in reader:
            rows.append(row)
            lines.append(lines_read + 1)
            lines_read = reader.line_num
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num} is not valid CSV ({err})") from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines; a blank line inside the data is a missing row
    if not rows:
        raise DataError(f"{path}: holds no values (only commas, quotes or blank lines)")
    header = [name.strip() for name in rows[0]]
    if all(_parse_float(name) is not None for name in header if name):
        raise DataError(f"{path}: the first row must be a header naming the columns, got {rows[0]}")
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path}: the header names column(s) {', '.join(map(repr, repeated))} more than "
            f"once (columns: {header}); give every column its own name"
        )
    if len(rows) < 2:
        raise DataError(f"{path}: has a header but no data rows")
    for row, line in zip(rows[1:], lines[1:]):
        # More cells than names is a misaligned row, most often a decimal comma ("1,5") or a
        # file separated by ';': reading it would shift values into the wrong columns.
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header):]):
            raise DataError(
                f"{path}: line {line} has {len(row)} cells but the header names {len(header)} "
                f"column(s) ({row}); is a decimal comma or another separator than ',' in use?"
            )
    other = [sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]]
    if other:  # read as commas, such a file is one text column: say why, not "no numbers"
        raise DataError(f"{path}: the header {rows[0][0]!r} is one column; rnnkit reads "
                        f"comma-separated files: is {other[0]!r} the separator? write it "
                        "with commas")
    return header, rows[1:], lines[1:]


# Thousands separators, currency and percent signs: "1,234", "$5", "12 %" are numbers written
# for people, so a column of them is numeric (and then an error), never silently text.
_NUMBER_DECORATION = re.compile(r"[\s,_'%$\u20ac\u00a3\u00a5]")


def _is_formatted_number(cell: str) -> bool:
    plain = _NUMBER_DECORATION.sub("", cell)
    return plain != cell and any(c.isdigit() for c in plain) and _parse_float(plain) is not None


def _is_numeric_column(cells: list[str]) -> bool:
    """Numbers in at least as many cells as text: a numeric column with a few bad cells (then
    an error naming them), not a text column (names, dates) with a number here and there.
    Empty cells and missing markers such as NA count for neither."""
    numbers = text = 0
    for cell in cells:
        if _parse_float(cell) is not None or _is_formatted_number(cell):
            numbers += 1
        elif not is_missing(cell):
            text += 1
    return numbers > 0 and numbers >= text


def numeric_columns(header: list[str], rows: list[list[str]]) -> list[int]:
    """The indices of the columns whose cells are mostly numbers, skipping unnamed columns
    and ones named like a time stamp (``TIME_COLUMN_NAMES``)."""
    # An unnamed column is most often a row index that pandas wrote (to_csv's default), like
    # the columns named as time stamps: never a signal to model unless chosen.
    return [j for j in range(len(header))
            if header[j] and header[j].lower() not in TIME_COLUMN_NAMES
            and _is_numeric_column(column_cells(rows, j))]


def column_cells(rows: list[list[str]], j: int) -> list[str]:
    """Column ``j`` of ``rows``, stripped; a short row's missing cell is empty."""
    return [row[j].strip() if j < len(row) else "" for row in rows]


def column_index(path: Path, header: list[str], name: str | int) -> int:
    """The index of the column called ``name``, or of the 0-based index ``name``."""
    name = str(name)  # an int index works as well as "2"
    if name in header:
        return header.index(name)
    if name.isdigit() and int(name) < len(header):
        return int(name)
    raise DataError(f"{path}: no column {name!r}; the columns are {header}")


def _resolve_columns(path: Path, header: list[str], rows: list[list[str]],
                     columns: list[str] | None) -> list[int]:
    if columns:
        chosen = []
        for name in columns:
            j = column_index(path, header, name)
            if j in chosen:
                raise DataError(f"{path}: column {header[j]!r} is chosen twice in {columns}")
            chosen.append(j)
        return chosen

    chosen = numeric_columns(header, rows)
    if not chosen:
        raise DataError(
            f"{path}: no numeric column to model (columns: {header}); "
            "name the ones to use with --columns"
        )
    return chosen


def list_lines(rows: list[int]) -> str:
    """``[2, 5, ...]`` as "2, 5, 7, 9, 11 and 3 more" (the first five)."""
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def load_csv(path: str | Path, columns: list[str] | None = None) -> Series:
    """Read the chosen numeric ``columns`` (names or 0-based indices; default: every named
    column whose cells are mostly numbers, except ones named like a time stamp). Missing,
    NaN, infinite, non-numeric cells and numbers beyond float32's range raise a DataError
    naming the column and the file's line numbers."""
    path = Path(path)
    header, rows, lines = read_rows(path)
    chosen = _resolve_columns(path, header, rows, columns)
    values = np.empty((len(rows), len(chosen)), dtype=np.float32)
    for k, j in enumerate(chosen):
        cells = column_cells(rows, j)
        values[:, k], bad = read_numbers(path, header[j], cells, lines)
        if bad:
            raise bad_cells_error(
                path, header[j], [lines[i] for i in bad], [cells[i] for i in bad],
                "fill or drop those rows first",
                also="" if columns else ", or name the columns to use with --columns")
    return Series(values, [header[j] for j in chosen], str(path))


def read_numbers(path: Path, column: str, cells: list[str],
                 lines: list[int]) -> tuple[np.ndarray, list[int]]:
    """The ``cells`` of ``column`` as float64 numbers ``[N]``, NaN where a cell holds no
    finite number (empty, text, NaN or infinite), and the indices of those cells. A number
    beyond float32's range is a DataError naming the file's line (``lines[i]`` for cell i)."""
    values = np.full(len(cells), np.nan)
    bad = []
    for i, cell in enumerate(cells):
        number = _parse_float(cell)
        # "1e300" and "1e400" (inf in float64) alike; "inf" itself is a bad cell.
        if (number is not None and abs(number) > FLOAT32_MAX
                and cell.lower().lstrip("+-") not in ("inf", "infinity")):
            raise DataError(
                f"{path}: column {column!r} at line {lines[i]} holds {cell!r}, which "
                f"does not fit float32 (largest magnitude {FLOAT32_MAX:.4g}); rescale it"
            )
        if number is None or not math.isfinite(number):
            bad.append(i)
        else:
            values[i] = number
    return values, bad


def bad_cells_error(path: Path, column: str, lines: list[int], texts: list[str], fix: str,
                    also: str = "") -> DataError:
    """The DataError for the ``texts`` of ``column`` at ``lines`` that hold no number: says
    what they are (empty, NaN, formatted like "1,234", text) and ``fix`` (for formatted
    numbers: how to write plain ones), then ``also``."""
    if all(t == "" for t in texts):
        what = "empty"
    elif all(_parse_float(t) is not None for t in texts):
        what = "NaN or infinite"
    elif all(_is_formatted_number(t) for t in texts):
        what = "formatted"
        fix = "write plain numbers such as 1234.5, without separators, currency or %"
    elif all(t != "" for t in texts):
        what = "non-numeric"
    else:
        what = "empty or non-numeric"
    return DataError(
        f"{path}: column {column!r} has {len(lines)} {what} value(s) at line(s) "
        f"{list_lines(lines)} (e.g. {texts[0]!r}); {fix}{also}"
    )
