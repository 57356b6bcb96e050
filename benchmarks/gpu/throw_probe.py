"""Does a TORCH_CHECK failure inside a custom op compiled on this machine reach Python as a
RuntimeError, or crash the process? Each case runs in its own process.

    python benchmarks/gpu/throw_probe.py        # minimal extensions, then rnnkit's kernel
    python benchmarks/gpu/throw_probe.py ours   # rnnkit's case alone, e.g. under a debugger

On the lent H200 machine (2026-11-29: torch 2.11.0+cu130 built with GCC 13.3, g++ 13.3) every
case segfaults, a three-line extension as much as rnnkit's: the crash is in std::ostream
formatting an integer into the error message (c10::str), so that machine's toolchain and
torch disagree on libstdc++, and tests/test_fast_loop.py's size-check tests crash there. On
the CI machines (g++ 12.2, torch 2.13.0 CPU) every case raises the RuntimeError."""
import subprocess
import sys

MINIMAL = r"""
#include <torch/library.h>
#include <ATen/ATen.h>
void probe_fail(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 99, "probe: wanted 99 dims, got ", x.dim());
}
TORCH_LIBRARY(probe_TAG, m) { m.def("fail(Tensor x) -> ()"); }
TORCH_LIBRARY_IMPL(probe_TAG, CPU, m) { m.impl("fail", &probe_fail); }
"""

CASE = """
import torch
from torch.utils import cpp_extension
flags = {flags!r}
cpp_extension.load_inline("probe_{tag}", [{src!r}], extra_cflags=flags,
                          extra_ldflags=[f for f in flags if f == "-fopenmp"],
                          is_python_module=False)
try:
    torch.ops.probe_{tag}.fail(torch.zeros(2))
except RuntimeError as e:
    print("RuntimeError:", str(e).splitlines()[0])
"""

OURS = """
import torch
from rnnkit import kernels
assert kernels.available()
x, w_t, act = torch.randn(5, 4, 21), torch.randn(7, 21), torch.empty(5, 4, 21)
hs, a_n = torch.zeros(6, 4, 7), torch.empty(5, 4, 7)
try:
    torch.ops.rnnkit.gru_forward_seq(x, w_t, candidate=torch.ones(1, 7), h=hs, act=act,
                                     a_n=a_n)
except RuntimeError as e:
    print("RuntimeError:", str(e).splitlines()[0])
"""

FLAGS = {
    "minimal -O3": ["-O3"],
    "minimal -O3 -fopenmp": ["-O3", "-fopenmp"],
    "minimal -O3 -fopenmp -mavx2 -mfma": ["-O3", "-fopenmp", "-mavx2", "-mfma", "-mf16c"],
}


def report(name: str, code: str) -> None:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    said = r.stdout.strip() if r.returncode == 0 else r.stderr.strip()[-300:]
    print(f"{name:40} exit {r.returncode}: {said}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["ours"]:  # the rnnkit case alone, in this process (for a debugger)
        exec(OURS)
        sys.exit()
    for i, (name, flags) in enumerate(FLAGS.items()):
        src = MINIMAL.replace("TAG", str(i))
        report(name, CASE.format(flags=flags, src=src, tag=i))
    report("rnnkit gru_forward_seq, bad mask", OURS)
