"""CSV series: column choice and loud refusals of gaps (no silent filling)."""

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
