"""Speed and memory of rnnkit's recurrent modules against torch.nn, side by side.

Forward + backward of one batch (default: batch 32, 200 steps, input 64, hidden 256 and
512, 2 threads). Configurations run round-robin in one process and each reports the ratio
of its median time to torch.nn's, so a busy machine slows both sides alike, and its
overhead per time step: (its time - torch.nn's) / steps, in ms, forward and backward
together (negative when it is faster). Memory is the bytes autograd saves for backward (all
saved tensors, via saved-tensor hooks), the part of peak memory that grows with sequence
length.

    python benchmarks/cells.py                    # full table, JSON in benchmarks/results/
    python benchmarks/cells.py --hidden 256 --repeats 3
    python benchmarks/cells.py --layers 2     # between-layer dropout rows need 2 layers
    python benchmarks/cells.py --modes LSTM --configs layer_norm "every step trick"
    python benchmarks/cells.py --eager            # + each trick with the kernels off (the
                                                  #   Python loop over the eager step)
    python benchmarks/cells.py --threads 1 --clock cpu --stat min   # on a crowded machine
    python benchmarks/cells.py --device cuda --out benchmarks/results/cells-cuda.json

"all tricks on" includes an input layer (``input_layers=1``: Linear(H) + ELU, after which W_ih
reads H inputs instead of 64), which is the model's own arithmetic, not the loop's: its row
also prints its ratio to ``MATCHED``, torch.nn's module behind the same input layer.

Each row also gets its matmul floor on CPU: the multiply-adds of its matrix products, forward
and backward (x W_ih^T over all steps, h W_hh^T at every step, their input and weight
gradients, and the input layer's), over the best rate ``torch.mm`` reaches in the same process
on the layer's [batch * steps, hidden] @ [hidden, gates * hidden] product (on the 2-core
machine of issue 18, 92 GFLOP/s on one thread: 32 FLOP per cycle, the width of its FMA units,
at about 2.9 GHz). Running a row under its floor would take matrix products faster than
torch.mm's own on the same shapes, or fewer of them; a row whose floor is above a target
cannot reach it by a faster loop. Each rnnkit row ends with the path its calls take
(``module.route(x)``: rnnkit.dispatch), and the JSON has the reason too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import torch

import rnnkit

EAGER = " (eager)"  # suffix of a configuration run with the kernels off (RNNKIT_KERNELS=0)


def configs(mode: str, eager: bool = False) -> dict[str, dict]:
    zone = dict(zoneout_cell=0.1, zoneout_hidden=0.1) if mode == "LSTM" else dict(zoneout=0.1)
    tricks = {
        "all tricks off": {},
        "layer_norm": dict(layer_norm=True),
        "layer_norm (reference loop)": dict(layer_norm=True, fast=False),
        "zoneout": zone,
        "recurrent_dropout": dict(recurrent_dropout=0.25),
        "weight_drop": dict(weight_drop=0.5),
        "dropout (in/between/out)": dict(dropout=0.25, input_dropout=0.25,
                                         output_dropout=0.25),
        "locked dropout (in/between/out)": dict(dropout_mode="locked", dropout=0.25,
                                                input_dropout=0.25, output_dropout=0.25),
        "all tricks on": dict(layer_norm=True, recurrent_dropout=0.25, learned_initial_state=True,
                              sum_outputs=True, input_layers=1, **zone),
        # The same without the input layer and summed outputs, whose extra arithmetic (an
        # [H, I] layer, and W_ih over H inputs instead of I) is the model's, not the loop's.
        "every step trick": dict(layer_norm=True, recurrent_dropout=0.25,
                                 learned_initial_state=True, **zone),
    }
    if eager:
        for name in ("layer_norm", "zoneout", "recurrent_dropout", "all tricks on",
                     "every step trick"):
            tricks[name + EAGER] = tricks[name]
    return tricks


@contextlib.contextmanager
def kernels_off(on: bool):
    """Run with ``RNNKIT_KERNELS=0`` when on: the path of a machine without a compiler."""
    saved = os.environ.get("RNNKIT_KERNELS")
    if on:
        os.environ["RNNKIT_KERNELS"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("RNNKIT_KERNELS", None)
        else:
            os.environ["RNNKIT_KERNELS"] = saved


MATCHED = "torch.nn + the same input layer"  # the arithmetic of "all tricks on", no step trick


class MatchedPeer(torch.nn.Module):
    """torch.nn's module behind the input layer that ``input_layers=1`` adds (Linear(H) + ELU):
    the arithmetic of "all tricks on" (whose W_ih then reads H inputs, not ``input``) without
    its step tricks, so "all tricks on" / this is what the tricks themselves cost."""

    def __init__(self, mode: str, input_size: int, hidden: int, layers: int, device) -> None:
        super().__init__()
        self.input_layer = torch.nn.Sequential(torch.nn.Linear(input_size, hidden, device=device),
                                               torch.nn.ELU())
        self.rnn = getattr(torch.nn, mode)(hidden, hidden, layers, batch_first=True,
                                           device=device)

    def forward(self, x):
        return self.rnn(self.input_layer(x))


def matmul_gflop(gates: int, rows: int, n_in: int, hidden: int, layers: int,
                 input_layers: int) -> float:
    """GFLOP of the matmuls of one forward + backward over ``rows`` = batch * steps, with
    an input that needs no gradient (so the first map computes no input gradient)."""
    def gemm(k: int, n: int) -> float:
        return 2.0 * rows * k * n

    total, first = 0.0, True
    for _ in range(input_layers):  # Linear(hidden): forward, weight grad, input grad
        total += gemm(n_in, hidden) * (2 if first else 3)
        n_in, first = hidden, False
    for _ in range(layers):  # W_ih over all steps, W_hh at every step: the same three each
        total += gemm(n_in, gates * hidden) * (2 if first else 3)
        total += 3 * gemm(hidden, gates * hidden)
        n_in, first = hidden, False
    return total / 1e9


def best_matmul_rate(rows: int, hidden: int, gates: int, device, repeats: int = 5) -> float:
    """GFLOP/s of torch.mm's fastest of ``repeats`` runs of [rows, hidden] @ [hidden, G]."""
    a = torch.randn(rows, hidden, device=device)
    b = torch.randn(hidden, gates * hidden, device=device)
    out = torch.empty(rows, gates * hidden, device=device)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * rows * hidden * gates * hidden / best / 1e9


