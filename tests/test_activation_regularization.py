"""AR and TAR (Merity et al. 2018, sec. 4.6) against their formulas, with padding masks."""

import math

import pytest
import torch

from rnnkit.losses import activation_regularization, temporal_activation_regularization


def test_ar_and_tar_equal_awd_lstm_formulas():
    torch.manual_seed(0)
    h = torch.randn(3, 5, 4)  # [B, T, H]
    assert activation_regularization(h, 2.0).item() == pytest.approx(
        2.0 * (h ** 2).sum().item() / (3 * 5 * 4))
    diffs = sum(((h[:, t] - h[:, t - 1]) ** 2).sum().item() for t in range(1, 5))
    assert temporal_activation_regularization(h, 1.0).item() == pytest.approx(
        diffs / (3 * 4 * 4))
    # time first, as awd-lstm-lm's tensors are: the same numbers
    ht = h.transpose(0, 1)
    assert activation_regularization(ht, 2.0, time_dim=0).item() == pytest.approx(
        activation_regularization(h, 2.0).item())
    assert temporal_activation_regularization(ht, 1.0, time_dim=0).item() == pytest.approx(
        temporal_activation_regularization(h, 1.0).item())


def test_masks_leave_out_padded_steps_even_nan():
    h = torch.tensor([[[1.0], [2.0], [4.0]], [[3.0], [math.nan], [math.nan]]])  # B=2, T=3, H=1
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert activation_regularization(h, 1.0, mask).item() == pytest.approx(
        (1 + 4 + 16 + 9) / 4)
    # pairs with both steps valid: row 0's (1, 2) and (2, 4); row 1 has none
    assert temporal_activation_regularization(h, 3.0, mask).item() == pytest.approx(
        3.0 * (1 + 4) / 2)
    ht, mt = h.transpose(0, 1), mask.t()
    assert temporal_activation_regularization(ht, 3.0, mt, time_dim=0).item() == pytest.approx(
        7.5)


def test_gradients_and_edge_cases():
    h = torch.randn(2, 1, 3, requires_grad=True)
    assert temporal_activation_regularization(h, 1.0).item() == 0.0
    activation_regularization(h, 0.5).backward()
    torch.testing.assert_close(h.grad, 0.5 * 2 * h.detach() / h.numel())
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 1\)"):
        activation_regularization(h, 1.0, torch.ones(1, 2, dtype=torch.bool))
