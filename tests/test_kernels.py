"""Where the compiled step kernels are built: one build per set of sources, shared by installs."""

import shutil
import sys
import types
from pathlib import Path

import pytest
from torch.utils import cpp_extension

from rnnkit import kernels


def two_installs(tmp_path):
    copies = [tmp_path / name / "rnnkit" / "csrc" for name in ("a", "b")]
    for copy in copies:
        shutil.copytree(kernels.CSRC, copy)
    return copies


def test_two_installs_of_the_same_sources_share_one_build_name(tmp_path):
    a, b = two_installs(tmp_path)
    flags = ["-O3"]
    assert kernels.build_name(a, flags) == kernels.build_name(b, flags)
    assert kernels.build_name(a, flags) != kernels.build_name(a, ["-O2"])
    (b / "rows.h").write_text((b / "rows.h").read_text() + "\n// changed\n")  # a header too
    assert kernels.build_name(a, flags) != kernels.build_name(b, flags)


def test_the_staged_sources_do_not_depend_on_the_install(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "cache"))
    a, b = two_installs(tmp_path)
    directory = kernels.build_directory(kernels.build_name(a, []))
    assert directory.parent == tmp_path / "cache"
    first = kernels.stage_sources(a, directory)
    stamps = {p: p.stat().st_mtime_ns for p in (directory / "src").iterdir()}
    assert kernels.stage_sources(b, directory) == first  # the same paths for either install
    assert {p: p.stat().st_mtime_ns for p in (directory / "src").iterdir()} == stamps
    assert [p.name for p in first] == [s.name for s in kernels.SOURCES]
    assert sorted(p.name for p in (directory / "src").iterdir()) == sorted(
        p.name for p in kernels.CSRC.iterdir())
    assert all(p.read_bytes() == (kernels.CSRC / p.name).read_bytes() for p in first)


def test_available_builds_under_the_hashed_name_from_the_staged_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("RNNKIT_KERNELS", raising=False)
    calls = []
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: calls.append(kw))
    kernels._built.cache_clear()
    try:
        assert kernels.available()
    finally:
        kernels._built.cache_clear()  # the next caller loads the real build
    (call,) = calls
    name = kernels.build_name(kernels.CSRC, [*kernels._flags(), *kernels._openmp()])
    assert call["name"] == name and call["build_directory"] == str(tmp_path / name)
    assert all(src.startswith(str(tmp_path / name / "src")) for src in call["sources"])


@pytest.mark.parametrize("flags", [[], ["-O3"]])
def test_the_build_name_is_a_valid_extension_name(flags):
    assert kernels.build_name(kernels.CSRC, flags).isidentifier()


def test_rnnkit_kernels_0_turns_them_off_after_they_loaded(monkeypatch):
    """The switch is read at every call: a test or a benchmark can run the eager path in a
    process whose kernels have already loaded."""
    built = kernels._built()
    monkeypatch.setenv("RNNKIT_KERNELS", "0")
    assert not kernels.available()
    monkeypatch.setenv("RNNKIT_KERNELS", "1")
    assert kernels.available() == built


@pytest.fixture
def fresh_build(monkeypatch):
    monkeypatch.delenv("RNNKIT_KERNELS", raising=False)
    kernels._built.cache_clear()
    yield
    kernels._built.cache_clear()  # the next caller loads the real build


def test_without_ninja_one_line_says_why_once(fresh_build, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")  # neither ninja nor a compiler on PATH
    monkeypatch.setitem(sys.modules, "ninja", None)  # nor the ninja package
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: pytest.fail("built without ninja"))
    assert not kernels.available()
    assert not kernels.available()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit: the compiled kernels are off")
    assert "ninja not found: pip install ninja" in err


def test_the_ninja_package_is_put_on_path(fresh_build, monkeypatch, tmp_path):
    """A venv's ninja (the PyPI package) is found when its bin is not on PATH."""
    ninja = tmp_path / "ninja"
    ninja.write_text("#!/bin/sh\n")
    ninja.chmod(0o755)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "ninja", types.SimpleNamespace(BIN_DIR=str(tmp_path)))
    kernels._put_ninja_on_path()
    assert shutil.which("ninja") == str(ninja)


def test_a_failed_build_says_its_first_line(fresh_build, monkeypatch, capsys):
    def fail(**kw):
        raise RuntimeError("Error building extension 'x'\nlong compiler output")

    monkeypatch.setattr(kernels, "_missing_tool", lambda: None)
    monkeypatch.setattr(cpp_extension, "load", fail)
    assert not kernels.available()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(Error building extension 'x')" in err


def test_ninja_is_a_dependency():
    text = (Path(kernels.__file__).parents[2] / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"ninja>=' in dependencies
