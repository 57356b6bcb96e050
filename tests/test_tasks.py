"""The CLI's text head: dropout on the RNN output in training only."""

import pytest
import torch

from rnnkit.tasks import DropoutCategoricalHead


def test_head_dropout_in_training_only():
    torch.manual_seed(0)
    head = DropoutCategoricalHead(64, 5, dropout=0.5)
    h = torch.randn(4, 30, 64)
    head.eval()
    torch.testing.assert_close(head(h), head.proj(h))
    head.train()
    seen = []
    head.proj.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    head(h)
    ratio = seen[0] / h
    dropped = ratio == 0
    assert 0.4 < dropped.float().mean() < 0.6  # about p of the units
    torch.testing.assert_close(ratio[~dropped], torch.full_like(ratio[~dropped], 2.0))


def test_head_dropout_rate_checked():
    with pytest.raises(ValueError, match="dropout must be a probability in \\[0, 1\\), got 1.5"):
        DropoutCategoricalHead(8, 3, dropout=1.5)
