"""The examples run: each script under examples/ and the README's Python blocks, with a tiny
budget so CI runs them in seconds."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Arguments that make each example quick; a new example must be given its own here.
TINY = {"quickstart.py": ["--steps", "3", "--chunk", "20", "--batch", "4"]}


def test_every_example_has_a_tiny_budget():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_example_runs(name, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *TINY[name]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_module_example_runs(tmp_path, monkeypatch):
    """The modules example, as written, with its 60 s budget cut to 2 steps."""
    monkeypatch.chdir(tmp_path)
    code = next(b for b in readme_blocks() if "TrainConfig.preset" in b)
    assert "max_time=60" in code
    code = code.replace("max_time=60", "max_time=0, max_steps=2, progress=False, plot=False")
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs/lib").is_dir()


def test_readme_dataframe_example_runs(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    import numpy as np

    monkeypatch.chdir(tmp_path)
    code = next(b for b in readme_blocks() if "RNNForecast" in b)
    n = 96
    t = np.arange(n)
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-01", periods=n,
                                                               freq="MS"),
                       "y": 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t})
    code = code.replace("max_time=60", "max_time=None, max_steps=2")
    scope = {"df": df}
    exec(compile(code, "README.md", "exec"), scope)
    assert {"DeepAR", "DeepAR-lo-80", "DeepAR-hi-80"} <= set(scope["rf"].predict(level=[80]))


def test_runpy_imports_quickstart_without_running_it():
    """Importing an example (as a module) runs nothing: main() is behind __name__."""
    scope = runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="not_main")
    assert callable(scope["main"])
