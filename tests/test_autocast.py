"""Mixed precision: rnnkit's modules under torch.autocast: CPU bfloat16, and CUDA float16 and
bfloat16 where a GPU is present.

The input projection runs in bfloat16 there; the recurrence (state, cell, layer-norm
statistics) stays float32, so the gradients stay close to float32's: each parameter's
gradient within 5% of the float32 gradient's norm (bfloat16 keeps 8 bits of mantissa, a
relative rounding of 0.4% per value, and the input projection's matmul sums 8 to 32 of them).
Compared in eval mode: in training the dropout and zoneout masks are drawn in the layer
input's dtype, so the two precisions draw different masks. Every trick off included: torch's
fused kernel would run the whole recurrence in reduced precision, so autocast takes the loop."""

import pytest
import torch

import rnnkit
from rnnkit import fast_loop

TOLERANCE = 0.05  # |g_bf16 - g_fp32| / |g_fp32| per parameter

MODELS = {
    "LSTM": lambda: rnnkit.LSTM(8, 16, num_layers=2),
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


PRECISIONS = {
    "cpu-bfloat16": ("cpu", torch.bfloat16),
    "cuda-float16": ("cuda", torch.float16),
    "cuda-bfloat16": ("cuda", torch.bfloat16),
}


def _grads(model, x, reset, autocast: bool, precision: str = "cpu-bfloat16"):
    device, dtype = PRECISIONS[precision]
    torch.manual_seed(1)
    model.zero_grad(set_to_none=True)
    with torch.autocast(device, dtype=dtype, enabled=autocast):
        out, state = model(x, reset=reset)
        states = state if isinstance(state, tuple) else (state,)
        loss = (out.float() * torch.linspace(-1, 1, 16, device=device)).sum() + sum(
            s.float().pow(2).sum() for s in states)
    loss.backward()
    return out, states, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("loop", ["sequence", "step", "reference"])
def test_autocast_runs_and_its_gradients_are_close_to_float32(precision, name, loop,
                                                              monkeypatch):
    device = PRECISIONS[precision][0]
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    if loop == "step":
        monkeypatch.setattr(fast_loop, "_sequence_ops", lambda x, cell: None)
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    model.fast = loop != "reference"  # the autograd loop over rnnkit.functional
    x = torch.randn(12, 4, 8, device=device)
    _, _, grads = _grads(model, x, None, True, precision)  # training mode
    assert all(g is not None and g.isfinite().all() for g in grads)
    model.eval()
    x = torch.randn(12, 4, 8, generator=torch.Generator().manual_seed(2)).to(device)  # [T, B, I]
    reset = torch.zeros(12, 4, dtype=torch.bool, device=device)
    reset[5, 1] = True
    out32, states32, grads32 = _grads(model, x, reset, False, precision)
    out16, states16, grads16 = _grads(model, x, reset, True, precision)
    for s in states16:
        assert s.dtype == torch.float32  # the recurrent state is not rounded to bfloat16
    torch.testing.assert_close(out16.float(), out32, atol=0.05, rtol=0)
    for (pname, _), g32, g16 in zip(model.named_parameters(), grads32, grads16):
        assert g16 is not None and g16.dtype == torch.float32, pname
        err = (g16 - g32).norm() / g32.norm().clamp_min(1e-12)
        assert err < TOLERANCE, f"{name} {pname}: relative gradient error {err:.4f}"
