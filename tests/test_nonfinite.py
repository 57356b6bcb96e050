"""NaN and infinities in the input come out of every path as they do from torch.nn and the
reference loop: the compiled step kernels' fast exp must not turn NaN into finite numbers."""

import pytest
import torch

import rnnkit
from rnnkit import fast_loop, kernels

NAN, INF = float("nan"), float("inf")

MODELS = {
    "GRU": lambda **kw: rnnkit.GRU(3, 13, num_layers=2, **kw),
    "GRU layer_norm": lambda **kw: rnnkit.GRU(3, 13, layer_norm=True, **kw),
    "GRU zoneout": lambda **kw: rnnkit.GRU(3, 13, zoneout=0.3, **kw),
    "LSTM layer_norm": lambda **kw: rnnkit.LSTM(3, 13, num_layers=2, layer_norm=True, **kw),
    "LSTM zoneout": lambda **kw: rnnkit.LSTM(3, 13, zoneout_cell=0.3, zoneout_hidden=0.2, **kw),
    "LSTM recurrent_dropout": lambda **kw: rnnkit.LSTM(3, 13, recurrent_dropout=0.2, **kw),
}


def _nonfinite_input(dtype: torch.dtype) -> torch.Tensor:
    """[T, B, 3] with NaN in row 0, +inf in row 1, -inf in row 2 (one feature each, so the
    gates see +-inf, not inf - inf) and row 3 finite, at different steps."""
    x = torch.randn(7, 4, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x[2, 0, 1] = NAN
    x[3, 1, 0] = INF
    x[4, 2, 2] = -INF
    return x


def _assert_same_nonfinite(a: torch.Tensor, b: torch.Tensor) -> None:
    assert torch.equal(a.isnan(), b.isnan()), "NaN positions differ"
    assert torch.equal(a.isposinf(), b.isposinf()) and torch.equal(a.isneginf(), b.isneginf())
    torch.testing.assert_close(a, b, equal_nan=True, atol=1e-5, rtol=1e-5)


def _run(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out, state = model(x)
    return [out, *(state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MODELS))
def test_nan_and_inf_propagate_like_the_reference_loop(name, dtype):
    x = _nonfinite_input(dtype)
    torch.manual_seed(0)
    fast = MODELS[name](fast=True, dtype=dtype).eval()
    torch.manual_seed(0)
    reference = MODELS[name](fast=False, dtype=dtype).eval()
    got, want = _run(fast, x), _run(reference, x)
    assert want[0][:, 0].isnan().any(), "the NaN row must be NaN in the reference"
    assert not want[0][:, 3].isnan().any(), "the finite row stays finite"
    for a, b in zip(got, want):
        _assert_same_nonfinite(a, b)


@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
def test_nan_and_inf_propagate_like_torch_nn(mode):
    """Every trick off (the GRU runs the compiled steps on CPU, the LSTM torch's kernel)."""
    x = _nonfinite_input(torch.float32)
    torch.manual_seed(0)
    ours = getattr(rnnkit, mode)(3, 13, num_layers=2)
    theirs = getattr(torch.nn, mode)(3, 13, num_layers=2)
    theirs.load_state_dict(ours.state_dict())
    for a, b in zip(_run(ours, x), _run(theirs, x)):
        _assert_same_nonfinite(a, b)


@pytest.mark.skipif(not kernels.available(), reason="the C++ step kernels did not build")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_kernel_activations_at_infinity_and_nan(dtype, monkeypatch):
    """A GRU step with zero recurrent weights and state gives h = (1 - z) * tanh(x_n) with
    z = sigmoid(x_z): sigmoid(-inf) = 0, sigmoid(+inf) = 1, tanh(+-inf) = +-1 and NaN stays NaN,
    on full vectors and on the tail of a row (H = 19) alike; the eager step agrees."""
    H = 19
    x_n = torch.tensor([INF, -INF, NAN, 0.5, 100.0, -100.0, 1e30, -1e30] + [INF] * 8
                       + [0.3] * 3, dtype=dtype)
    x_z = torch.full((H,), -INF, dtype=dtype)
    x_z[-3:] = torch.tensor([INF, NAN, 200.0], dtype=dtype)
    gates = torch.cat([torch.zeros(H, dtype=dtype), x_z, x_n]).view(1, 1, 3 * H)
    args = (gates, torch.zeros(1, H, dtype=dtype), torch.zeros(3 * H, H, dtype=dtype))

    _, h = fast_loop.gru_layer(*args)
    assert h[0, :2].tolist() == [1.0, -1.0] and h[0, 2].isnan()
    assert abs(h[0, 3].item() - torch.tanh(torch.tensor(0.5)).item()) < 1e-6
    assert h[0, 4:16].tolist() == [1.0, -1.0, 1.0, -1.0] + [1.0] * 8
    assert h[0, -3] == 0.0 and h[0, -2].isnan() and h[0, -1] == 0.0  # z = 1 keeps h = 0

    monkeypatch.setenv("RNNKIT_KERNELS", "0")  # the eager loop
    _, eager = fast_loop.gru_layer(*args)
    torch.testing.assert_close(h, eager, equal_nan=True, atol=1e-6, rtol=0)