def saved_bytes(fn) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def run(args) -> list[dict]:
    torch.set_num_threads(args.threads)
    rows = []
    for mode in args.modes:
        for H in args.hidden:
            torch.manual_seed(0)
            x = torch.randn(args.batch, args.steps, args.input, device=args.device)
            peer = getattr(torch.nn, mode)(args.input, H, args.layers, batch_first=True,
                                           device=args.device)
            modules = {f"torch.nn.{mode}": peer,
                       MATCHED: MatchedPeer(mode, args.input, H, args.layers, args.device)}
            input_layers = {MATCHED: 1}
            for name, kw in configs(mode, args.eager).items():
                if kw.get("fast") is False and H > 256 and not args.slow:
                    continue
                if args.configs and name not in args.configs:
                    continue
                modules[name] = getattr(rnnkit, mode)(args.input, H, args.layers,
                                                      batch_first=True, device=args.device, **kw)
                input_layers[name] = kw.get("input_layers", 0)

            def step(m, name, x=x):
                with kernels_off(name.endswith(EAGER)):
                    out, _ = m(x)
                    out.sum().backward()
                if x.is_cuda:  # the clock stops when the GPU is done, not when it is queued
                    torch.cuda.synchronize()

            times: dict[str, list[float]] = {name: [] for name in modules}
            for name, m in modules.items():
                step(m, name)  # warm-up
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            for _ in range(args.repeats):
                for name, m in modules.items():
                    m.zero_grad(set_to_none=True)
                    if x.is_cuda:
                        torch.cuda.synchronize()
                    start = clock()
                    step(m, name)
                    times[name].append(clock() - start)
            stat = min if args.stat == "min" else statistics.median
            base = stat(times[f"torch.nn.{mode}"])
            gates = 4 if mode == "LSTM" else 3
            cpu = args.device == "cpu"  # (on CUDA, mm's time would need synchronizing)
            rate = best_matmul_rate(args.batch * args.steps, H, gates, args.device) if cpu else 0
            base_mem = saved_bytes(lambda: peer(x)[0])  # noqa: B023 (called right here)
            for name, m in modules.items():
                t = stat(times[name])
                with kernels_off(name.endswith(EAGER)):
                    mem = saved_bytes(lambda m=m: m(x)[0])  # noqa: B023
                    route = m.route(x) if hasattr(m, "route") else None
                gflop = matmul_gflop(gates, args.batch * args.steps, args.input, H, args.layers,
                                     input_layers.get(name, 0))
                rows.append(dict(mode=mode, hidden=H, config=name, ms=1000 * t,
                                 ratio=t / base, step_overhead_ms=1000 * (t - base) / args.steps,
                                 saved_mb=mem / 2**20, mem_ratio=mem / base_mem,
                                 matmul_gflop=gflop, matmul_gflop_per_s=rate or None,
                                 floor_ratio=gflop / rate / base if rate else None,
                                 path=str(route) if route else "torch.nn"))
                r = rows[-1]
                matched = ""
                if name.startswith("all tricks on"):
                    r["ratio_to_matched"] = t / stat(times[MATCHED])
                    matched = f"  x{r['ratio_to_matched']:5.2f} of the matched peer"
                print(f"{mode:4} H={H:<4} {name:30} {r['ms']:8.1f} ms  x{r['ratio']:5.2f}  "
                      f"{r['step_overhead_ms']:+6.3f} ms/step  "
                      f"saved {r['saved_mb']:7.1f} MB  x{r['mem_ratio']:5.2f}"
                      + (f"  matmul floor x{r['floor_ratio']:5.2f}" if rate else "")
                      + matched + (f"  [{route.path}]" if route else ""), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", default=["LSTM", "GRU"])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--configs", nargs="+", default=[],
                   help="only these rows (names as printed), beside the two torch.nn ones")
    p.add_argument("--slow", action="store_true", help="also time the reference loop at H>256")
    p.add_argument("--eager", action="store_true",
                   help="also time each trick with the kernels off (RNNKIT_KERNELS=0)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time, which other processes on a shared machine "
                   "disturb less (use with --threads 1: idle OpenMP threads spin on CPU time)")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="of the repeats (min resists other processes on a shared machine)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda (timed to synchronization)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cells.json")
    args = p.parse_args()
    rows = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                    "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
