"""Trainer overhead: rnnkit's Trainer vs a minimal hand-written TBPTT loop.

Both train the same char-level LSTM (embedding -> torch.nn.LSTM -> linear) on the same
streams of tinyshakespeare with Adam, carried detached state and gradient-norm clipping,
in the same process, alternating runs so machine noise hits both alike. The trainer also
logs every step to metrics.jsonl, draws the progress bar and records the clip history.

    python benchmarks/trainer.py            # prints a table, writes benchmarks/results/trainer.json
    python benchmarks/trainer.py --quick    # a short check that it runs

overhead = trainer time / peer time per step (end of step 1 to end of the last step), the
median over alternating pairs (target <= 1.05); best-of = fastest trainer run / fastest peer
run. Fixed costs of a run (the final checkpoint, opening the log) are not per-step costs and
are left out of both.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.train import StreamBatcher, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, inputs, state=None):
        out, state = self.rnn(self.emb(inputs), state)
        return self.head(out), state


def load_ids(limit: int) -> tuple[torch.Tensor, int]:
    if DATA.exists():
        text = DATA.read_text()[:limit]
    else:  # offline fallback so the script always runs
        text = ("the quick brown fox jumps over the lazy dog. " * (limit // 45 + 1))[:limit]
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text]), len(vocab)


def peer_loop(model: nn.Module, ids: torch.Tensor, batch: int, chunk: int, steps: int) -> float:
    """The loop people write by hand; returns seconds from the end of step 1 to step `steps`."""
    streams = ids[: (len(ids) - 1) // batch * batch + 1]
    length = (len(streams) - 1) // batch
    inputs = streams[:-1].view(batch, length)
    targets = streams[1:].view(batch, length)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    state, pos = None, 0
    ends = []
    for _ in range(steps):
        if pos + chunk > length:
            state, pos = None, 0
        x, y = inputs[:, pos : pos + chunk], targets[:, pos : pos + chunk]
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        loss.item()  # a hand-written loop logs its loss too
        pos += chunk
        ends.append(time.perf_counter())
    return ends[-1] - ends[0]


def trainer_run(
    model: nn.Module, ids: torch.Tensor, batch: int, chunk: int, steps: int, progress: bool
) -> float:
    """Seconds from the end of step 1 to step `steps`, from the trainer's own step log.

    Per-step time, like the peer's: a run's fixed costs (the final checkpoint's fsync,
    opening the log) are paid once per run, not per step, and would swamp short runs.
    """
    config = TrainConfig(
        batch_size=batch,
        chunk_length=chunk,
        max_steps=steps,
        eval_every=10**9,
        checkpoint_every=0,
        clip="norm",
        clip_max_norm=1.0,
        plot=False,
        progress=progress,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(model, config, StreamBatcher(ids, batch), run_dir=run_dir).fit()
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
        times = [json.loads(line)["time"] for line in lines]
    return times[-1] - times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one size")
    parser.add_argument("--steps", type=int, default=25, help="steps per run")
    parser.add_argument("--repeats", type=int, default=10, help="alternating runs per side")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="trainer without tqdm")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/trainer.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # (hidden, streams, chunk length, steps multiplier); the tiny model shows the trainer's
    # fixed cost per step, so it runs many more (cheap) steps
    sizes = [(128, 32, 50, 1), (256, 32, 100, 1), (8, 2, 5, 20)]
    steps, repeats = args.steps, args.repeats
    if args.quick:
        sizes, steps, repeats = sizes[::2], 10, 4
    ids, vocab = load_ids(300_000)

    rows = []
    for hidden, batch, chunk, factor in sizes:
        n = steps * factor
        torch.manual_seed(0)
        model = CharLSTM(vocab, hidden)
        peer_loop(model, ids, batch, chunk, 3)  # warm-up (allocator, kernels)
        trainer_run(model, ids, batch, chunk, 3, progress=False)
        timed = n - 1  # intervals between step ends
        peer_times, trainer_times = [], []
        for r in range(repeats):  # alternate who goes first: load drifts on shared machines
            if r % 2 == 0:
                peer_times.append(peer_loop(model, ids, batch, chunk, n))
            trainer_times.append(
                trainer_run(model, ids, batch, chunk, n, progress=not args.no_progress)
            )
            if r % 2 == 1:
                peer_times.append(peer_loop(model, ids, batch, chunk, n))
        # Adjacent runs see the same machine load, so the ratio within a pair is the robust
        # number; the best-of-N ratio is a second, independent estimate.
        pairs = [t / p for t, p in zip(trainer_times, peer_times, strict=True)]
        rows.append(
            {
                "hidden": hidden,
                "streams": batch,
                "chunk_length": chunk,
                "steps": n,
                "repeats": repeats,
                "peer_chunks_per_s": timed / statistics.median(peer_times),
                "trainer_chunks_per_s": timed / statistics.median(trainer_times),
                "overhead": statistics.median(pairs),
                "overhead_best_of": min(trainer_times) / min(peer_times),
                "extra_us_per_step": 1e6
                * (statistics.median(trainer_times) - statistics.median(peer_times))
                / timed,
            }
        )

    print(
        f"\n{'hidden':>6} {'B':>4} {'T':>4} {'peer ch/s':>10} {'trainer ch/s':>13} "
        f"{'overhead':>9} {'best-of':>8} {'extra us/step':>14}"
    )
    for r in rows:
        print(
            f"{r['hidden']:>6} {r['streams']:>4} {r['chunk_length']:>4} "
            f"{r['peer_chunks_per_s']:>10.2f} {r['trainer_chunks_per_s']:>13.2f} "
            f"{r['overhead']:>9.3f} {r['overhead_best_of']:>8.3f} {r['extra_us_per_step']:>14.0f}"
        )
    print("overhead = median over alternating pairs of trainer time / peer time, same process;")
    print("best-of = fastest trainer run / fastest peer run; target <= 1.05")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "trainer",
                "quick": args.quick,
                "threads": args.threads,
                "torch": torch.__version__,
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
