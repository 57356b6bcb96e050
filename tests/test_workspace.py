"""The buffer pool of the fast loops: reuse only what nothing holds any more."""

import torch

import rnnkit
from rnnkit import workspace

BIG = (512, 1024)  # 2 MiB of float32, above workspace.MIN_BYTES


def test_idle_buffer_is_reused():
    workspace.clear()
    like = torch.empty(0)
    a = workspace.empty(BIG, like)
    address = a.data_ptr()
    del a
    assert workspace.empty(BIG, like).data_ptr() == address


def test_buffer_with_a_live_view_is_not_reused():
    workspace.clear()
    like = torch.empty(0)
    a = workspace.empty(BIG, like).fill_(1.0)
    row = a[3]
    del a
    b = workspace.empty(BIG, like).fill_(2.0)
    assert torch.equal(row, torch.ones(BIG[1]))
    del b


def test_small_and_shaped_requests():
    like = torch.empty(0, dtype=torch.float64)
    small = workspace.empty((3, 4), like)
    assert small.shape == (3, 4) and small.dtype == torch.float64
    shaped = workspace.empty((2, *BIG), like)
    assert shaped.shape == (2, *BIG) and shaped.is_contiguous()


def test_outputs_and_retained_graphs_survive_later_calls():
    """Two forward passes kept alive at once, and a graph backpropagated twice, must not share
    buffers: each result equals the same computation done alone."""
    torch.manual_seed(0)
    lstm = rnnkit.LSTM(8, 128, layer_norm=True, zoneout_cell=0.2, zoneout_hidden=0.2)
    x1, x2 = torch.randn(40, 16, 8), torch.randn(40, 16, 8)
    torch.manual_seed(1)
    alone, _ = lstm(x1)
    alone = alone.detach().clone()
    torch.manual_seed(1)
    out1, _ = lstm(x1)
    out2, _ = lstm(x2)
    assert torch.equal(out1.detach(), alone)
    loss = out1.square().sum() + out2.sum()
    loss.backward(retain_graph=True)
    first = [p.grad.clone() for p in lstm.parameters()]
    lstm.zero_grad()
    lstm(x2)[0].sum().backward()  # a third call in between
    lstm.zero_grad()
    loss.backward()
    for g, p in zip(first, lstm.parameters()):
        torch.testing.assert_close(p.grad, g)


def test_a_call_under_inference_mode_leaves_no_inference_buffers():
    """Evaluating under torch.inference_mode, then training, works and gives the gradients of
    a model that never ran under it: buffers made in inference mode (inference tensors, which
    autograd can neither save nor write outside it) are not kept for later calls."""
    torch.manual_seed(0)
    x = torch.randn(16, 40, 8)
    for mode in ("LSTM", "GRU"):
        m = getattr(rnnkit, mode)(8, 128, layer_norm=True, batch_first=True)
        m(x)[0].sum().backward()
        expected = [p.grad.clone() for p in m.parameters()]
        m.zero_grad()
        workspace.clear()  # what the inference call asks for is made under inference mode
        with torch.inference_mode():
            m(x)
        m(x)[0].sum().backward()
        for g, p in zip(expected, m.parameters()):
            torch.testing.assert_close(p.grad, g)
