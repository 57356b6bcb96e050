"""Export: a plain torch.nn module with the same weights, and a one-step module that
TorchScript compiles and ONNX exports, each equal to rnnkit's own eval-mode numbers."""


import pytest
import torch

import rnnkit
from rnnkit.export import to_onnx, to_step, to_torch

MODES = ["LSTM", "GRU"]
# torch 2.13 deprecates torch.jit.script; it still compiles, and it is what the task asks for
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def _tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kw", [dict(), dict(batch_first=True, dropout=0.3),
                                dict(weight_drop=0.5, dropout=0.5, dropout_mode="locked",
                                     input_dropout=0.2, output_dropout=0.2,
                                     recurrent_dropout=0.2, init="orthogonal")])
def test_to_torch_equals_rnnkit(mode, kw):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, **kw).eval()
    plain = to_torch(m)
    assert type(plain) is getattr(torch.nn, mode)
    assert list(plain.state_dict()) == list(m.state_dict())
    x = torch.randn(4, 6, 3)
    (o1, s1), (o2, s2) = m(x), plain(x)
    torch.testing.assert_close(o2, o1, atol=1e-6, rtol=0)
    for a, b in zip(_tuple(s1), _tuple(s2)):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    expected = kw.get("dropout", 0.0) if kw.get("dropout_mode", "standard") == "standard" else 0
    assert plain.dropout == expected


@pytest.mark.parametrize("trick,name", [(dict(layer_norm=True), "layer_norm"),
                                        (dict(sum_outputs=True), "sum_outputs"),
                                        (dict(input_layers=1), "input_layers=1"),
                                        (dict(learned_initial_state=True),
                                         "learned_initial_state")])
def test_to_torch_names_the_trick_it_cannot_express(trick, name):
    with pytest.raises(ValueError, match=f"LSTM uses {name}.*to_step"):
        to_torch(rnnkit.LSTM(3, 5, **trick))
    with pytest.raises(ValueError, match="zoneout=0.1"):
        to_torch(rnnkit.GRU(3, 5, zoneout=0.1))


TRICKS = [dict(), dict(layer_norm=True), dict(input_layers=1, sum_outputs=True),
          dict(learned_initial_state=True, bias=False)]


def _zoneout(mode):
    return dict(zoneout_cell=0.2, zoneout_hidden=0.1) if mode == "LSTM" else dict(zoneout=0.2)


def _run_steps(step, x, state):
    outs = []
    for t in range(x.shape[0]):
        y, *state = step(x[t], *state)
        outs.append(y)
    return torch.stack(outs), state


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trick", range(len(TRICKS) + 1))
def test_scripted_step_equals_the_module(mode, trick):
    torch.manual_seed(0)
    kw = TRICKS[trick] if trick < len(TRICKS) else dict(layer_norm=True, **_zoneout(mode))
    m = getattr(rnnkit, mode)(3, 5, 2, **kw)
    if kw.get("learned_initial_state"):
        with torch.no_grad():
            m.initial_h.normal_()
    m.eval()
    step = torch.jit.script(to_step(m))
    x = torch.randn(6, 4, 3)
    with torch.no_grad():
        ref, ref_state = m(x)
        out, state = _run_steps(step, x, _tuple(step.initial_state(4)))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(state, _tuple(ref_state)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_onnx_step_equals_the_module(mode, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, layer_norm=True, **_zoneout(mode)).eval()
    step = to_step(m)
    path = tmp_path / "step.onnx"
    names = to_onnx(m, str(path))[1:]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 4, 3)  # another batch size than the export's
    state = [s.contiguous() for s in _tuple(step.initial_state(4))]
    with torch.no_grad():
        ref, _ = m(x)
    for t in range(5):
        feeds = {"x": x[t].numpy(), **{n: s.numpy() for n, s in zip(names, state)}}
        y, *new = session.run(None, feeds)
        torch.testing.assert_close(torch.from_numpy(y), ref[t], atol=1e-5, rtol=1e-5)
        state = [torch.from_numpy(s) for s in new]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_docs_example_uses_step_onnx_and_parts_pt_as_rnnkit_does(cell, tmp_path,
                                                                       monkeypatch, capsys):
    """docs/export.md's example, run as written on a small exported run, gives the
    next-character logits of the run's own model (learned initial state included)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import re
    from pathlib import Path

    from rnnkit.cli import main
    from rnnkit.cli.infer import load_model

    doc = (Path(__file__).parents[1] / "docs" / "export.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    monkeypatch.chdir(tmp_path)
    Path("t.txt").write_text("the cat sat on the mat. a dog ate the hat!\n" * 40)
    assert main(["train", "t.txt", "--name", "mine", "--cell", cell, "--hidden-size", "16",
                 "--embed-dim", "8", "--batch-size", "2", "--chunk-length", "16",
                 "--max-steps", "6", "--eval-every", "6", "--no-progress", "--threads", "1",
                 "--model-size", "small", "--sample-length", "5"]) == 0
    assert main(["export", "mine"]) == 0
    namespace = {}
    exec(compile(code, "docs/export.md", "exec"), namespace)  # noqa: S102 - our own docs
    model, task = load_model("runs/mine")
    ids = task.vocab.encode("the ca").unsqueeze(0)
    with torch.no_grad():
        expected = model(ids)[0][0, -1]
    got = torch.from_numpy(namespace["next_char_logits"]("the ca"))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert repr(namespace["vocab"][int(namespace["logits"].argmax())]) in capsys.readouterr().out
    # the learned initial state matters: from zeros the first character's logits differ
    with torch.no_grad():
        first = model(task.vocab.encode("t").unsqueeze(0))[0][0, -1]
    namespace["initial"].update({k: v * 0 for k, v in namespace["initial"].items()})
    zero = torch.from_numpy(namespace["next_char_logits"]("t"))
    assert (zero - first).abs().max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_the_exported_step_is_the_reference_step(mode, monkeypatch):
    """to_step runs rnnkit.functional's step (one definition of the math), not a copy."""
    from rnnkit import functional

    name = f"{mode.lower()}_step"
    calls = []
    real = getattr(functional, name)
    monkeypatch.setattr(functional, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    m = getattr(rnnkit, mode)(3, 5, 2, layer_norm=True).eval()
    step = to_step(m)
    with torch.no_grad():
        step(torch.randn(4, 3), *_tuple(step.initial_state(4)))
    assert len(calls) == 2  # one per layer
