"""Mixed precision: rnnkit's fast loop under torch.autocast('cpu', dtype=torch.bfloat16).

The input projection runs in bfloat16 there; the recurrence (state, cell, layer-norm
statistics) stays float32, so the gradients stay close to float32's: each parameter's
gradient within 5% of the float32 gradient's norm (bfloat16 keeps 8 bits of mantissa, a
relative rounding of 0.4% per value, and the input projection's matmul sums 8 to 32 of them).
Compared in eval mode: in training the dropout and zoneout masks are drawn in the layer
input's dtype, so the two precisions draw different masks."""

import pytest
import torch

import rnnkit
from rnnkit import fast_loop

TOLERANCE = 0.05  # |g_bf16 - g_fp32| / |g_fp32| per parameter

MODELS = {
    "GRU": lambda: rnnkit.GRU(8, 16),
    "GRU every trick": lambda: rnnkit.GRU(8, 16, num_layers=2, layer_norm=True, zoneout=0.2,
                                          recurrent_dropout=0.2, learned_initial_state=True,
                                          input_layers=1, sum_outputs=True),
    "LSTM layer_norm": lambda: rnnkit.LSTM(8, 16, layer_norm=True),
    "LSTM every trick": lambda: rnnkit.LSTM(8, 16, num_layers=2, layer_norm=True,
                                            zoneout_cell=0.2, zoneout_hidden=0.1,
                                            recurrent_dropout=0.2, learned_initial_state=True,
                                            input_layers=1, sum_outputs=True),
}


def _grads(model, x, reset, autocast: bool):
    torch.manual_seed(1)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out, state = model(x, reset=reset)
        states = state if isinstance(state, tuple) else (state,)
        loss = (out.float() * torch.linspace(-1, 1, 16)).sum() + sum(
            s.float().pow(2).sum() for s in states)
    loss.backward()
    return out, states, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("loop", ["sequence", "step", "reference"])
def test_bf16_autocast_runs_and_its_gradients_are_close_to_float32(name, loop, monkeypatch):
    if loop == "step":
        monkeypatch.setattr(fast_loop, "_sequence_ops", lambda x, cell: None)
    torch.manual_seed(0)
    model = MODELS[name]()
    model.fast = loop != "reference"  # the autograd loop over rnnkit.functional
    _, _, grads = _grads(model, torch.randn(12, 4, 8), None, autocast=True)  # training mode
    assert all(g is not None and g.isfinite().all() for g in grads)
    model.eval()
    x = torch.randn(12, 4, 8, generator=torch.Generator().manual_seed(2))  # [T, B, I]
    reset = torch.zeros(12, 4, dtype=torch.bool)
    reset[5, 1] = True
    out32, states32, grads32 = _grads(model, x, reset, autocast=False)
    out16, states16, grads16 = _grads(model, x, reset, autocast=True)
    for s in states16:
        assert s.dtype == torch.float32  # the recurrent state is not rounded to bfloat16
    torch.testing.assert_close(out16.float(), out32, atol=0.05, rtol=0)
    for (pname, _), g32, g16 in zip(model.named_parameters(), grads32, grads16):
        assert g16 is not None and g16.dtype == torch.float32, pname
        err = (g16 - g32).norm() / g32.norm().clamp_min(1e-12)
        assert err < TOLERANCE, f"{name} {pname}: relative gradient error {err:.4f}"
