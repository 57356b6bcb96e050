"""The AWD-LSTM switches (issue 19) from the command line: each reaches the model or the
objective, a flag that does nothing for the chosen cell is an error, and AR/TAR are optimized
but kept out of the reported loss."""

from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.cli.settings import ConfigError, TrainSettings, resolve_model_size
from rnnkit.data.text import CharVocab
from rnnkit.losses import activation_regularization, temporal_activation_regularization
from rnnkit.models import SequenceModel
from rnnkit.objectives import TeacherForcing
from rnnkit.objectives.base import PENALTY
from rnnkit.tasks.text import TextTask
from rnnkit.train import Batch

TINY = ["--hidden-size", "16", "--embed-dim", "8", "--batch-size", "2", "--chunk-length", "16",
        "--eval-every", "4", "--sample-length", "5", "--no-progress", "--threads", "1"]


def build(**flags):
    s = resolve_model_size(TrainSettings(**flags), set(flags))
    return TextTask(CharVocab.from_texts(["abcd"])).build_model(s, [])


def test_each_switch_reaches_the_model():
    model = build(cell="lstm", num_layers=2, weight_drop=0.3, dropout_mode="locked",
                  dropout=0.2, input_dropout=0.1, output_dropout=0.15,
                  recurrent_dropout=0.1, recurrent_dropout_mode="per_sequence",
                  zoneout_cell=0.2, zoneout_hidden=0.05, init="orthogonal",
                  embed_dropout=0.1, embed_dropout_mode="words")
    rnn = model.rnn
    assert (rnn.weight_drop, rnn.dropout_mode, rnn.input_dropout, rnn.output_dropout) == (
        0.3, "locked", 0.1, 0.15)
    assert rnn.recurrent_dropout_mode == "per_sequence"
    assert (rnn.zoneout_cell, rnn.zoneout_hidden) == (0.2, 0.05)
    assert model.encoder.mode == "words"
    w = rnn.weight_hh_l0[:16]  # one gate block of an orthogonal init
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)


def test_gru_gate_biases_and_chrono_init():
    gru = build(cell="gru", update_bias=1.0, reset_bias=-1.0).rnn
    b = gru.bias_ih_l0 + gru.bias_hh_l0  # torch's GRU gate order: r, z, n
    torch.testing.assert_close(b[:gru.hidden_size], torch.full((gru.hidden_size,), -1.0))
    torch.testing.assert_close(b[gru.hidden_size: 2 * gru.hidden_size],
                               torch.full((gru.hidden_size,), 1.0))
    lstm = build(cell="lstm", chrono_init=50.0).rnn
    h = lstm.hidden_size
    forget = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()[h : 2 * h]
    assert float(forget.min()) >= 0.0 and float(forget.max()) <= torch.log(torch.tensor(49.0))


@pytest.mark.parametrize("flags, expected", [
    ({"cell": "gru", "forget_bias": 1.0}, "--forget-bias is for --cell lstm; this model.s cell"),
    ({"cell": "gru", "zoneout_cell": 0.1}, "--zoneout-cell is for --cell lstm"),
    ({"cell": "lstm", "update_bias": 1.0}, "--update-bias is for --cell gru"),
    ({"cell": "lstm", "chrono_init": 10.0, "forget_bias": 1.0}, "--chrono-init sets"),
])
def test_a_flag_that_does_nothing_for_the_cell_is_an_error(flags, expected):
    with pytest.raises(ConfigError, match=expected):
        resolve_model_size(TrainSettings(**flags), set(flags))


def test_ar_and_tar_are_optimized_but_not_reported():
    torch.manual_seed(0)
    model = SequenceModel.char_lm(5, hidden_size=8, num_layers=1, embedding_dim=4, cell="gru")
    tokens = torch.randint(0, 5, (3, 9))
    mask = torch.ones(3, 8, dtype=torch.bool)
    batch = Batch(tokens[:, :-1], tokens[:, 1:], mask, torch.zeros(3, 8, dtype=torch.bool))
    plain, _, _ = TeacherForcing()(model, batch, None)
    loss, _, metrics = TeacherForcing(ar=2.0, tar=1.0)(model, batch, None)
    torch.testing.assert_close(loss, plain)  # the per-step NLL is unchanged
    _, _, hidden = model(tokens[:, :-1], return_hidden=True)
    torch.testing.assert_close(metrics["ar"], activation_regularization(hidden, 2.0).detach())
    torch.testing.assert_close(metrics["tar"],
                               temporal_activation_regularization(hidden, 1.0).detach())
    torch.testing.assert_close(metrics[PENALTY], metrics["ar"] + metrics["tar"])
    assert metrics[PENALTY].requires_grad


def test_every_switch_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("t.txt").write_text("the cat sat on the mat. a dog ate the hat!\n" * 40)
    flags = ["--cell", "lstm", "--num-layers", "2", "--weight-drop", "0.2", "--dropout-mode",
             "locked", "--dropout", "0.1", "--input-dropout", "0.1", "--output-dropout", "0.1",
             "--embed-dropout", "0.1", "--embed-dropout-mode", "words", "--init", "orthogonal",
             "--chrono-init", "20", "--ar", "2", "--tar", "1", "--zoneout-cell", "0.1"]
    assert main(["train", "t.txt", *TINY, *flags, "--max-steps", "4", "--name", "awd"]) == 0
    records = [line for line in Path("runs/awd/metrics.jsonl").read_text().splitlines()
               if '"ar"' in line]
    assert len(records) == 4  # AR and TAR logged at every step
    assert main(["sample", "awd", "--length", "5"]) == 0


def test_export_writes_torch_nn_torchscript_and_onnx(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("t.txt").write_text("the cat sat on the mat. a dog ate the hat!\n" * 40)
    assert main(["train", "t.txt", *TINY, "--cell", "lstm", "--max-steps", "2", "--name", "p",
                 "--no-layer-norm", "--no-learned-initial-state"]) == 0
    assert main(["export", "p"]) == 0
    out = Path("runs/p/export")
    plain = torch.nn.LSTM(8, 16, batch_first=True)
    plain.load_state_dict(torch.load(out / "torch_nn.pt", weights_only=True))
    step = torch.jit.load(str(out / "step.ts"))
    x, h, c = torch.randn(3, 8), torch.zeros(1, 3, 16), torch.zeros(1, 3, 16)
    y, _, _ = step(x, h, c)
    ref, _ = plain(x.unsqueeze(1), (h, c))
    torch.testing.assert_close(y, ref[:, 0])  # the same network, two ways
    assert (out / "step.onnx").stat().st_size > 0 and (out / "parts.pt").is_file()

    assert main(["train", "t.txt", *TINY, "--max-steps", "2", "--name", "ln",
                 "--layer-norm"]) == 0
    capsys.readouterr()
    assert main(["export", "ln"]) == 0
    assert "no torch_nn.pt" in capsys.readouterr().err  # layer norm: no plain torch.nn module
    assert (Path("runs/ln/export") / "step.onnx").is_file()
