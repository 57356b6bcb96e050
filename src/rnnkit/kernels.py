"""Compiled CPU kernels for :mod:`rnnkit.fast_loop`, built once per machine at first use: the
fused LSTM and GRU steps, the sequence ops that run a layer's whole time loop around them, and
the Bernoulli masks of the dropout-like tricks (:func:`rnnkit.regularizers.bernoulli_`).

The C++ sources in ``rnnkit/csrc`` (and their headers, which ninja tracks) are compiled with
``torch.utils.cpp_extension`` (g++ and ninja) into torch's extension cache
(``~/.cache/torch_extensions``, or ``$TORCH_EXTENSIONS_DIR``) and registered as
``torch.ops.rnnkit.*``. The build is named by a hash of the sources, the flags and the torch
and Python versions, and compiles a copy of the sources kept in its directory: two installs
of the same rnnkit share one build, and different ones keep their own instead of rebuilding
over each other (ninja rebuilds whenever a source's path changes). Where they cannot be built
(no compiler, no ninja: the ``ninja`` package is a dependency), :func:`available` is False,
one line on stderr says why (once per process), and the fast loop runs the same step math in
eager PyTorch: slower, never different. ``RNNKIT_KERNELS=0`` turns them off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import torch

NAME = "rnnkit_step_kernels"
CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / name for name in ("lstm_step.cpp", "gru_step.cpp", "masks.cpp")]


def _openmp() -> list[str]:
    """-fopenmp where torch itself runs on GNU OpenMP (Linux): without it, at::parallel_for in
    the kernel compiles to a serial loop and uses one core whatever torch.set_num_threads says.
    The extension then shares the libgomp that torch has already loaded."""
    return ["-fopenmp"] if sys.platform == "linux" and torch.backends.openmp.is_available() else []


def _flags() -> list[str]:
    flags = ["-O3", *_openmp()]
    # torch's own vector kernels pick their instruction set at run time; ours is compiled for
    # the machine it runs on, and only uses AVX2 where torch reports the CPU has it.
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    return flags


def build_name(csrc: Path, flags: list[str]) -> str:
    """``NAME_<hash>`` of every file in ``csrc`` (names and bytes), the compiler flags and the
    torch and Python versions: the same for two installs of the same sources, and never for
    sources or a torch that the build does not fit."""
    digest = hashlib.sha256()
    for path in sorted(csrc.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(repr((flags, torch.__version__, sys.version, sys.platform)).encode())
    return f"{NAME}_{digest.hexdigest()[:16]}"


def build_directory(name: str) -> Path:
    """Where the build named ``name`` lives: ``$TORCH_EXTENSIONS_DIR`` or torch's cache root."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / name


def stage_sources(csrc: Path, directory: Path) -> list[Path]:
    """Copy the files of ``csrc`` into ``directory/src`` (each written atomically, and only
    when missing or different: an unchanged file keeps its time stamp, so ninja does not
    rebuild); returns the copies of ``SOURCES``' files."""
    target = directory / "src"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(csrc.iterdir()):
        copy = target / path.name
        data = path.read_bytes() if path.is_file() else None
        if data is None or (copy.is_file() and copy.read_bytes() == data):
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=target)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, copy)
    return [target / source.name for source in SOURCES]


def switched_off() -> bool:
    """True when ``RNNKIT_KERNELS=0``: read at every call, so a test or a benchmark can turn
    the kernels off for a while (``monkeypatch.setenv``) after they have loaded."""
    return os.environ.get("RNNKIT_KERNELS", "1") == "0"


def available() -> bool:
    """True when ``torch.ops.rnnkit`` holds the step kernels (building them if needed) and
    ``RNNKIT_KERNELS=0`` does not turn them off."""
    return not switched_off() and _built()


@functools.cache
def _built() -> bool:
    """Build (or load) the kernels once per process. When they cannot be built, print one
    line saying why (once: this is cached) and return False: the eager step runs instead."""
    _put_ninja_on_path()
    reason = _missing_tool()
    if reason is None:
        try:
            _build()
            return True
        except Exception as e:  # a broken toolchain, a compile error: run the eager step
            lines = str(e).strip().splitlines()
            reason = lines[0] if lines else type(e).__name__
    print(f"rnnkit: the compiled kernels are off ({reason}); LSTMs with tricks and GRUs run "
          "the eager step: the same numbers, several times slower (RNNKIT_KERNELS=0 silences "
          "this)", file=sys.stderr, flush=True)
    return False


def _put_ninja_on_path() -> None:
    """Put the ``ninja`` package's binary on PATH when no ninja is: a virtual environment's
    ``bin`` is not on PATH when its python runs by its full path, and torch's build calls
    ``ninja`` by name."""
    if shutil.which("ninja"):
        return
    try:
        import ninja  # the PyPI package, a dependency of rnnkit
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _missing_tool() -> str | None:
    """Why the build cannot start (a tool it needs is missing, and how to get it), or None."""
    if not shutil.which("ninja"):
        return "ninja not found: pip install ninja"
    compiler = os.environ.get("CXX", "cl" if sys.platform == "win32" else "c++")  # torch's
    if not shutil.which(compiler):
        return f"no C++ compiler: {compiler} not found (install g++, or set CXX)"
    return None


def _build() -> None:
    """Compile (or load the cached build of) the kernels into ``torch.ops.rnnkit``."""
    from torch.utils import cpp_extension

    # Loading a built kernel takes well under a second; say so only when compiling.
    notice = threading.Timer(2.0, print, ["rnnkit: compiling the fused LSTM and GRU step "
                                          "kernels (once per machine, about a minute)..."],
                             {"file": sys.stderr, "flush": True})
    notice.start()
    try:
        name = build_name(CSRC, [*_flags(), *_openmp()])
        directory = build_directory(name)
        sources = stage_sources(CSRC, directory)
        cpp_extension.load(name=name, sources=[str(s) for s in sources],
                           extra_cflags=_flags(), extra_ldflags=_openmp(),
                           build_directory=str(directory), is_python_module=False)
    finally:
        notice.cancel()
