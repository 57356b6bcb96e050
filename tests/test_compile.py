"""torch.compile of rnnkit's modules with every trick off: same outputs and gradients as
eager. The aot_eager backend traces like inductor (and failed like it on torch's fused LSTM
kernel) without compiling C++, so the test stays fast."""

import warnings

import pytest
import torch

import rnnkit

CASES = {
    "LSTM": lambda: rnnkit.LSTM(3, 5, num_layers=2),
    "LSTM sum_outputs": lambda: rnnkit.LSTM(3, 5, num_layers=2, sum_outputs=True),
    "GRU": lambda: rnnkit.GRU(3, 5, num_layers=2),  # on CPU the fast loop's compiled steps
    "GRU fast=False": lambda: rnnkit.GRU(3, 5, num_layers=2, fast=False),  # torch's kernel
}


@pytest.mark.parametrize("name", list(CASES))
def test_torch_compile_matches_eager(name):
    torch.manual_seed(0)
    model = CASES[name]()
    x = torch.randn(7, 4, 3)
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamo's own notes about graph breaks
        compiled = torch.compile(model, backend="aot_eager")
        got_out, got_state = compiled(x)
        got_grads = torch.autograd.grad(got_out.square().sum(), list(model.parameters()))
    want_out, want_state = model(x)
    want_grads = torch.autograd.grad(want_out.square().sum(), list(model.parameters()))
    torch.testing.assert_close(got_out, want_out)
    torch.testing.assert_close(got_state, want_state)
    for got, want in zip(got_grads, want_grads):
        torch.testing.assert_close(got, want)
