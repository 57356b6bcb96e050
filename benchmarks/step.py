"""Latency of one-step streaming inference: rnnkit's ``step()`` against torch.nn's cells.

Part 1, one step (eval mode, torch.no_grad, 1 layer, input 64; batch 1 and 32, hidden 256
and 512): torch.nn.LSTMCell / GRUCell (the reference), torch.nn.LSTM / GRU called on a
length-1 sequence (what users do today), and rnnkit.LSTM / GRU ``.step()`` with every trick
off, with each trick that touches the step, and with tricks off on the path the module does
not take by default (an LSTM runs torch's fused kernel, a GRU on CPU rnnkit's compiled loop).
In eval mode layer norm changes the step, zoneout takes its expectation
``p * s_prev + (1 - p) * s_new`` (deterministic, but still the loop path), and recurrent
dropout is the identity (no mask is drawn: the path of tricks off). Each configuration
streams ``--steps`` steps, feeding its state back; the table gives microseconds per step and
the ratio to the cell.

Part 2, generation: the loop ``rnnkit sample`` runs (:meth:`rnnkit.tasks.text.TextTask.
generate`: ``SequenceModel.step`` and ``CategoricalHead.sample``, one character at a time)
on the default ("small") char model with untrained weights, in characters per second, against
a hand-written loop of nn.Embedding + nn.GRUCell / LSTMCell + nn.Linear + softmax and
multinomial of the same sizes.

Configurations run round-robin in one process and each reports the ratio of its median to
the reference's, so a busy machine slows both sides alike.

    python benchmarks/step.py                     # full table, JSON in benchmarks/results/
    python benchmarks/step.py --hidden 256 --batch 1 --repeats 3
    python benchmarks/step.py --clock cpu --stat min   # on a crowded machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import rnnkit
from rnnkit.cli.settings import TrainSettings
from rnnkit.data.text import CharVocab
from rnnkit.models import SequenceModel
from rnnkit.tasks.text import TextTask

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tinyshakespeare's


def step_tricks(mode: str) -> dict[str, dict]:
    """rnnkit configurations of the step table: name -> keyword arguments."""
    zone = dict(zoneout_cell=0.1, zoneout_hidden=0.1) if mode == "LSTM" else dict(zoneout=0.1)
    return {
        "rnnkit step, tricks off": {},
        "rnnkit step, layer_norm": dict(layer_norm=True),
        "rnnkit step, zoneout": zone,
        "rnnkit step, recurrent_dropout": dict(recurrent_dropout=0.25),
    }


def zeros_state(mode: str, shape: tuple[int, ...]) -> Tensor | tuple[Tensor, Tensor]:
    """torch.nn's zero state of ``shape``: (h, c) for an LSTM, h for a GRU."""
    return (torch.zeros(shape), torch.zeros(shape)) if mode == "LSTM" else torch.zeros(shape)


def cell_stream(cell: nn.Module, mode: str, xs: Tensor) -> Callable[[], None]:
    """Stream ``xs [steps, B, I]`` through a torch.nn cell, one step a call to ``cell``."""

    def run() -> None:
        state = zeros_state(mode, (xs.shape[1], cell.hidden_size))
        for x in xs:
            state = cell(x, state)

    return run


def sequence_stream(rnn: nn.Module, mode: str, xs: Tensor) -> Callable[[], None]:
    """Stream ``xs [steps, B, I]`` through torch.nn.LSTM / GRU as length-1 sequences."""

    def run() -> None:
        state = zeros_state(mode, (1, xs.shape[1], rnn.hidden_size))
        for x in xs:
            _, state = rnn(x.unsqueeze(0), state)

    return run


def step_stream(rnn: rnnkit.LSTM | rnnkit.GRU, xs: Tensor) -> Callable[[], None]:
    """Stream ``xs [steps, B, I]`` through rnnkit's ``step()``."""

    def run() -> None:
        state = rnn.initial_state(xs.shape[1])
        for x in xs:
            _, state = rnn.step(x, state)

    return run


def step_configs(mode: str, batch: int, hidden: int, args) -> dict[str, Callable[[], None]]:
    """Every configuration of one (mode, batch, hidden) cell of the table, reference first."""
    torch.manual_seed(0)
    xs = torch.randn(args.steps, batch, args.input)
    cell = getattr(nn, f"{mode}Cell")(args.input, hidden).eval()
    runs = {f"torch.nn.{mode}Cell": cell_stream(cell, mode, xs)}
    rnn = getattr(nn, mode)(args.input, hidden).eval()
    runs[f"torch.nn.{mode} (T=1)"] = sequence_stream(rnn, mode, xs)
    for name, kw in step_tricks(mode).items():
        ours = getattr(rnnkit, mode)(args.input, hidden, **kw).eval()
        runs[name] = step_stream(ours, xs)
    # Tricks off on the other path than the default one on CPU (there an LSTM takes torch's
    # kernel, a GRU the compiled loop): which of the two a one-step call should take.
    loop = mode == "LSTM"
    other = forced_path(getattr(rnnkit, mode)(args.input, hidden).eval(), loop)
    runs[f"rnnkit step, off, via {'compiled loop' if loop else 'torch kernel'}"] = \
        step_stream(other, xs)
    return runs


def forced_path(rnn: rnnkit.LSTM | rnnkit.GRU, loop: bool) -> rnnkit.LSTM | rnnkit.GRU:
    """``rnn`` (tricks off) running rnnkit's fast loop (``loop``) or torch's fused kernel, not
    the streaming shortcut a plain one-step call takes."""
    rnn._loop_is_faster = lambda x: loop
    rnn._streaming_shortcut = lambda x: False
    return rnn


