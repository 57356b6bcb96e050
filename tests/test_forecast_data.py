"""The forecast path's CSV reader (load_series) refuses what `rnnkit train`'s refuses, reads
the usual date spellings, writes dates back as the file wrote them, and finds missing dates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.data.errors import DataError
from rnnkit.data.series import load_csv
from rnnkit.forecasting import load_series
from rnnkit.forecasting.frequency import (
    FREQUENCIES,
    fill_grid,
    format_dates,
    future_dates,
    grid_steps,
    infer_frequency,
    read_dates,
)


def write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def daily(n: int, start: str = "2015-04-20") -> list[str]:
    dates = np.datetime64(start) + np.arange(n)
    return [str(d) for d in dates]


# -- the same refusals as the text path ----------------------------------------------------


def test_thousands_separators_are_refused_like_the_text_path(tmp_path):
    path = write(tmp_path, "date,views\n2015-04-20,980\n2015-04-21,1,157\n2015-04-22,1,203\n")
    for read in (load_series, load_csv):
        with pytest.raises(DataError, match=r"line 3 has 3 cells but the header names 2 "
                                            r"column.*decimal comma"):
            read(path)


def test_the_cli_refuses_it_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "date,views\n" + "".join(f"{d},1,{i:03d}\n" for i, d in enumerate(daily(40))))
    assert main(["forecast", "s.csv", "--max-time", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decimal comma" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_a_short_row_is_a_missing_value_not_an_index_error(tmp_path):
    path = write(tmp_path, "date,views\n2015-04-20,1\n2015-04-21\n2015-04-22,3\n")
    with pytest.raises(DataError, match=r"'views' has 1 empty value\(s\) at line\(s\) 3.*"
                                        r"--fill interpolate"):
        load_series(path)
    (one,) = load_series(path, fill_gaps=True)
    np.testing.assert_allclose(one.values, [1, 2, 3])
    path = write(tmp_path, "date,views,shop\n2015-04-20,1,a\n2015-04-21,2\n", name="id.csv")
    with pytest.raises(DataError, match=r"column 'shop' is empty at line\(s\) 3"):
        load_series(path, by="shop")
    path = write(tmp_path, "views,date\n1,2015-04-20\n2\n", name="date.csv")
    with pytest.raises(DataError, match=r"date.csv: line 3, column 'date': cannot read the "
                                        r"date ''"):
        load_series(path)


@pytest.mark.parametrize("cell", ["1e300", "-3.5e38"])
def test_values_beyond_float32_are_refused_up_front(tmp_path, cell):
    path = write(tmp_path, f"date,x\n2020-01-01,1\n2020-01-02,{cell}\n2020-01-03,2\n")
    for fill in (False, True):
        with pytest.raises(DataError, match=rf"column 'x' at line 3 holds '{cell}', which does "
                                            r"not fit float32"):
            load_series(path, fill_gaps=fill)


@pytest.mark.parametrize("cell", ['"1,234"', "$5", "12 %"])
def test_formatted_numbers_get_the_text_paths_message_and_are_never_filled(tmp_path, cell):
    path = write(tmp_path, f"date,x\n2020-01-01,1\n2020-01-02,{cell}\n2020-01-03,2\n")
    message = r"'x' has 1 formatted value\(s\) at line\(s\) 3 .*write plain numbers"
    with pytest.raises(DataError, match=message):
        load_csv(path)
    for fill in (False, True):
        with pytest.raises(DataError, match=message):
            load_series(path, fill_gaps=fill)


def test_text_cells_are_not_interpolated_but_na_cells_are(tmp_path):
    path = write(tmp_path, "date,x\n2020-01-01,1\n2020-01-02,oops\n2020-01-03,3\n")
    with pytest.raises(DataError, match=r"1 non-numeric value\(s\) at line\(s\) 3 .*fills only "
                                        r"empty, NA and NaN"):
        load_series(path, fill_gaps=True)
    path = write(tmp_path, "date,x\n2020-01-01,1\n2020-01-02,NA\n2020-01-03,nan\n2020-01-04,4\n",
                 name="na.csv")
    np.testing.assert_allclose(load_series(path, fill_gaps=True)[0].values, [1, 2, 3, 4])


# -- dates: spellings, writing back, the grid ----------------------------------------------


@pytest.mark.parametrize("texts, written", [
    (["1998Q1", "1998Q2", "1998Q3"], ["1998Q4", "1999Q1"]),
    (["1998 Q1", "1998 Q2", "1998 Q3"], ["1998 Q4", "1999 Q1"]),
    (["1998-Q3", "1998-Q4", "1999-Q1"], ["1999-Q2", "1999-Q3"]),
    (["Q1 1998", "Q2 1998", "Q3 1998"], ["Q4 1998", "Q1 1999"]),
    (["1998q1", "1998q2", "1998q3"], ["1998q4", "1999q1"]),
])
def test_quarter_spellings_are_read_and_written_back_alike(texts, written):
    dates, fmt = read_dates(texts)
    freq = infer_frequency(dates)
    assert freq.name == "quarterly" and str(dates[0])[:4] == "1998"
    assert format_dates(future_dates(dates[-1], freq, 2), fmt) == written


@pytest.mark.parametrize("texts, name, written", [
    (["2004", "2005", "2006", "2007"], "yearly", ["2008"]),
    (["2004-01", "2004-02", "2004-03"], "monthly", ["2004-04"]),
    (["Jan 2004", "Feb 2004", "Mar 2004"], "monthly", ["Apr 2004"]),
    (["1960 Nov", "1960 Dec"], "monthly", ["1961 Jan"]),  # tsibble's yearmonth
    (["2003-03-03T07:00:00Z", "2003-03-03T08:00:00Z"], "hourly", ["2003-03-03 09:00"]),
    (["2024-01-29", "2024-01-30", "2024-01-31"], "daily", ["2024-02-01"]),
    (["2024/01/31 12:30", "2024/01/31 13:00", "2024/01/31 13:30"], "half-hourly",
     ["2024-01-31 14:00"]),
    (["2024-01-31 22:00", "2024-01-31 23:00"], "hourly", ["2024-02-01 00:00"]),
])
def test_dates_are_written_back_in_the_inputs_style(texts, name, written):
    dates, fmt = read_dates(texts)
    freq = infer_frequency(dates)
    assert freq.name == name
    assert format_dates(future_dates(dates[-1], freq, len(written)), fmt) == written


def test_load_series_keeps_the_date_format(tmp_path):
    path = write(tmp_path, "year,v\n2004,1\n2005,2\n2006,3\n")
    (one,) = load_series(path)
    assert one.date_format == "%Y" and format_dates(one.dates, one.date_format)[0] == "2004"
    assert one.head(2).date_format == "%Y"


def test_ambiguous_day_month_order_is_refused():
    with pytest.raises(DataError, match="both as month/day/year and as day/month/year"):
        read_dates(["01/02/2004", "01/03/2004"])
    assert str(read_dates(["31/01/2004", "01/02/2004"])[0][1])[:10] == "2004-02-01"


def test_a_missing_quarter_in_a_panel_is_named_or_filled(tmp_path):
    path = write(tmp_path, "id,date,v\nA,1998Q1,1\nA,1998Q2,2\nA,1998Q3,3\nB,1998Q1,5\n"
                           "B,1998Q2,6\nB,1998Q4,8\nB,1999Q1,9\n")
    with pytest.raises(DataError, match=r"series 'B': 1 quarterly date\(s\) are missing, the "
                                        r"first 1998Q3 \(after '1998Q2' at line 6\).*"
                                        r"--fill interpolate"):
        load_series(path, by="id")
    a, b = load_series(path, by="id", fill_gaps=True)
    assert format_dates(b.dates, b.date_format) == ["1998Q1", "1998Q2", "1998Q3", "1998Q4",
                                                    "1999Q1"]
    np.testing.assert_allclose(b.values, [5, 6, 7, 8, 9])
    assert len(a.values) == 3


def test_a_missing_day_is_counted_and_filled(tmp_path):
    days = daily(10)
    kept = days[:3] + days[6:]  # 3 days missing
    path = write(tmp_path, "date,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(kept)))
    with pytest.raises(DataError, match=r"^[^;]*s.csv: 3 daily date\(s\) are missing, the first "
                                        r"2015-04-23 "):
        load_series(path)
    (one,) = load_series(path, fill_gaps=True)
    assert [str(d)[:10] for d in one.dates] == days
    np.testing.assert_allclose(one.values, [0, 1, 2, 2.25, 2.5, 2.75, 3, 4, 5, 6])


def test_month_ends_are_on_the_grid_and_fill_with_month_ends(tmp_path):
    ends = ["2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30", "2020-05-31", "2020-06-30"]
    path = write(tmp_path, "date,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(ends)))
    assert len(load_series(path)[0].dates) == 6
    path = write(tmp_path, "date,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(ends)
                                                if i != 2), name="gap.csv")
    (one,) = load_series(path, fill_gaps=True)
    assert [str(d)[:10] for d in one.dates] == ends
    dates = read_dates(["2020-02-29", "2020-05-31"])[0]
    full, at = fill_grid(dates, FREQUENCIES["monthly"])
    assert [str(d)[:10] for d in full] == ["2020-02-29", "2020-03-31", "2020-04-30", "2020-05-31"]
    assert at.tolist() == [0, 3]


def test_irregular_dates_stay_an_error_even_with_fill(tmp_path):
    texts = ["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 02:00", "2020-01-01 03:30",
             "2020-01-01 04:30"]
    assert grid_steps(read_dates(texts)[0], FREQUENCIES["hourly"]).tolist() == [1, 1, 0, 1]
    path = write(tmp_path, "time,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(texts)))
    for fill in (False, True):
        with pytest.raises(DataError, match=r"not evenly spaced: '2020-01-01 03:30' at line 5 is "
                                            r"not a whole number of hourly steps"):
            load_series(path, fill_gaps=fill)


# -- columns and messages ------------------------------------------------------------------


def test_no_date_column_is_a_series_of_steps(tmp_path):
    # was "no date column found"; tests/test_forecast_undated.py covers undated series
    (series,) = load_series(write(tmp_path, "bpm\n60\n61\n"), season=1)
    assert series.undated and series.dates.tolist() == [0, 1]


def test_an_unreadable_date_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path, "time,v\n26.0,1\n27.0,2\n")
    with pytest.raises(DataError, match=r"s.csv: line 2, column 'time': cannot read the date "
                                        r"'26.0'.*--date-column NAME$"):
        load_series(path)


def test_statsforecast_long_format_unique_id_ds_y(tmp_path):
    rows = [f"{uid},{d},{i + 10 * k}\n" for k, uid in enumerate("ab") for i, d in
            enumerate(daily(4))]
    path = write(tmp_path, "unique_id,x,ds,y\n" + "".join(r.replace(",", ",0,", 1)
                                                          for r in rows))
    a, b = load_series(path)
    assert (a.name, b.name, a.value_column, a.date_column, a.id_column) == (
        "a", "b", "y", "ds", "unique_id")
    np.testing.assert_allclose(b.values, [10, 11, 12, 13])
    assert load_series(path, value="x")[0].value_column == "x"  # a named target still wins


def test_empty_cells_name_the_cli_flag(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-01,1\n2020-01-02,\n2020-01-03,3\n")
    with pytest.raises(DataError, match=r"fill them or pass --fill interpolate "
                                        r"\(fill_gaps=True\)"):
        load_series(path)


def test_fpp_long_format_quarters_and_a_hint_for_a_missing_id_column(tmp_path):
    """tsibble writes ``Quarter,Origin,Arrivals`` with ``1981 Q1`` dates."""
    text = "Quarter,Origin,Arrivals\n" + "".join(
        f"1981 Q{q},{origin},{q}\n" for origin in ("Japan", "UK") for q in range(1, 5))
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=r"unsorted dates: line 6 .* line 5 .*name their id "
                                        r"column with --id-column"):
        load_series(path)
    japan, uk = load_series(path, by="Origin")
    assert uk.name == "UK" and uk.date_format == "%Y Q%q"
    assert format_dates(uk.dates[-1:], uk.date_format) == ["1981 Q4"]


def test_a_file_of_one_row_is_refused_naming_it_and_a_one_row_member_is_left_to_the_rule(
        tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("date,v\n2020-01-01,3\n")
    with pytest.raises(DataError, match=r"one.csv: every series has one row"):
        load_series(one)
    panel = tmp_path / "panel.csv"
    panel.write_text("id,date,v\n" + "".join(f"a,2020-01-{d:02d},{d}\n" for d in range(1, 29))
                     + "b,2020-01-01,3\n")
    series = load_series(panel, by="id")
    assert [len(s.values) for s in series] == [28, 1]
    from rnnkit.forecasting.data import series_frequency
    assert series_frequency(series).name == "daily"  # b has no spacing, a does
