"""CSV series: column choice and loud refusals of gaps (no silent filling)."""

import re
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.series import load_csv


def write(tmp_path, text, name="s.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_columns_skip_time_and_text_columns(tmp_path):
    path = write(tmp_path, "date,a,label,b\n2020,1,x,2.5\n2021,2,y,3.5\n")
    series = load_csv(path)
    assert series.columns == ["a", "b"]
    np.testing.assert_array_equal(series.values, [[1, 2.5], [2, 3.5]])
    assert series.values.dtype == np.float32


def test_columns_by_name_and_index(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n")
    assert load_csv(path, ["c", "a"]).values.tolist() == [[3, 1], [6, 4]]
    assert load_csv(path, ["1"]).columns == ["b"]
    with pytest.raises(DataError, match=r"no column 'z'; the columns are \['a', 'b', 'c'\]"):
        load_csv(path, ["z"])


def test_no_numeric_column(tmp_path):
    path = write(tmp_path, "date,weather\n2020,rain\n2021,sun\n")
    with pytest.raises(DataError, match="no numeric column to model"):
        load_csv(path)


def test_nan_and_missing_values_name_column_and_lines(tmp_path):
    path = write(tmp_path, "t,x\n1,1.0\n2,nan\n3,2.0\n4,inf\n")
    with pytest.raises(DataError, match=r"'x' has 2 NaN or infinite value\(s\) at line\(s\) 3, 5"):
        load_csv(path, ["x"])
    path = write(tmp_path, "x\n1\n\n2\n\n", name="gap.csv")  # an inner blank line is a gap
    with pytest.raises(DataError, match=r"1 empty value\(s\) at line\(s\) 3"):
        load_csv(path)
    path = write(tmp_path, "t,x\n1,1\n2,\n", name="empty_cell.csv")
    with pytest.raises(DataError, match=r"1 empty value\(s\) at line\(s\) 3"):
        load_csv(path, ["x"])


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "co2.csv").exists(), reason="needs ../shared/data/co2.csv")
def test_real_co2_file_reports_its_59_gaps():
    with pytest.raises(DataError, match="column 'co2' has 59 empty value"):
        load_csv(SHARED / "co2.csv")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ("1,2\n3,4\n", "first row must be a header"),
        ("a,b\n", "no data rows"),
    ],
)
def test_bad_files(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        load_csv(write(tmp_path, content))
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "missing.csv")


