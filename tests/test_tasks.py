"""The CLI's text model parts: dropout on the embeddings and on the RNN output, in training
only; AdamW's decoupled weight decay from --weight-decay."""

import pytest
import torch
from torch import nn

from rnnkit.cli import train as cli_train
from rnnkit.cli.settings import TrainSettings
from rnnkit.heads import CategoricalHead
from rnnkit.models import DropoutEmbedding
from rnnkit.train.trainer import build_optimizer


def assert_inverted_dropout(dropped_input: torch.Tensor, clean: torch.Tensor, p: float) -> None:
    ratio = dropped_input / clean
    dropped = ratio == 0
    assert p - 0.1 < dropped.float().mean() < p + 0.1  # about p of the units
    torch.testing.assert_close(ratio[~dropped], torch.full_like(ratio[~dropped], 1 / (1 - p)))


def test_head_dropout_in_training_only():
    torch.manual_seed(0)
    head = CategoricalHead(64, 5, dropout=0.5)
    h = torch.randn(4, 30, 64)
    head.eval()
    torch.testing.assert_close(head(h), head.proj(h))
    head.train()
    seen = []
    head.proj.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    head(h)
    assert_inverted_dropout(seen[0], h, 0.5)


def test_embedding_dropout_in_training_only():
    torch.manual_seed(0)
    emb = DropoutEmbedding(7, 32, dropout=0.25)
    tokens = torch.randint(0, 7, (4, 50))
    clean = nn.functional.embedding(tokens, emb.weight)
    emb.eval()
    torch.testing.assert_close(emb(tokens), clean)
    emb.train()
    assert_inverted_dropout(emb(tokens), clean, 0.25)
    # the same parameters and state_dict as nn.Embedding, so runs saved before it still load
    assert list(emb.state_dict()) == list(nn.Embedding(7, 32).state_dict()) == ["weight"]


@pytest.mark.parametrize("cls", [CategoricalHead, DropoutEmbedding])
def test_dropout_rate_checked(cls):
    with pytest.raises(ValueError, match="dropout must be a probability in \\[0, 1\\), got 1.5"):
        cls(8, 3, dropout=1.5)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_weight_decay_is_decoupled_and_off_means_adam(weight_decay):
    s = TrainSettings(lr=0.01, weight_decay=weight_decay)
    config = cli_train.trainer_config(s, "cpu", max_steps=10)
    p = nn.Parameter(torch.randn(5))
    before = p.detach().clone()
    optimizer = build_optimizer([p], config)
    assert type(optimizer) is (torch.optim.AdamW if weight_decay else torch.optim.Adam)
    p.grad = torch.zeros(5)  # Adam's own step is then 0: only the decay moves p
    optimizer.step()
    torch.testing.assert_close(p.detach(), before * (1 - 0.01 * weight_decay))


def test_text_model_takes_both_dropout_rates():
    from rnnkit.data.text import CharVocab
    from rnnkit.tasks.text import TextTask

    s = TrainSettings(hidden_size=16, embed_dim=8, dropout=0.3, embed_dropout=0.2)
    model = TextTask(CharVocab.from_texts(["abc"])).build_model(s, [])
    assert (model.encoder.dropout, model.head.dropout) == (0.2, 0.3)
