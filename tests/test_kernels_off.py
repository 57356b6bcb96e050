"""The same numbers with and without the compiled kernels (``RNNKIT_KERNELS=0``), dropout
masks included: the eager twin of the counter-based mask generator draws the compiled one's
bits, so a seeded training run gives one loss curve either way."""

import pytest
import torch

import rnnkit
from rnnkit import kernels, regularizers

needs_kernels = pytest.mark.skipif(not kernels.available(),
                                   reason="the C++ step kernels did not build")


@needs_kernels
@pytest.mark.parametrize("n", [1, 2, 7, 1000, (1 << 17) + 3])  # odd tails, and two chunks
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_eager_mask_generator_draws_the_kernels_bits(n, dtype):
    for seed in (0, 12345, (1 << 63) - 1):
        for p in (0.0, 0.3, 0.9, 1.0):
            compiled, eager = torch.empty(n, dtype=dtype), torch.full((n,), 7.0, dtype=dtype)
            torch.ops.rnnkit.bernoulli_fill(compiled, p, seed)
            regularizers.splitmix_bernoulli_(eager, p, seed)
            assert torch.equal(compiled, eager), (seed, p)


def test_the_eager_mask_generator_fills_strided_tensors_and_keeps_the_rate():
    out = torch.empty(64, 300).t()  # not contiguous
    regularizers.splitmix_bernoulli_(out, 0.25, 99)
    flat = torch.empty(300 * 64)
    regularizers.splitmix_bernoulli_(flat, 0.25, 99)
    assert torch.equal(out, flat.view(300, 64))
    assert abs(flat.mean().item() - 0.25) < 0.01


def _loss_curve(mode: str) -> list[float]:
    """A seeded 20-step training run with every random trick of the recurrent core."""
    torch.manual_seed(0)
    zone = dict(zoneout_cell=0.2, zoneout_hidden=0.1) if mode == "LSTM" else dict(zoneout=0.2)
    model = getattr(rnnkit, mode)(3, 8, num_layers=2, batch_first=True, dropout=0.3,
                                  input_dropout=0.1, output_dropout=0.2, recurrent_dropout=0.25,
                                  layer_norm=True, **zone)
    head = torch.nn.Linear(8, 1)
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    x, y = torch.randn(4, 12, 3), torch.randn(4, 12, 1)
    losses = []
    for _ in range(20):
        out, _ = model(x)
        loss = torch.nn.functional.mse_loss(head(out), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@needs_kernels
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_a_seeded_training_run_gives_the_same_loss_curve_without_the_kernels(mode,
                                                                             monkeypatch):
    with_kernels = _loss_curve(mode)
    monkeypatch.setenv("RNNKIT_KERNELS", "0")
    without = _loss_curve(mode)
    # float32: the kernels' vector tanh/sigmoid and torch's differ by a few ulp per step
    torch.testing.assert_close(without, with_kernels, rtol=1e-4, atol=1e-6)
    assert len(set(with_kernels)) == 20  # it trains
