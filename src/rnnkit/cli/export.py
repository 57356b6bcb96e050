"""``rnnkit export RUN``: the trained recurrent network for use without rnnkit."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from rnnkit.cli import rundir
from rnnkit.cli.infer import load_model
from rnnkit.cli.settings import ExportSettings
from rnnkit.export import step_changing_tricks, to_onnx, to_step, to_torch


def export(s: ExportSettings) -> list[Path]:
    """Write into ``--output`` (default ``RUN/export``):

    - ``torch_nn.pt``: a plain ``torch.nn.LSTM``/``GRU`` state_dict (batch_first), when the
      model uses no trick that changes the step;
    - ``step.ts`` (TorchScript) and ``step.onnx``: the one-step network, state in and out;
    - ``parts.pt``: the state_dicts of the encoder (embedding) and the head around it.
    Returns the files written."""
    model, _ = load_model(s.run, s.checkpoint, "cpu")
    out = Path(s.output) if s.output else rundir.find_run(s.run) / "export"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tricks = step_changing_tricks(model.rnn)
    if tricks:
        print(f"no torch_nn.pt: torch.nn.{type(model.rnn).__name__} cannot express "
              f"{', '.join(tricks)}; use step.ts or step.onnx", file=sys.stderr)
    else:
        torch.save(to_torch(model.rnn).state_dict(), out / "torch_nn.pt")
        written.append(out / "torch_nn.pt")
    torch.jit.script(to_step(model.rnn)).save(str(out / "step.ts"))
    to_onnx(model.rnn, str(out / "step.onnx"))
    torch.save({"encoder": model.encoder.state_dict(), "head": model.head.state_dict()},
               out / "parts.pt")
    written += [out / "step.ts", out / "step.onnx", out / "parts.pt"]
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return written
