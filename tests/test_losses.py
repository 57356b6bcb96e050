import math

import pytest
import torch

from rnnkit.losses import masked_step_sum, normalized_sequence_loss

nan = math.nan


def test_normalized_loss_equals_formula_on_hand_made_masked_batch():
    per_step = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 5.0, nan, 9.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    # longest sequence 3 steps: (sum_row / 3) averaged over 2 rows; padding (NaN, 9) ignored
    expected = ((1 + 2 + 3) / 3 + (4 + 5) / 3) / 2
    assert normalized_sequence_loss(per_step, mask).item() == pytest.approx(expected)
    assert normalized_sequence_loss(per_step, mask, max_length=6).item() == pytest.approx(
        ((1 + 2 + 3) / 6 + (4 + 5) / 6) / 2
    )


def test_normalized_loss_without_mask_is_mean_of_time_sums():
    per_step = torch.arange(12.0).view(3, 4)
    assert normalized_sequence_loss(per_step).item() == pytest.approx(per_step.sum(1).mean() / 4)


def test_masked_steps_get_no_gradient():
    per_step = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    mask = torch.tensor([[True, False], [True, True]])
    normalized_sequence_loss(per_step, mask).backward()
    assert per_step.grad.tolist() == [[0.25, 0.0], [0.25, 0.25]]


def test_all_masked_batch_gives_zero_not_nan():
    per_step = torch.ones(2, 3)
    assert normalized_sequence_loss(per_step, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_masked_step_sum_gives_loss_per_step_independent_of_scaling():
    per_step = torch.tensor([[1.0, 2.0, nan], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    total, count = masked_step_sum(per_step, mask)
    assert (total / count).item() == pytest.approx(15 / 5)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"per_step must have shape \[B, T\], got \(3,\)"):
        normalized_sequence_loss(torch.ones(3))
    with pytest.raises(
        ValueError, match=r"mask must have the shape of per_step \(2, 3\), got \(2, 2\)"
    ):
        normalized_sequence_loss(torch.ones(2, 3), torch.ones(2, 2, dtype=torch.bool))
