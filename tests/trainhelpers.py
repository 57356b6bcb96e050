"""Small models and data shared by the trainer tests (not a test module)."""

from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from rnnkit.train import TrainConfig

# Two threads on a shared two-core machine make tiny ops ~100x slower (spinning workers).
torch.set_num_threads(1)


class TinyLSTM(nn.Module):
    """Embedding -> torch.nn.LSTM (batch_first) -> linear logits; forward(inputs, state)."""

    def __init__(self, vocab: int = 7, hidden: int = 12, seed: int = 0, dropout: float = 0.0):
        super().__init__()
        gen_state = torch.get_rng_state()
        torch.manual_seed(seed)
        self.emb = nn.Sequential(nn.Embedding(vocab, hidden), nn.Dropout(dropout))
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)
        torch.set_rng_state(gen_state)

    def forward(self, inputs: Tensor, state=None):
        out, state = self.rnn(self.emb(inputs), state)
        return self.head(out), state


class ContinuousLSTM(nn.Module):
    """Float inputs [B, T, F] -> LSTM -> linear [B, T, F]; takes float embeddings too."""

    def __init__(self, features: int = 3, hidden: int = 10, seed: int = 0) -> None:
        super().__init__()
        gen_state = torch.get_rng_state()
        torch.manual_seed(seed)
        self.rnn = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, features)
        torch.set_rng_state(gen_state)

    def forward(self, inputs: Tensor, state=None):
        out, state = self.rnn(inputs, state)
        return self.head(out), state


def text_ids(n: int = 2000, vocab: int = 7, seed: int = 0) -> Tensor:
    """A learnable integer sequence: a noisy repeating pattern."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.arange(n) % vocab
    noise = torch.randint(0, vocab, (n,), generator=gen)
    keep = torch.rand(n, generator=gen) < 0.8
    return torch.where(keep, base, noise)


def small_config(**overrides) -> TrainConfig:
    """A config for fast tests: 4 streams, chunks of 10, no progress bar, on the CPU (where a GPU
    is present, "auto" would train there and the tests compare with CPU tensors)."""
    base = dict(
        batch_size=4, chunk_length=10, max_steps=12, eval_every=4, progress=False, plot=False,
        device="cpu",
    )
    return TrainConfig(**{**base, **overrides})


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