def test_duplicate_column_names_are_refused(tmp_path):
    path = write(tmp_path, "a,a,b, b\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"names column\(s\) 'a', 'b' more than once"):
        load_csv(path)
    with pytest.raises(DataError, match=r"'a', 'b' more than once"):
        load_csv(path, ["b"])  # even when only another column is asked for
    with pytest.raises(DataError, match=r"column 'b' is chosen twice"):
        load_csv(write(tmp_path, "a,b\n1,2\n", name="ok.csv"), ["b", "1"])


def test_mostly_numeric_column_with_a_bad_cell_is_an_error(tmp_path):
    """Without --columns, a numeric column with one bad cell is not silently dropped."""
    path = write(tmp_path, "t,x,name\n1,1.0,bob\n2,oops,al\n3,2.5,cy\n")
    with pytest.raises(DataError, match=r"column 'x' has 1 non-numeric value\(s\) at line\(s\) 3 "
                                        r"\(e.g. 'oops'\).*--columns"):
        load_csv(path)
    # NA-like markers are gaps, not text: a column of numbers and NAs is numeric
    path = write(tmp_path, "x,y\n1,NA\n2,null\n3,4\n", name="na.csv")
    with pytest.raises(DataError, match=r"'y' has 2 non-numeric value\(s\) at line\(s\) 2, 3"):
        load_csv(path)


def test_text_columns_stay_excluded(tmp_path):
    """Dates, names, codes with a number here and there, all-NA columns: not signals."""
    path = write(tmp_path, "when,who,code,gone,x\n2020-01-01,bob,A1,NA,1\n2020-01-02,7,B2,NA,2\n"
                           "2020-01-03,al,3,,3\n")
    series = load_csv(path)
    assert series.columns == ["x"]
    assert series.values.tolist() == [[1], [2], [3]]


def test_unnamed_index_column_is_not_modelled(tmp_path):
    """pandas' to_csv writes the row index as a column with an empty name."""
    path = write(tmp_path, ",x\n0,1.5\n1,2.5\n")
    assert load_csv(path).columns == ["x"]
    assert load_csv(path, [0, "x"]).values.tolist() == [[0, 1.5], [1, 2.5]]


@pytest.mark.parametrize("cell", ["1e300", "-3.5e38", "1e400"])
def test_values_beyond_float32_are_refused(tmp_path, cell):
    path = write(tmp_path, f"t,x\n1,1.0\n2,{cell}\n")
    with pytest.raises(DataError, match=rf"column 'x' at line 3 holds '{cell}', which does not "
                                        r"fit float32"):
        load_csv(path)


def test_misaligned_rows_are_refused(tmp_path):
    """A decimal comma or a ';'-separated file must not shift values between columns."""
    with pytest.raises(DataError, match=r"line 3 has 3 cells but the header names 2 column"):
        load_csv(write(tmp_path, "t,x\n1,2\n2,2,5\n"))
    with pytest.raises(DataError, match=r"line 2 has 3 cells .* 1 column.*separator"):
        load_csv(write(tmp_path, "a;b\n1,5;2,5\n", name="semi.csv"))
    path = write(tmp_path, "a,b,\n1,2,\n3,4,\n", name="trailing.csv")  # trailing commas are fine
    assert load_csv(path).values.tolist() == [[1, 2], [3, 4]]


def test_quoted_cells_spanning_lines_keep_line_numbers(tmp_path):
    path = write(tmp_path, 'note,x\n"two\nlines",1\nb,zz\nc,3\n')
    with pytest.raises(DataError, match=r"'x' has 1 non-numeric value\(s\) at line\(s\) 4 "):
        load_csv(path)
    path = write(tmp_path, 'x,note\n1,"a, b"\n2,"c\nd"\n', name="ok.csv")
    assert load_csv(path).values.tolist() == [[1], [2]]


@pytest.mark.parametrize("content", [",,,\n,,\n", ",\n\n , \n", '""\n'])
def test_only_commas_or_quotes(tmp_path, content):
    with pytest.raises(DataError, match="holds no values"):
        load_csv(write(tmp_path, content))


def test_invalid_csv_names_the_line(tmp_path):
    import csv

    path = write(tmp_path, "x,note\n1,a\n2," + "b" * (csv.field_size_limit() + 1) + "\n")
    with pytest.raises(DataError, match=r"line 3 is not valid CSV \(field larger"):
        load_csv(path)


def test_formatted_numbers_make_a_numeric_column_and_an_error(tmp_path):
    """"1,234", "$5", "12 %": numbers written for people are not silently a text column."""
    path = write(tmp_path, 'day,price,share\nmon,"1,234.5",12 %\ntue,$5,13 %\n')
    with pytest.raises(DataError, match=r"column 'price' has 2 formatted value\(s\) at line\(s\) "
                                        r"2, 3 \(e.g. '1,234.5'\); write plain numbers"):
        load_csv(path)
    with pytest.raises(DataError, match=r"column 'share' has 2 formatted value"):
        load_csv(path, ["share"])


def test_line_numbers_count_from_where_a_row_starts(tmp_path):
    path = write(tmp_path, 'x,note\n1,"a\nb"\n,"c\nd"\n')
    with pytest.raises(DataError, match=r"'x' has 1 empty value\(s\) at line\(s\) 4 "):
        load_csv(path, ["x"])


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_file_separated_by_another_character_says_so(tmp_path, sep):
    path = tmp_path / "s.csv"
    path.write_text(f"date{sep}v\n2020-01-01{sep}1\n2020-01-02{sep}2\n")
    with pytest.raises(DataError, match=re.escape(f"is {sep!r} the separator")):
        load_csv(path)
