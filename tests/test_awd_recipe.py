"""The AWD-LSTM switches together (Merity et al. 2018): fast loop equals the reference loop,
gradients check numerically, and the fused kernel stays where no step trick is on."""

import pytest
import torch

import rnnkit
from rnnkit import rnn as rnn_module

MODES = ["LSTM", "GRU"]
AWD = dict(weight_drop=0.3, dropout=0.3, dropout_mode="locked", input_dropout=0.2,
           output_dropout=0.2, recurrent_dropout=0.3, recurrent_dropout_mode="per_sequence",
           init="orthogonal")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("training", [True, False])
def test_fast_loop_equals_reference_loop_with_every_awd_switch(mode, training):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, batch_first=True, layer_norm=True, dtype=torch.float64,
                              **AWD).train(training)
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 6])
    reset = torch.zeros(4, 6, dtype=torch.bool)
    reset[2, 3] = reset[0, 4] = True
    results = []
    for fast in (True, False):
        m.fast = fast
        torch.manual_seed(1)
        out, state = m(x, lengths=lengths)
        out2, state = m(x, state, lengths=lengths, reset=reset)  # held masks, resets
        states = state if isinstance(state, tuple) else (state,)
        loss = out.pow(2).sum() + out2.pow(2).sum() + sum(s.sin().sum() for s in states)
        results.append((out2, torch.autograd.grad(loss, [x, *m.parameters()])))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fast", [True, False])
def test_gradcheck_awd_switches(mode, fast):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(2, 3, 2, dtype=torch.float64, fast=fast, **AWD)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in m.named_parameters()]

    def f(x, *ps):
        torch.manual_seed(3)  # the same masks at every evaluation
        m.sequence_masks.clear()
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *m.parameters()))


@pytest.mark.parametrize("mode", ["LSTM"])
def test_weight_drop_and_locked_dropout_keep_the_fused_kernel(mode, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the per-step loop ran where the fused kernel was expected")
    monkeypatch.setattr(rnn_module._RecurrentBase, "_loop_forward", fail)
    kw = {k: v for k, v in AWD.items() if not k.startswith("recurrent")}
    m = getattr(rnnkit, mode)(3, 5, 2, **kw)
    out, _ = m(torch.randn(6, 2, 3), lengths=torch.tensor([6, 3]))
    out.sum().backward()
