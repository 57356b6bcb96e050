"""The recurrent modules, the trainer and the CLI on a GPU: skipped where there is none.

On CUDA the fast loop runs its eager step math (the compiled kernels are CPU code), so these
tests hold it to the same oracles as on CPU: the reference loop over rnnkit.functional in
float64, torch.nn's cuDNN modules where every trick is off, and the CPU module itself.
Autocast on CUDA (float16, bfloat16) is tested in test_autocast.py.
``RNNKIT_TEST_DEVICE=cpu pytest tests/test_cuda.py`` runs them on CPU, to check the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_cli import TINY  # the CLI tests' tiny model and budget

import rnnkit
from rnnkit import fast_loop
from rnnkit.cli import main

DEVICE = os.environ.get("RNNKIT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "")
pytestmark = pytest.mark.skipif(not DEVICE, reason="no CUDA GPU (RNNKIT_TEST_DEVICE=cpu "
                                                   "runs these on CPU)")


def _tricks(mode: str, trick: str) -> dict:
    zone = dict(zoneout_cell=0.2, zoneout_hidden=0.1) if mode == "LSTM" else dict(zoneout=0.2)
    return {
        "off": {},
        "layer_norm": dict(layer_norm=True),
        "zoneout": zone,
        "recurrent_dropout": dict(recurrent_dropout=0.3),
        "all": dict(layer_norm=True, recurrent_dropout=0.2, sum_outputs=True,
                    learned_initial_state=True, input_layers=1, **zone),
    }[trick]


TRICKS = ["off", "layer_norm", "zoneout", "recurrent_dropout", "all"]


def _module(mode: str, trick: str, **kw):
    torch.manual_seed(0)
    return getattr(rnnkit, mode)(3, 5, num_layers=2, batch_first=True, **_tricks(mode, trick),
                                 **kw)


def _run(m, x, lengths=None, reset=None, seed=1):
    """Outputs, states and the gradients of x and every parameter of one loss."""
    torch.manual_seed(seed)  # the same dropout and zoneout masks on each path
    extra = {} if lengths is None and reset is None else dict(lengths=lengths, reset=reset)
    out, state = m(x, **extra)
    states = state if isinstance(state, tuple) else (state,)
    loss = out.pow(2).sum() + sum(s.sin().sum() for s in states)
    grads = torch.autograd.grad(loss, [x, *m.parameters()])
    return out, states, grads


def _close(a, b, **tol):
    for u, v in zip(a, b, strict=True):
        if isinstance(u, (tuple, list)):
            _close(u, v, **tol)
        else:
            torch.testing.assert_close(u.cpu(), v.cpu(), **tol)


def _sequence(device, dtype=torch.float64):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, 3, dtype=dtype, generator=g).to(device).requires_grad_()
    lengths = torch.tensor([6, 2, 5, 6])
    reset = torch.zeros(4, 6, dtype=torch.bool)
    reset[2, 3] = True
    return x, lengths, reset.to(device)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("training", [True, False])
def test_fast_loop_equals_reference_loop_on_the_gpu(mode, trick, training):
    """In training too: both loops draw the same masks from the GPU's generator."""
    m = _module(mode, trick, dtype=torch.float64).to(DEVICE).train(training)
    x, lengths, reset = _sequence(DEVICE)
    results = []
    for fast in (True, False):
        m.fast = fast
        results.append(_run(m, x, lengths, reset))
    _close(results[0], results[1])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("trick", TRICKS)
def test_gpu_module_equals_cpu_module(mode, trick):
    """Eval mode (no random masks, whose generators differ between devices), float64."""
    cpu = _module(mode, trick, dtype=torch.float64).eval()
    gpu = _module(mode, trick, dtype=torch.float64).to(DEVICE).eval()
    x, lengths, reset = _sequence("cpu")
    xg = x.detach().to(DEVICE).requires_grad_()
    _close(_run(gpu, xg, lengths, reset.to(DEVICE)), _run(cpu, x, lengths, reset))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_tricks_off_equals_torch_nn_on_the_gpu(mode):
    """Every trick off, float32: the same numbers as torch.nn's (cuDNN) module with the same
    state_dict, gradients included."""
    m = _module(mode, "off").to(DEVICE)
    ref = getattr(torch.nn, mode)(3, 5, num_layers=2, batch_first=True).to(DEVICE)
    ref.load_state_dict(m.state_dict())
    x, _, _ = _sequence(DEVICE, torch.float32)
    ours, theirs = _run(m, x), _run(ref, x)
    _close(ours, theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("trick", ["off", "all"])
def test_step_equals_the_sequence_call_on_the_gpu(mode, trick):
    m = _module(mode, trick).to(DEVICE).eval()
    x = torch.randn(2, 7, 3, device=DEVICE)
    with torch.no_grad():
        full, _ = m(x)
        state, outs = None, []
        for t in range(7):
            y, state = m.step(x[:, t], state)
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=1e-5)


def test_compiled_kernels_are_not_used_off_the_cpu():
    x = torch.zeros(1, 1, device=DEVICE)
    assert fast_loop.compiled_steps(x) == (DEVICE == "cpu" and rnnkit.kernels.available())


def test_cli_trains_on_the_gpu_and_the_checkpoint_loads_on_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("t.txt").write_text("the cat sat on the mat. a dog ate the hat!\n" * 40)
    assert main(["train", "t.txt", *TINY, "--max-steps", "8", "--device", DEVICE,
                 "--name", "gpu"]) == 0
    ckpt = torch.load("runs/gpu/last.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 8
    # resume on the same device, then sample and evaluate on CPU from the GPU's checkpoint
    assert main(["train", "--resume", "runs/gpu", "--max-steps", "12", "--device", DEVICE]) == 0
    capsys.readouterr()
    assert main(["sample", "runs/gpu", "--prime", "the ", "--length", "10", "--device", "cpu",
                 "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("the ")
    assert main(["eval", "runs/gpu", "t.txt", "--device", "cpu"]) == 0
    assert "bits/char" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_a_strided_state_is_taken(mode):
    """cuDNN refuses a non-contiguous state ("rnn: hx is not contiguous"); a state sliced out
    of a larger tensor, as a caller carrying state between chunks may pass, must work."""
    m = _module(mode, "off").to(DEVICE)
    x = torch.randn(4, 6, 3, device=DEVICE)
    n = 2 if mode == "LSTM" else 1
    strided = [torch.randn(4, 2, 5, device=DEVICE).transpose(0, 1) for _ in range(n)]
    state = tuple(strided) if n == 2 else strided[0]
    out, _ = m(x, state)
    contiguous = tuple(s.contiguous() for s in strided) if n == 2 else strided[0].contiguous()
    torch.testing.assert_close(out, m(x, contiguous)[0])
