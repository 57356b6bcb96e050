"""rnnkit.dispatch.route: which path a call takes and why, and that forward runs that path."""

import pytest
import torch

import rnnkit
from rnnkit import dispatch, fast_loop, kernels
from rnnkit import rnn as rnn_module

needs_kernels = pytest.mark.skipif(not kernels.available(),
                                   reason="the C++ step kernels did not build")

# (cell, module arguments, training, grad, steps) -> (path, a phrase of the reason)
CASES = [
    ("LSTM", {}, False, False, 1, dispatch.STREAMING_CELL, "one eval step"),
    ("LSTM", dict(layer_norm=True), False, False, 1, dispatch.STREAMING_STEP, "layer norm"),
    ("LSTM", {}, True, True, 6, dispatch.TORCH_KERNEL, "every step trick off"),
    ("LSTM", dict(layer_norm=True), True, True, 6, dispatch.COMPILED_LOOP, "layer_norm"),
    ("LSTM", dict(zoneout=0.2, layer_norm=True), True, True, 6, dispatch.COMPILED_LOOP,
     "layer_norm"),  # the first reason that applies
    ("GRU", dict(zoneout=0.2), True, True, 6, dispatch.COMPILED_LOOP, "zoneout"),
    ("GRU", dict(recurrent_dropout=0.2), True, True, 6, dispatch.COMPILED_LOOP,
     "recurrent_dropout in training"),
    ("GRU", dict(recurrent_dropout=0.2), False, True, 6, dispatch.COMPILED_LOOP,
     "a GRU on CPU"),
    ("GRU", {}, True, True, 6, dispatch.COMPILED_LOOP, "a GRU on CPU"),
    ("LSTM", dict(layer_norm=True, fast=False), True, True, 6, dispatch.REFERENCE_LOOP,
     "layer_norm; fast=False"),
    ("LSTM", dict(recurrent_dropout=0.2, recurrent_dropout_mode="per_step"), True, True, 6,
     dispatch.REFERENCE_LOOP, "per-step recurrent-dropout masks"),
]


def _call(cell, kw, training, grad, steps):
    torch.manual_seed(0)
    m = getattr(rnnkit, cell)(3, 4, batch_first=True, **kw).train(training)
    return m, torch.randn(2, steps, 3)


@needs_kernels
@pytest.mark.parametrize("cell,kw,training,grad,steps,path,reason", CASES)
def test_route_names_the_path_forward_runs(cell, kw, training, grad, steps, path, reason,
                                           monkeypatch):
    m, x = _call(cell, kw, training, grad, steps)
    with torch.set_grad_enabled(grad):
        route = m.route(x)
        assert route.path == path and reason in route.reason, route
        ran = []
        for name in ("_streaming_forward", "_fused_forward", "_reference_layer"):
            real = getattr(m, name)
            monkeypatch.setattr(m, name, lambda *a, _n=name, _r=real, **k: ran.append(_n)
                                or _r(*a, **k))
        real_seq = fast_loop._sequence_ops
        monkeypatch.setattr(fast_loop, "_sequence_ops",
                            lambda *a: ran.append("sequence ops") or real_seq(*a))
        m(x)
    expected = {dispatch.STREAMING_CELL: "_streaming_forward",
                dispatch.STREAMING_STEP: "_streaming_forward",
                dispatch.TORCH_KERNEL: "_fused_forward",
                dispatch.COMPILED_LOOP: "sequence ops",
                dispatch.REFERENCE_LOOP: "_reference_layer"}[path]
    assert ran and set(ran) == {expected}


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_without_kernels_the_route_is_the_eager_loop_and_says_why(cell, monkeypatch):
    monkeypatch.setenv("RNNKIT_KERNELS", "0")
    m, x = _call(cell, dict(zoneout=0.1), True, True, 5)
    assert m.route(x) == dispatch.Route(dispatch.EAGER_LOOP, "zoneout; RNNKIT_KERNELS=0")
    # the loop runs in the weights' precision: a bfloat16 input alone is promoted
    assert m.route(x.bfloat16()).reason == "zoneout; RNNKIT_KERNELS=0"
    assert m.bfloat16().route(x.bfloat16()).reason == \
        "zoneout; no compiled kernels for torch.bfloat16"


def test_a_reset_at_the_first_step_only_keeps_torchs_kernel():
    m, x = _call("LSTM", {}, True, True, 4)
    first = torch.zeros(2, 4, dtype=torch.bool)
    first[1, 0] = True
    assert m.route(x, reset=first).path == dispatch.TORCH_KERNEL
    later = first.clone()
    later[0, 2] = True
    assert m.route(x, reset=later).reason.startswith("resets inside the sequence")


def test_step_input_is_routed_as_one_step():
    m, x = _call("GRU", {}, False, False, 1)
    with torch.no_grad():
        assert m.route(x[:, 0]).path == dispatch.STREAMING_CELL


@needs_kernels
def test_the_double_backward_error_says_which_path_and_why():
    m = rnnkit.GRU(3, 5, batch_first=True).double()  # every trick off: a GRU on CPU
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    out, _ = m(x)
    with pytest.raises(RuntimeError, match=r"took the fast loop, compiled \(a GRU on CPU.*"
                                           r"fast=False for double backward"):
        torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)


def test_forward_has_no_other_dispatch_predicate():
    """The 7-way needs_loop predicate is gone: forward asks dispatch.route."""
    import inspect

    source = inspect.getsource(rnn_module._RecurrentBase.forward)
    assert "needs_loop" not in source and "dispatch.route" in source
