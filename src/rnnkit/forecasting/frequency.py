"""Dates of a series: parse them, check their order, infer the frequency, continue them.

A :class:`Frequency` carries what the forecaster derives from the spacing of the dates: the
default seasonal lags (the periods DeepAR feeds back as lagged targets, Salinas et al.
2020, Sec. 3.4), the season ``m`` of MASE and SeasonalNaive, and which calendar features
describe a step.

A series without dates (a sensor log, a simulation) is numbered by integer steps 0, 1, 2, ...
Its frequency is ``STEPS``: no calendar features, and the season that is stated or inferred
(:mod:`rnnkit.forecasting.season`), set by :func:`with_season`. The functions here take such
integer steps wherever they take dates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import numpy as np

from rnnkit.data.errors import DataError

__all__ = ["Frequency", "FREQUENCIES", "STEPS", "STEP_FORMAT", "parse_dates", "read_dates",
           "format_dates", "check_dates", "infer_frequency", "future_dates", "grid_steps",
           "grid_break", "GridBreak", "fill_grid", "is_steps", "to_steps", "with_season"]

# Quarters as people write them (1998Q1, 1998 Q1, 1998-Q1, 1998q1, Q1 1998): %q is the
# quarter's number, read as its first month.
QUARTER_FORMATS = tuple(f"%Y{sep}{q}%q" for q in "Qq" for sep in ("", " ", "-", "/")) + tuple(
    f"{q}%q{sep}%Y" for q in "Qq" for sep in (" ", "-", "/"))

# Months (2004-01, Jan 2004, and tsibble's 2004 Jan), read as their first day.
MONTH_FORMATS = ("%Y-%m", "%Y/%m", "%YM%m", "%b %Y", "%B %Y", "%b-%Y", "%Y %b", "%Y %B")

# Tried in order; the first that parses every date wins (so "2010/01/01 00:00" is hourly).
DATE_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%Y%m%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%b %d %Y", "%d %b %Y", "%B %d %Y",
    *MONTH_FORMATS, "%Y", *QUARTER_FORMATS,
)
# Formats that read the same text as different dates: 01/02/2004 is Jan 2 or Feb 1.
_AMBIGUOUS = {"%m/%d/%Y": "%d/%m/%Y", "%d/%m/%Y": "%m/%d/%Y"}

# Formats written back as they were read (a month, a quarter, a year); finer ones are written
# as ISO dates.
_COARSE_FORMATS = (*MONTH_FORMATS, "%Y", *QUARTER_FORMATS)
STEP_FORMAT = "step"  # the date_format of a series numbered by integer steps

Where = Callable[[int], str]


def _row(i: int) -> str:
    return f"row {i}"


@dataclass(frozen=True)
class Frequency:
    """One of the supported spacings of dates.

    Attributes:
        name: "half-hourly", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly",
            or "steps" (integer steps, no dates).
        minutes: the step in minutes for fixed steps (0 for calendar months; 1 for integer
            steps, which read as minutes wherever a date is expected).
        months: the step in calendar months (0 for fixed steps).
        lags: the default seasonal lags, shortest first (yearly: none).
        calendar: the calendar features of a step (see ``features.calendar_features``).
    """

    name: str
    minutes: int
    months: int
    lags: tuple[int, ...]
    calendar: tuple[str, ...]

    @property
    def season(self) -> int:
        """The season ``m`` of SeasonalNaive and MASE: the shortest seasonal lag, 1 if none."""
        return self.lags[0] if self.lags else 1


FREQUENCIES = {
    f.name: f
    for f in (
        Frequency("half-hourly", 30, 0, (48, 336), ("hour", "weekday", "yearday")),
        Frequency("hourly", 60, 0, (24, 168), ("hour", "weekday", "yearday")),
        Frequency("daily", 1440, 0, (7, 365), ("weekday", "yearday")),
        Frequency("weekly", 7 * 1440, 0, (52,), ("yearday",)),
        Frequency("monthly", 0, 1, (12,), ("month",)),
        Frequency("quarterly", 0, 3, (4,), ("month",)),
        Frequency("yearly", 0, 12, (), ()),
        Frequency("steps", 1, 0, (), ()),
    )
}
STEPS = FREQUENCIES["steps"]


def with_season(freq: Frequency, season: int) -> Frequency:
    """``freq`` with ``season`` as its only seasonal lag (1: none): the lag fed back, and
    the ``m`` of SeasonalNaive and MASE. Its calendar features stay."""
    if season < 1:
        raise ValueError(f"the season must be >= 1 (1: none), got {season}")
    return replace(freq, lags=(season,) if season > 1 else ())


def is_steps(dates: np.ndarray) -> bool:
    """Whether ``dates`` are integer steps (a series without dates), not datetime64."""
    return np.issubdtype(np.asarray(dates).dtype, np.integer)


def to_steps(dates: np.ndarray) -> np.ndarray:
    """Integer steps ``[T]`` int64 of a series without dates: integers as they are, and
    datetime64 as their minutes since 1970 (how ``Forecaster.forecast`` returns the future
    steps of an integer context, since the model handles every step as a date)."""
    dates = np.asarray(dates)
    return dates.astype(np.int64) if is_steps(dates) else (
        dates.astype("datetime64[m]").astype(np.int64))


def read_dates(texts: Sequence[str], where: Where = _row) -> tuple[np.ndarray, str]:
    """Date strings -> ``datetime64[m]`` array ``[T]`` and the format that read them, the
    first of ``DATE_FORMATS`` that reads every string. A DataError for a string no format
    reads, for formats mixed, and for day/month order that the dates leave open; it names the
    string by ``where(i)`` (default: "row i", 0-based)."""
    texts = [t.strip() for t in texts]
    if not texts:
        raise DataError("no dates to parse")
    first = [fmt for fmt in DATE_FORMATS if _parses(texts[0], fmt)]
    for fmt in first:
        try:
            parsed = [_parse(t, fmt) for t in texts]
        except ValueError:
            continue
        other = _AMBIGUOUS.get(fmt)
        if other and all(_parses(t, other) for t in texts):
            raise DataError(
                f"{where(0)}: the dates read both as month/day/year and as day/month/year "
                f"(e.g. {texts[0]!r}); write them as year-month-day, e.g. 2010-01-31")
        return np.array(parsed, dtype="datetime64[m]"), fmt
    for i, t in enumerate(texts):  # name the first date no format reads on its own
        if not any(_parses(t, fmt) for fmt in DATE_FORMATS):
            raise DataError(f"{where(i)}: cannot read the date {t!r} (use e.g. 2010-01-31, "
                            "2010-01-31 13:00, 2010-01, 2010Q1 or 2010)")
    i = next(i for i, t in enumerate(texts) if not _parses(t, first[0]))
    raise DataError(f"{where(i)}: the date {texts[i]!r} is not written like the first one "
                    f"({texts[0]!r}); use one format throughout")


def parse_dates(texts: Sequence[str], where: Where = _row) -> np.ndarray:
    """Date strings -> ``datetime64[m]`` array ``[T]``, as :func:`read_dates` reads them."""
    return read_dates(texts, where)[0]


def format_dates(dates: np.ndarray, date_format: str = "%Y-%m-%d") -> list[str]:
    """``dates [T]`` as text in ``date_format``, the format :func:`read_dates` returned: a
    year, month or quarter format as it was read (``2004``, ``2004-02``, ``1999Q2``), any
    finer one as ISO: ``2024-01-31``, or ``2024-01-31 13:30`` when the format or any date has
    a time. Integer steps, or ``date_format`` ``STEP_FORMAT``, give the step numbers."""
    if date_format == STEP_FORMAT or is_steps(dates):
        return [str(step) for step in to_steps(dates)]
    days = [d.astype("datetime64[m]").item() for d in np.asarray(dates)]
    if "%q" in date_format:
        return [d.strftime(date_format.replace("%q", str((d.month - 1) // 3 + 1)))
                for d in days]
    if date_format not in _COARSE_FORMATS:
        timed = "%H" in date_format or any(d.hour or d.minute for d in days)
        date_format = "%Y-%m-%d %H:%M" if timed else "%Y-%m-%d"
    return [d.strftime(date_format) for d in days]


def _parse(text: str, fmt: str) -> datetime:
    if "%q" not in fmt:
        return datetime.strptime(text, fmt)
    match = _quarter_pattern(fmt).fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} does not match {fmt!r}")
    return datetime(int(match["y"]), 3 * int(match["q"]) - 2, 1)


@functools.cache
def _quarter_pattern(fmt: str) -> re.Pattern[str]:
    return re.compile(re.escape(fmt).replace("%Y", r"(?P<y>\d{4})").replace("%q", "(?P<q>[1-4])"))


def _parses(text: str, fmt: str) -> bool:
    try:
        _parse(text, fmt)
    except ValueError:
        return False
    return True


def check_dates(dates: np.ndarray, where: Where = _row) -> None:
    """DataError naming the dates (by ``where(i)``, default "row i", 0-based) where
    ``dates [T]`` repeat or go backwards."""
    steps = np.diff(dates.astype("datetime64[m]").astype(np.int64))
    for bad, what in ((steps == 0, "a duplicate date"), (steps < 0, "unsorted dates")):
        rows = np.flatnonzero(bad)
        if rows.size:
            i = int(rows[0])
            more = f" (and {rows.size - 1} more)" if rows.size > 1 else ""
            raise DataError(f"{what}: {where(i + 1)} ({dates[i + 1]}) follows {where(i)} "
                            f"({dates[i]}){more}; sort the rows by date and drop repeats")


def infer_frequency(dates: np.ndarray) -> Frequency:
    """The Frequency whose step is the median spacing of ``dates [T]`` (T >= 2, sorted, no
    repeats; a few missing steps do not change the median); ``STEPS`` (season 1) for
    integer steps, which must go up by 1."""
    if is_steps(dates):
        check_dates(dates)
        if len(dates) > 1 and np.median(np.diff(dates)) != 1:
            raise DataError(f"the steps go up by {np.median(np.diff(dates)):g} (median); "
                            "number the rows 0, 1, 2, ... (one row per step)")
        return STEPS
    if len(dates) < 2:
        raise DataError(f"cannot infer a frequency from {len(dates)} date(s); need at least 2")
    check_dates(dates)
    minutes = float(np.median(np.diff(dates.astype("datetime64[m]").astype(np.int64))))
    days = minutes / 1440
    if minutes == 30:
        return FREQUENCIES["half-hourly"]
    if minutes == 60:
        return FREQUENCIES["hourly"]
    if days == 1:
        return FREQUENCIES["daily"]
    if days == 7:
        return FREQUENCIES["weekly"]
    if 28 <= days <= 31:
        return FREQUENCIES["monthly"]
    if 89 <= days <= 92:
        return FREQUENCIES["quarterly"]
    if 365 <= days <= 366:
        return FREQUENCIES["yearly"]
    raise DataError(
        f"cannot infer the frequency: the dates are {minutes:g} minutes ({days:.3g} days) apart "
        "(median); supported: half-hourly, hourly, daily, weekly, monthly, quarterly, yearly"
    )


def future_dates(last: np.datetime64, freq: Frequency, horizon: int) -> np.ndarray:
    """The ``horizon`` dates after ``last`` at ``freq``: ``datetime64[m]`` ``[horizon]``
    (int64 steps after an integer step). Calendar steps keep the day of the month (clipped to
    the month's length) and the time."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if is_steps(last):
        return int(last) + np.arange(1, horizon + 1, dtype=np.int64)
    last = np.datetime64(last, "m")
    k = np.arange(1, horizon + 1)
    if freq.minutes:
        return last + k * np.timedelta64(freq.minutes, "m")
    month = last.astype("datetime64[M]")
    day = (last.astype("datetime64[D]") - month.astype("datetime64[D]")).astype(int)
    time = last - last.astype("datetime64[D]").astype("datetime64[m]")
    months = month + k * freq.months
    month_days = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(int)
    days = months.astype("datetime64[D]") + np.minimum(day, month_days - 1)
    return days.astype("datetime64[m]") + time


def grid_steps(dates: np.ndarray, freq: Frequency) -> np.ndarray:
    """How many ``freq`` steps each of ``dates [T]`` (sorted) lies after the one before:
    ``[T-1]`` ints, 1 where no date is missing between them, 0 where the spacing is not a
    whole number of steps. Calendar steps count months, so month ends (Jan 31, Feb 28) and
    any day within the month are on the grid."""
    if freq.minutes:
        gaps, step = np.diff(dates.astype("datetime64[m]").astype(np.int64)), freq.minutes
    else:
        gaps, step = np.diff(dates.astype("datetime64[M]").astype(np.int64)), freq.months
    steps, rest = np.divmod(gaps, step)
    return np.where(rest == 0, steps, 0)


class GridBreak(NamedTuple):
    """Where dates leave their frequency's grid (``grid_break``): after ``dates[after]``,
    either an uneven spacing (``missing`` 0) or a gap of which ``first`` is the first missing
    date, with ``missing`` dates missing in all the series."""

    after: int
    missing: int
    first: np.datetime64 | None


def grid_break(dates: np.ndarray, freq: Frequency) -> GridBreak | None:
    """The first uneven spacing of ``dates [T]`` (sorted, unique) at ``freq``, else its first
    gap (``GridBreak``); None when every date is one step after the one before."""
    steps = grid_steps(dates, freq)
    uneven = np.flatnonzero(steps == 0)
    if uneven.size:
        return GridBreak(int(uneven[0]), 0, None)
    gaps = np.flatnonzero(steps > 1)
    if not gaps.size:
        return None
    i = int(gaps[0])
    return GridBreak(i, int(np.sum(steps[gaps] - 1)), _steps_after(dates[i], freq, 1)[0])


def fill_grid(dates: np.ndarray, freq: Frequency) -> tuple[np.ndarray, np.ndarray]:
    """``dates [T]`` with the missing steps of ``freq`` inserted ``[T']``, and where each
    given date stands in it ``[T]``. Inserted calendar dates keep the day of the month of the
    date before them, or are month ends after a month end."""
    steps = grid_steps(dates, freq)
    if (steps < 1).any():
        raise ValueError("the dates are not on a regular grid of whole steps")
    at = np.concatenate([[0], np.cumsum(steps)])
    full = np.empty(at[-1] + 1, dtype=np.int64 if is_steps(dates) else "datetime64[m]")
    full[at] = dates
    for i in np.flatnonzero(steps > 1):
        full[at[i] + 1:at[i + 1]] = _steps_after(dates[i], freq, int(steps[i]) - 1)
    return full, at


def _steps_after(last: np.datetime64, freq: Frequency, n: int) -> np.ndarray:
    dates = future_dates(last, freq, n)
    day = last.astype("datetime64[D]")
    if freq.minutes or (day + 1).astype("datetime64[M]") == day.astype("datetime64[M]"):
        return dates
    time = last - day.astype("datetime64[m]")
    ends = (dates.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1
    return ends.astype("datetime64[m]") + time
