"""rnnkit.regularizers.bernoulli_: the Bernoulli masks of dropout, recurrent dropout and
zoneout (compiled counter-based generator on CPU, uniform_() < p elsewhere)."""

from __future__ import annotations

import pytest
import torch

from rnnkit import kernels
from rnnkit.regularizers import bernoulli_, dropout_mask, zoneout_keep

needs_kernels = pytest.mark.skipif(not kernels.available(),
                                   reason="the C++ kernels did not build on this machine")


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_draws_are_bernoulli_p(p, dtype):
    n = 200_001  # odd: the last element takes a pair of its own
    m = bernoulli_(torch.empty(n, dtype=dtype), p).double()
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(m.mean().item() - p) < 5 * sigma
    # neighbours (the two halves of one 64-bit draw, and adjacent pairs) are uncorrelated
    for lag in (1, 2, 3):
        a, b = m[:-lag] - p, m[lag:] - p
        corr = (a * b).mean().item() / (p * (1 - p))
        assert abs(corr) < 5 / n ** 0.5, (lag, corr)


def test_edges_and_dtypes():
    assert bernoulli_(torch.empty(1000), 0.0).sum() == 0
    assert bernoulli_(torch.empty(1000), 1.0).sum() == 1000
    assert bernoulli_(torch.empty(0), 0.5).numel() == 0
    assert bernoulli_(torch.empty(1), 1.0).item() == 1.0
    strided = torch.empty(100, 4)[:, 0]  # not contiguous: the uniform_ path
    assert set(bernoulli_(strided, 0.5).unique().tolist()) <= {0.0, 1.0}


def test_manual_seed_repeats_and_calls_differ():
    torch.manual_seed(3)
    a = bernoulli_(torch.empty(5001), 0.4).clone()
    b = bernoulli_(torch.empty(5001), 0.4).clone()
    torch.manual_seed(3)
    again = bernoulli_(torch.empty(5001), 0.4)
    assert torch.equal(a, again)
    assert not torch.equal(a, b)
    # a prefix of a longer draw with the same seed is the shorter draw: element i depends
    # only on (seed, i)
    torch.manual_seed(3)
    longer = bernoulli_(torch.empty(9000), 0.4)
    assert torch.equal(longer[:5000], a[:5000])


@needs_kernels
def test_same_mask_on_any_number_of_threads():
    threads = torch.get_num_threads()
    try:
        masks = []
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            masks.append(bernoulli_(torch.empty(300_000), 0.25).clone())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(masks[0], masks[1])


def test_dropout_and_zoneout_use_it():
    like = torch.empty(0)
    torch.manual_seed(1)
    drop = dropout_mask((64, 128), 0.25, True, like).clone()
    torch.manual_seed(1)
    assert torch.equal(drop, bernoulli_(torch.empty(64, 128), 0.75) / 0.75)
    torch.manual_seed(2)
    keep = zoneout_keep((64, 128), 0.1, True, like).clone()
    torch.manual_seed(2)
    assert torch.equal(keep, bernoulli_(torch.empty(64, 128), 0.1))
    assert dropout_mask((4, 4), 0.25, False, like) is None
    assert zoneout_keep((4, 4), 0.1, False, like).item() == pytest.approx(0.1)
