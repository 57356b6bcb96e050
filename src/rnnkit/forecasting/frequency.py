"""Dates of a series: parse them, check their order, infer the frequency, continue them.

A :class:`Frequency` carries what the forecaster derives from the spacing of the dates: the
default seasonal lags (the periods DeepAR feeds back as lagged targets, Salinas et al.
2020, Sec. 3.4), the season ``m`` of MASE and SeasonalNaive, and which calendar features
describe a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from rnnkit.data.errors import DataError

__all__ = ["Frequency", "FREQUENCIES", "parse_dates", "check_dates", "infer_frequency",
           "future_dates"]

# Tried in order; the first that parses every date wins (so "2010/01/01 00:00" is hourly).
DATE_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
    "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y%m%d", "%b %d %Y", "%d %b %Y",
    "%B %d %Y", "%Y-%m", "%Y",
)


@dataclass(frozen=True)
class Frequency:
    """One of the supported spacings of dates.

    Attributes:
        name: "half-hourly", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly".
        minutes: the step in minutes for fixed steps (0 for calendar months).
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
    )
}


def parse_dates(texts: Sequence[str]) -> np.ndarray:
    """Date strings -> ``datetime64[m]`` array ``[T]``, in one of ``DATE_FORMATS`` (the
    first format that reads every string). A string no format reads is a DataError."""
    texts = [t.strip() for t in texts]
    if not texts:
        raise DataError("no dates to parse")
    for fmt in DATE_FORMATS:
        try:
            parsed = [datetime.strptime(texts[0], fmt)]
        except ValueError:
            continue
        try:
            parsed += [datetime.strptime(t, fmt) for t in texts[1:]]
        except ValueError:
            continue
        return np.array(parsed, dtype="datetime64[m]")
    for i, t in enumerate(texts):  # name the first date no format reads on its own
        if not any(_parses(t, fmt) for fmt in DATE_FORMATS):
            raise DataError(f"row {i}: cannot read the date {t!r} (use e.g. 2010-01-31 or "
                            "2010-01-31 13:00)")
    raise DataError(f"the dates mix formats (first {texts[0]!r}); use one format throughout")


def _parses(text: str, fmt: str) -> bool:
    try:
        datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def check_dates(dates: np.ndarray) -> None:
    """DataError naming the rows (0-based) where ``dates [T]`` repeat or go backwards."""
    steps = np.diff(dates.astype("datetime64[m]").astype(np.int64))
    for bad, what in ((steps == 0, "a duplicate date"), (steps < 0, "unsorted dates")):
        rows = np.flatnonzero(bad)
        if rows.size:
            i = int(rows[0])
            more = f" (and {rows.size - 1} more)" if rows.size > 1 else ""
            raise DataError(f"{what}: row {i + 1} ({dates[i + 1]}) follows row {i} "
                            f"({dates[i]}){more}; sort the rows by date and drop repeats")


def infer_frequency(dates: np.ndarray) -> Frequency:
    """The Frequency whose step is the median spacing of ``dates [T]`` (T >= 2, sorted, no
    repeats; a few missing steps do not change the median)."""
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
    """The ``horizon`` dates after ``last`` at ``freq``: ``datetime64[m]`` ``[horizon]``.
    Calendar steps keep the day of the month (clipped to the month's length) and the time."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
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
