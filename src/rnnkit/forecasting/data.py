"""Dated series from CSV files: one value column, a date column, optionally an id column
(long format: one row per series and date, e.g. ``symbol,date,price`` or statsforecast's
``unique_id,ds,y``).

The file is read by the same rules as ``rnnkit train``'s CSV reader
(:mod:`rnnkit.data.series`): a row with more cells than the header names, a number beyond
float32, a formatted number such as ``1,234`` are refused naming the file's line. Dates must
lie on the grid of their frequency; missing dates, like empty cells, are refused unless
``fill_gaps`` interpolates them.

A file without dates is a series of integer steps: without a date column its rows are steps
0..n-1, and a date column of integers that are not dates (``ds`` = 0, 1, 2, ..., or a column
named ``step``) gives the steps. Such a series has no calendar features; its season is the
one stated (``season``) or inferred from the values (:func:`rnnkit.forecasting.season
.infer_season`). A :class:`DatedSeries` built in code with integer ``dates`` is the same.

Covariate columns (``future``, ``past``, ``static``: :mod:`rnnkit.forecasting.covariates`)
are read by the same rules as the target, into each series' ``covariates``: a cell that is
not a number is refused naming its lines, an empty one too unless ``fill_gaps``
interpolates it (and the rows of missing dates) as it does the target's; a static column
must hold one value within each series. :func:`load_future` reads a forecast's horizon
values of the future-known ones from a second file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.errors import DataError
from rnnkit.data.series import (
    TIME_COLUMN_NAMES,
    bad_cells_error,
    column_cells,
    column_index,
    is_missing,
    list_lines,
    numeric_columns,
    read_numbers,
    read_rows,
)
from rnnkit.forecasting.covariates import Covariates
from rnnkit.forecasting.frequency import (
    STEP_FORMAT,
    Frequency,
    check_dates,
    fill_grid,
    format_dates,
    future_dates,
    grid_break,
    infer_frequency,
    is_steps,
    read_dates,
    to_steps,
    with_season,
)
from rnnkit.forecasting.season import infer_season

__all__ = ["DatedSeries", "load_series", "load_future", "series_covariates", "interpolate_gaps",
           "series_frequency", "default_horizon", "DATE_COLUMN_NAMES", "STEP_COLUMN_NAMES"]

# ds, unique_id and y: the long format of statsforecast and neuralforecast.
DATE_COLUMN_NAMES = TIME_COLUMN_NAMES | {"ds", "quarter", "week"}
STEP_COLUMN_NAMES = {"step", "steps"}  # always integer steps, even 1990, 1991, ...
DEFAULT_ID, DEFAULT_TARGET = "unique_id", "y"
FILL_HINT = "--fill interpolate (fill_gaps=True)"
FUTURE_FLAG = "--future FILE.csv"


@dataclass
class DatedSeries:
    """One series: ``values [T]`` float64 at ``dates [T]`` (datetime64[m], sorted, unique),
    or at integer steps ``[T]`` (int64, one apart: a series without dates), and the
    ``covariates`` read with it (their dynamic arrays ``[T]``; None: none named).

    ``season`` (0: not set) replaces the frequency's season (see :func:`series_frequency`);
    without dates and without a season, the season is inferred from the values."""

    name: str
    dates: np.ndarray
    values: np.ndarray
    value_column: str = ""  # where load_series read it (for writing forecasts back)
    date_column: str = ""
    date_format: str = "%Y-%m-%d"  # how the file wrote its dates: see format_dates
    id_column: str = ""  # the column naming the series in a long-format file
    season: int = 0  # steps in a season, stated or inferred; 0: the dates' frequency's
    covariates: Covariates | None = None  # one row per value (forecasting.covariates)

    def __post_init__(self) -> None:
        if len(self.dates) != len(self.values):
            raise ValueError(f"{self.name}: {len(self.dates)} dates but {len(self.values)} values")
        if self.season < 0:
            raise ValueError(f"{self.name}: season must be >= 0 (0: not set), got {self.season}")
        check_dates(self.dates)
        if self.undated:
            self.dates = np.asarray(self.dates, dtype=np.int64)
            if self.date_format == "%Y-%m-%d":  # the default: no file said how to write them
                self.date_format = STEP_FORMAT

    @property
    def undated(self) -> bool:
        """Whether the series is numbered by integer steps instead of dates."""
        return is_steps(self.dates)

    def head(self, n: int) -> DatedSeries:
        """The first ``n`` rows (e.g. the training rows before a held-out tail)."""
        return dataclasses.replace(self, dates=self.dates[:n], values=self.values[:n],
                                   covariates=None if self.covariates is None else
                                   self.covariates.head(n))


def series_covariates(series: Sequence[DatedSeries]) -> list[Covariates] | None:
    """Each series' ``covariates`` as ``train_forecaster`` and ``backtest`` take them
    (None when the series have none)."""
    return None if series[0].covariates is None else [s.covariates for s in series]


def series_frequency(series: Sequence[DatedSeries]) -> Frequency:
    """The one Frequency of ``series`` trained together: the dates' (``infer_frequency``),
    its season replaced by the series' ``season`` when set; without dates and without a
    season, the season :func:`~rnnkit.forecasting.season.infer_season` finds in all of them
    together. A DataError when the series differ in frequency or season."""
    if not series:
        raise DataError("no series to train on")
    # a series of one row has no spacing to read (the too-short rule leaves it out later)
    series = [s for s in series if len(s.dates) >= 2] or series[:1]
    freqs = []
    for s in series:
        try:
            freqs.append(infer_frequency(s.dates))
        except DataError as err:
            raise DataError(f"series {s.name!r}: {err}") from None
    seasons = {s.season for s in series}
    if len(seasons) > 1:
        raise DataError(f"the series have different seasons {sorted(seasons)}; train series "
                        "of one season together (or state one with --season)")
    season = seasons.pop()
    if not season and series[0].undated:
        season = infer_season([s.values for s in series])
    for s, freq in zip(series[1:], freqs[1:]):
        if freq != freqs[0]:
            raise DataError(f"series {s.name!r} is {freq.name}, {series[0].name!r} is "
                            f"{freqs[0].name}; train series of one frequency together")
    return with_season(freqs[0], season) if season else freqs[0]


def default_horizon(series: Sequence[DatedSeries]) -> int:
    """The horizon used when none is given: two seasons for (half-)hourly data, one season
    otherwise, 10 steps without a season (yearly data, an undated series with none)."""
    freq = series_frequency(series)
    if freq.name in ("hourly", "half-hourly"):
        return 2 * freq.season
    return freq.season if freq.season > 1 else 10


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
                by: str | None = None, fill_gaps: bool = False,
                season: int | None = None, future: Sequence[str] = (),
                past: Sequence[str] = (), static: Sequence[str] = ()) -> list[DatedSeries]:
    """Read the ``value`` column (default: ``y``, else the first numeric column not named
    like a date nor a covariate) against the ``date`` column (default: the first named like
    one, ``ds`` and ``step`` included; else the first other text column whose cells all read
    as dates; else none: the rows are steps 0..n-1), one series per value of ``by`` (default:
    ``unique_id`` if there is one) or one series. Every series gets ``season`` when given;
    series without dates get the season inferred from all of them otherwise
    (``series_frequency``). Empty or NaN cells and missing dates are a DataError naming the
    file's lines, unless ``fill_gaps`` interpolates them linearly; text, formatted numbers
    and irregular dates are a DataError either way.

    ``future``, ``past``, ``static``: covariate columns of each kind, read into each series'
    ``covariates`` (the same rules; a static column must not vary within a series: a number
    when every cell of it is one, else a category)."""
    path = Path(path)
    header, rows, lines = read_rows(path)
    b = None if by is None else column_index(path, header, by)
    d = _date_column(path, header, rows, date, skip=b)
    if b is None and DEFAULT_ID in header and header.index(DEFAULT_ID) != d:
        b = header.index(DEFAULT_ID)
    kinds = _covariate_columns(path, header, {"future": future, "past": past, "static": static})
    named = {j for columns in kinds.values() for j in columns.values()}
    v = _value_column(path, header, rows, value, skip={d, b} | named)
    _check_roles(path, header, kinds, {d: "the date column", b: "the id column",
                                       v: "the target"})
    reader = _SeriesReader(path, header, rows, lines, d, v, b, fill_gaps,
                           hint="" if value else ", or name the column to forecast with --target",
                           date_hint="" if date else "; or name the date column with "
                                                     "--date-column NAME", covariates=kinds)
    series = [reader.read(name, idx) for name, idx in
              _groups(path, header, rows, lines, b, v).items()]
    if all(len(s.values) < 2 for s in series):
        raise DataError(f"{path}: every series has one row; a series needs two rows to have a "
                        f"frequency, and 2H + min(H, 12) + 1 to train a forecaster of H steps")
    if season is None and series[0].undated:
        season = series_frequency(series).season
    return series if season is None else [dataclasses.replace(s, season=season)
                                          for s in series]


def _covariate_columns(path: Path, header: list[str], kinds: dict[str, Sequence[str]]
                       ) -> dict[str, dict[str, int]]:
    """``{kind: {column name: index}}`` of the covariate columns named; a DataError for a
    column that is not in the file or is named twice."""
    out: dict[str, dict[str, int]] = {}
    seen: dict[int, str] = {}
    for kind, names in kinds.items():
        out[kind] = {}
        for name in names:
            j = column_index(path, header, name)
            if j in seen:
                raise DataError(f"{path}: column {header[j]!r} is named as a {seen[j]} and a "
                                f"{kind} covariate; give it as one kind")
            seen[j] = kind
            out[kind][header[j]] = j
    return out


def _check_roles(path: Path, header: list[str], kinds: dict[str, dict[str, int]],
                 roles: dict[int | None, str]) -> None:
    """A DataError for a covariate column that is also the date, id or target column."""
    for kind, columns in kinds.items():
        for name, j in columns.items():
            if j in roles:
                raise DataError(f"{path}: column {name!r} is {roles[j]}; it cannot be a {kind} "
                                "covariate too")


def load_future(path: str | Path, series: Sequence[DatedSeries], horizon: int,
                names: Sequence[str]) -> list[Covariates]:
    """The covariates of each of ``series`` for a forecast of ``horizon`` steps: the
    future-known ``names`` go on with their values at the ``horizon`` dates after each
    series' end, read from the CSV ``path`` by its date (or step) and id columns, the
    series' own; past-only and static ones are the series' own. A file of a series without
    a date column gives each series' horizon rows in order. A DataError names a column
    missing from ``path``, a cell that is not a number (its line), and the horizon dates
    of a series that have no row."""
    path = Path(path)
    header, rows, lines = read_rows(path)
    first = series[0]
    d = column_index(path, header, first.date_column) if first.date_column else None
    b = column_index(path, header, first.id_column) if first.id_column else None
    columns = {name: column_index(path, header, name) for name in names}
    groups = _groups(path, header, rows, lines, b, columns[names[0]]) if b is not None else {}
    freq = series_frequency(series)
    reader = _SeriesReader(path, header, rows, lines, d, columns[names[0]], b, False, "",
                           f"; {FUTURE_FLAG} needs the training file's date column")
    missing, out = {}, []
    for s in series:
        idx = groups.get(s.name, []) if b is not None else list(range(len(rows)))
        want = future_dates(s.dates[-1], freq, horizon)
        found = reader.rows_at(idx, want)
        missing_dates = want[[i is None for i in found]]
        if missing_dates.size:
            missing[s.name] = format_dates(missing_dates, s.date_format)
            continue
        cov = s.covariates or Covariates()
        values = {name: reader.numbers(j, found, "") for name, j in columns.items()}
        out.append(Covariates({n: np.concatenate([np.asarray(cov.future[n], np.float64),
                                                  values[n]]) for n in names},
                              dict(cov.past), dict(cov.static)))
    if missing:
        name, dates = next(iter(missing.items()))
        shown = ", ".join(dates[:6]) + (f" and {len(dates) - 6} more" if len(dates) > 6 else "")
        others = f" (and series {list(missing)[1:6]})" if len(missing) > 1 else ""
        where = f"series {name!r}" if b is not None else "the series"
        raise DataError(f"{path}: no future covariate values for {where} at {shown}{others}: "
                        f"a forecast of {horizon} steps needs {list(names)} at each step after "
                        f"the context; add those rows to this {FUTURE_FLAG.split()[0]} file")
    return out


def _date_column(path: Path, header: list[str], rows: list[list[str]], date: str | None,
                 skip: int | None) -> int | None:
    """The date (or step) column: ``date``, else the first named like one, else the first
    text column whose cells all read as dates; None if there is none (integer steps)."""
    if date is not None:
        return column_index(path, header, date)
    names = DATE_COLUMN_NAMES | STEP_COLUMN_NAMES
    named = [j for j, h in enumerate(header) if h.lower() in names and j != skip]
    if named:
        return named[0]
    numeric = set(numeric_columns(header, rows))
    for j in range(len(header)):
        if j not in numeric and j != skip and header[j]:
            try:
                read_dates(column_cells(rows, j))
            except DataError:
                continue
            return j
    return None


def _value_column(path: Path, header: list[str], rows: list[list[str]], value: str | None,
                  skip: set[int | None]) -> int:
    if value is not None:
        return column_index(path, header, value)
    if DEFAULT_TARGET in header and header.index(DEFAULT_TARGET) not in skip:
        return header.index(DEFAULT_TARGET)
    numeric = [j for j in numeric_columns(header, rows) if j not in skip]
    if not numeric:
        raise DataError(f"{path}: no numeric column to forecast (columns: {header}); name it "
                        "with --target NAME")
    return numeric[0]


def _integers(texts: list[str]) -> np.ndarray | None:
    """``texts`` as int64 steps when every one is an integer (``-3``, ``0``, ``42``)."""
    if not texts or not all(t.lstrip("-").isdigit() for t in texts):
        return None
    return np.array([int(t) for t in texts], dtype=np.int64)


def _groups(path: Path, header: list[str], rows: list[list[str]], lines: list[int],
            b: int | None, v: int) -> dict[str, list[int]]:
    """The rows of each series, by its name (first appearance first)."""
    if b is None:
        return {header[v]: list(range(len(rows)))}
    ids = column_cells(rows, b)
    empty = [line for line, name in zip(lines, ids) if not name]
    if empty:
        raise DataError(f"{path}: column {header[b]!r} is empty at line(s) "
                        f"{list_lines(empty)}; every row needs the name of its series")
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(ids):
        groups.setdefault(name, []).append(i)
    return groups


@dataclass
class _SeriesReader:
    """Reads one series' rows of a parsed CSV: values, dates, the grid, the gaps, and the
    covariate columns (``{kind: {name: column}}``)."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    d: int | None  # the date or step column (None: the rows are steps 0..n-1)
    v: int  # the value column
    b: int | None  # the id column, if a panel
    fill_gaps: bool
    hint: str  # added to a bad value's message
    date_hint: str  # added to a bad date's message
    covariates: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # a static column is numbers when every cell of the file is one, else categories
        self._static_numbers = {}
        for name, j in self.covariates.get("static", {}).items():
            numbers, bad = read_numbers(self.path, name, column_cells(self.rows, j), self.lines)
            if not bad:
                self._static_numbers[name] = numbers

    def read(self, name: str, idx: list[int]) -> DatedSeries:
        """The series ``name`` of the data rows ``idx``."""
        rows = [self.rows[i] for i in idx]
        lines = [self.lines[i] for i in idx]
        where = f"series {name!r}: " if self.b is not None else ""
        # the target, then the dynamic covariates: filled on the grid and interpolated alike
        columns = [self.v, *self._dynamic().values()]
        values = np.stack([self.numbers(j, idx, self.hint if j == self.v else "")
                           for j in columns], axis=1)
        if self.d is None:
            return self._series(name, np.arange(len(values)), values, "", STEP_FORMAT, idx)
        texts = column_cells(rows, self.d)
        dates, fmt = self._dates(texts, lines)
        try:
            check_dates(dates, lambda k: f"line {lines[k]}")
        except DataError as e:
            several = "" if self.b is not None else (
                "; if the file holds several series, name their id column with --id-column")
            raise DataError(f"{self.path}: {where}{e}{several}") from None
        if len(dates) > 1:
            dates, values = self._on_grid(dates, values, texts, lines, where, fmt)
        return self._series(name, dates, values, self.header[self.d], fmt, idx)

    def _dynamic(self) -> dict[str, int]:
        return {**self.covariates.get("future", {}), **self.covariates.get("past", {})}

    def _series(self, name: str, dates: np.ndarray, values: np.ndarray, column: str, fmt: str,
                idx: list[int]) -> DatedSeries:
        """The DatedSeries of ``values [T, 1 + K]`` (the target, then the dynamic
        covariates), their gaps interpolated."""
        if np.isnan(values).any():
            values = np.stack([interpolate_gaps(c) for c in values.T], axis=1)
        cov = None
        if any(self.covariates.values()):
            dynamic = dict(zip(self._dynamic(), values[:, 1:].T))
            cov = Covariates({k: dynamic[k] for k in self.covariates.get("future", {})},
                             {k: dynamic[k] for k in self.covariates.get("past", {})},
                             self._statics(name, idx))
        return DatedSeries(name, dates, values[:, 0], self.header[self.v], column, fmt,
                           self._id_column(), covariates=cov)

    def _statics(self, name: str, idx: list[int]) -> dict[str, float | str]:
        """The one value of each static column in the rows ``idx``; a DataError when it is
        empty or varies within the series."""
        out: dict[str, float | str] = {}
        for column, j in self.covariates.get("static", {}).items():
            cells = column_cells([self.rows[i] for i in idx], j)
            lines = [self.lines[i] for i in idx]
            empty = [line for line, cell in zip(lines, cells) if is_missing(cell)]
            if empty:
                raise DataError(f"{self.path}: static covariate {column!r} is empty at line(s) "
                                f"{list_lines(empty)}; give every row its series' value")
            other = next((k for k, cell in enumerate(cells) if cell != cells[0]), None)
            if other is not None:
                where = f" within series {name!r}" if self.b is not None else ""
                raise DataError(
                    f"{self.path}: static covariate {column!r} varies{where}: {cells[0]!r} at "
                    f"line {lines[0]}, {cells[other]!r} at line {lines[other]}; a static "
                    "covariate has one value per series (one that changes is "
                    "--future-covariates or --past-covariates)")
            numbers = self._static_numbers.get(column)
            out[column] = cells[0] if numbers is None else float(numbers[idx[0]])
        return out

    def _id_column(self) -> str:
        return "" if self.b is None else self.header[self.b]

    def rows_at(self, idx: list[int], want: np.ndarray) -> list[int | None]:
        """The row (of ``idx``) at each date of ``want``, None where there is none; without
        a date column the rows ``idx`` in order are the dates of ``want``."""
        if self.d is None:
            return [idx[k] if k < len(idx) else None for k in range(len(want))]
        if not idx:
            return [None] * len(want)
        dates, _ = self._dates(column_cells([self.rows[i] for i in idx], self.d),
                               [self.lines[i] for i in idx])
        at: dict[int, int] = {}
        for i, key in zip(idx, to_steps(dates)):
            at.setdefault(int(key), i)
        return [at.get(int(key)) for key in to_steps(want)]

    def _dates(self, texts: list[str], lines: list[int]) -> tuple[np.ndarray, str]:
        """The dates of the date column and their format, or its integer steps (a column
        named like ``step``, or integers that no date format reads) and ``STEP_FORMAT``."""
        column = self.header[self.d]
        steps = _integers(texts)
        if steps is not None and column.lower() in STEP_COLUMN_NAMES:
            return steps, STEP_FORMAT
        try:
            return read_dates(texts, lambda k: f"{self.path}: line {lines[k]}, column "
                                               f"{column!r}")
        except DataError as e:
            if steps is not None:
                return steps, STEP_FORMAT
            raise DataError(f"{e}{self.date_hint}") from None

    def numbers(self, j: int, idx: list[int], hint: str) -> np.ndarray:
        """Column ``j`` at the rows ``idx`` as numbers, NaN at the gaps that ``fill_gaps``
        fills; a DataError naming the lines of text, and of gaps without ``fill_gaps``."""
        column = self.header[j]
        cells = column_cells([self.rows[i] for i in idx], j)
        lines = [self.lines[i] for i in idx]
        values, bad = read_numbers(self.path, column, cells, lines)
        text = [i for i in bad if not is_missing(cells[i])]
        if text:
            raise bad_cells_error(self.path, column, [lines[i] for i in text],
                                  [cells[i] for i in text], "write numbers there or drop those "
                                  f"rows ({FILL_HINT} fills only empty, NA and NaN cells)", hint)
        if bad and (not self.fill_gaps or len(bad) == len(cells)):
            fix = f"fill them or pass {FILL_HINT}" if len(bad) < len(cells) else "no numbers"
            raise bad_cells_error(self.path, column, [lines[i] for i in bad],
                                  [cells[i] for i in bad], fix, hint)
        return values

    def _on_grid(self, dates: np.ndarray, values: np.ndarray, texts: list[str],
                 lines: list[int], where: str, fmt: str) -> tuple[np.ndarray, np.ndarray]:
        """``dates`` and ``values [T, K]`` with the missing dates of their frequency filled
        in (NaN rows), or a DataError for missing or irregular dates."""
        try:
            freq = infer_frequency(dates)
        except DataError as e:
            raise DataError(f"{self.path}: {where}{e}") from None
        gap = grid_break(dates, freq)
        if gap is None:
            return dates, values
        i = gap.after
        if not gap.missing:
            raise DataError(
                f"{self.path}: {where}the dates are not evenly spaced: {texts[i + 1]!r} at "
                f"line {lines[i + 1]} is not a whole number of {freq.name} steps after "
                f"{texts[i]!r} at line {lines[i]}; give one row per {freq.name} date")
        if not self.fill_gaps:
            first = format_dates(np.array([gap.first]), fmt)[0]
            what = "step(s)" if freq.name == "steps" else f"{freq.name} date(s)"
            raise DataError(
                f"{self.path}: {where}{gap.missing} {what} are "
                f"missing, the first {first} (after {texts[i]!r} at line {lines[i]}); add "
                f"their rows, or pass {FILL_HINT} to interpolate them")
        full, at = fill_grid(dates, freq)
        filled = np.full((len(full), values.shape[1]), np.nan)
        filled[at] = values
        return full, filled