def char_model(cell: str, vocab: CharVocab) -> SequenceModel:
    """The model ``rnnkit train`` builds by default (--model-size small) with ``cell``."""
    settings = TrainSettings()
    settings.cell = cell
    return TextTask(vocab).build_model(settings, []).eval()


def rnnkit_generate(task: TextTask, model: SequenceModel, length: int) -> Callable[[], None]:
    """``length`` characters of ``rnnkit sample``'s loop (temperature 1, no prime)."""

    def run() -> None:
        gen = torch.Generator().manual_seed(0)
        "".join(task.generate(model, "", length, 1.0, gen))

    return run


def hand_generate(model: SequenceModel, vocab: CharVocab, length: int) -> Callable[[], None]:
    """The same loop written by hand, with ``model``'s sizes: nn.Embedding, a stack of
    torch.nn cells (outputs summed when the model sums them) and nn.Linear, then softmax
    and multinomial; like ``generate`` it first reads a newline
    and looks each character up."""
    E, H, V = model.encoder.embedding_dim, model.rnn.hidden_size, len(vocab)
    layers, summed = model.rnn.num_layers, model.rnn.sum_outputs
    mode = "LSTM" if isinstance(model.rnn, rnnkit.LSTM) else "GRU"
    cell = getattr(nn, f"{mode}Cell")
    embed, head = nn.Embedding(V, E), nn.Linear(H, V)
    cells = [cell(E, H)] + [cell(H, H) for _ in range(layers - 1)]

    def step(x: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """One step through the stack; the output is the last layer's, or every layer's
        summed (the default char model sums its two layers)."""
        outs, new = [], []
        for c, s in zip(cells, states):
            s = c(x, s)
            x = s[0] if mode == "LSTM" else s
            outs.append(x)
            new.append(s)
        return (sum(outs) if summed else x), new

    def run() -> None:
        gen = torch.Generator().manual_seed(0)
        token = torch.tensor([vocab.index["\n"]])
        out, states = step(embed(token), [zeros_state(mode, (1, H)) for _ in cells])
        chars = []
        for _ in range(length):
            logits = head(out)
            token = torch.multinomial(logits.softmax(-1), 1, generator=gen).view(1)
            chars.append(vocab.chars[int(token)])
            out, states = step(embed(token), states)
        "".join(chars)

    return run


def generate_configs(cell: str, length: int) -> dict[str, Callable[[], None]]:
    """The hand-written loop (reference) and ``rnnkit sample``'s, for one cell type."""
    torch.manual_seed(0)
    vocab = CharVocab(CHARS)
    model = char_model(cell, vocab)
    return {f"torch.nn.{cell.upper()}Cell loop": hand_generate(model, vocab, length),
            "rnnkit sample loop": rnnkit_generate(TextTask(vocab), model, length)}


def time_round_robin(runs: dict[str, Callable[[], None]], args) -> dict[str, float]:
    """Seconds per call of each run: one warm-up each, then ``repeats`` rounds over all of
    them (so a slow spell of the machine hits every run), reduced by ``--stat``."""
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for run in runs.values():
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = clock()
                run()
                times[name].append(clock() - start)
    stat = min if args.stat == "min" else statistics.median
    return {name: stat(t) for name, t in times.items()}


def step_rows(args) -> list[dict]:
    """Part 1: microseconds per step of every configuration, and the ratio to the cell."""
    rows = []
    for mode in args.modes:
        for batch in args.batch:
            for hidden in args.hidden:
                times = time_round_robin(step_configs(mode, batch, hidden, args), args)
                base = times[f"torch.nn.{mode}Cell"]
                for name, t in times.items():
                    rows.append(dict(part="step", mode=mode, batch=batch, hidden=hidden,
                                     config=name, us_per_step=1e6 * t / args.steps,
                                     ratio=t / base))
                    r = rows[-1]
                    print(f"{mode:4} B={batch:<3} H={hidden:<4} {name:36} "
                          f"{r['us_per_step']:8.1f} us/step  x{r['ratio']:5.2f}", flush=True)
    return rows


def generate_rows(args) -> list[dict]:
    """Part 2: characters per second of ``rnnkit sample``'s loop and the hand-written one."""
    rows = []
    for cell in args.gen_cells:
        times = time_round_robin(generate_configs(cell, args.length), args)
        base = times[f"torch.nn.{cell.upper()}Cell loop"]
        for name, t in times.items():
            rows.append(dict(part="generate", cell=cell, config=name,
                             chars_per_s=args.length / t, us_per_char=1e6 * t / args.length,
                             ratio=t / base))
            r = rows[-1]
            print(f"gen  {cell:4} {name:36} {r['chars_per_s']:8.0f} chars/s "
                  f"{r['us_per_char']:8.1f} us/char  x{r['ratio']:5.2f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", default=["LSTM", "GRU"])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--steps", type=int, default=200, help="steps streamed per timing")
    p.add_argument("--gen-cells", nargs="*", default=["gru", "lstm"],
                   help="cells of the generation part (the default model is a GRU); none skips it")
    p.add_argument("--length", type=int, default=200, help="characters generated per timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time, which other processes on a shared machine "
                   "disturb less (use with --threads 1: idle OpenMP threads spin on CPU time)")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="of the repeats (min resists other processes on a shared machine)")
    p.add_argument("--output", type=Path,
                   default=Path(__file__).parent / "results" / "step.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = step_rows(args) + generate_rows(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                       "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
