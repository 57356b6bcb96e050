"""Embedding dropout (Gal & Ghahramani 2016, sec. 4.2; awd-lstm-lm's embedded_dropout):
whole words dropped, the rest scaled by 1/(1-p)."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.regularizers import embedding_dropout


def test_a_dropped_word_is_zero_everywhere_it_occurs():
    torch.manual_seed(0)
    V, E, p = 10, 6, 0.5
    w = torch.randn(V, E, requires_grad=True)
    tokens = torch.randint(V, (4, 30))  # every word occurs many times
    out = F.embedding(tokens, embedding_dropout(w, p, training=True))
    dropped = kept = 0
    for v in tokens.unique().tolist():
        vecs = out[tokens == v]  # every occurrence of word v in the batch
        if (vecs == 0).all():
            dropped += 1
        else:
            torch.testing.assert_close(vecs, (w[v] / (1 - p)).expand_as(vecs).detach())
            kept += 1
    assert dropped and kept
    out.sum().backward()
    zero_rows = (w.grad == 0).all(1)
    assert zero_rows[tokens.unique()].sum() == dropped  # dropped words get no gradient


def test_eval_and_zero_rate_are_the_identity_and_bad_rates_are_named():
    w = torch.randn(5, 3)
    assert embedding_dropout(w, 0.5, training=False) is w
    assert embedding_dropout(w, 0.0, training=True) is w
    with pytest.raises(ValueError, match="embedding dropout p must be .*got 1.0"):
        embedding_dropout(w, 1.0, training=True)
