"""Compiled CPU kernels for :mod:`rnnkit.fast_loop`, built once per machine at first use: the
fused LSTM and GRU steps, the sequence ops that run a layer's whole time loop around them, and
the Bernoulli masks of the dropout-like tricks (:func:`rnnkit.regularizers.bernoulli_`).

The C++ sources in ``rnnkit/csrc`` (and their headers, which ninja tracks) are compiled with
``torch.utils.cpp_extension`` (g++ and ninja) into torch's extension cache
(``~/.cache/torch_extensions``, or ``$TORCH_EXTENSIONS_DIR``) and registered as
``torch.ops.rnnkit.*``. Where they cannot be built (no compiler), :func:`available` is False, a
warning says why, and the fast loop runs the same step math in eager PyTorch: slower, never
different. ``RNNKIT_KERNELS=0`` turns them off.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from pathlib import Path

import torch

NAME = "rnnkit_step_kernels"
SOURCES = [Path(__file__).parent / "csrc" / name
           for name in ("lstm_step.cpp", "gru_step.cpp", "masks.cpp")]


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


@functools.cache
def available() -> bool:
    """True when ``torch.ops.rnnkit`` holds the step kernels (building them if needed)."""
    if os.environ.get("RNNKIT_KERNELS", "1") == "0":
        return False
    try:
        from torch.utils import cpp_extension

        # Loading a built kernel takes well under a second; say so only when compiling.
        notice = threading.Timer(2.0, print, ["rnnkit: compiling the fused LSTM and GRU step "
                                              "kernels (once per machine, about a minute)...",],
                                 {"file": sys.stderr, "flush": True})
        notice.start()
        try:
            cpp_extension.load(name=NAME, sources=[str(s) for s in SOURCES],
                               extra_cflags=_flags(), extra_ldflags=_openmp(),
                               is_python_module=False)
        finally:
            notice.cancel()
    except Exception as e:  # no compiler, no ninja, a broken toolchain: run the eager step
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        warnings.warn(f"rnnkit: the fused step kernels could not be built ({first_line}); "
                      "LSTMs with tricks and GRUs run the eager step or torch's, "
                      "which is slower (same results)", RuntimeWarning, stacklevel=2)
        return False
    return True
