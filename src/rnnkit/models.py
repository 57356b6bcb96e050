"""SequenceModel: encoder -> recurrent network -> probabilistic head, for next-step prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.heads import CategoricalHead, GaussianHead
from rnnkit.normalization import FeatureNormalizer
from rnnkit.regularizers import check_rate, dropout_mask, embedding_dropout
from rnnkit.state import accepts_reset, run_with_resets


def build_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
              **tricks: Any) -> nn.Module:
    """``rnnkit.LSTM`` / ``rnnkit.GRU`` (batch_first) with the trick keyword arguments."""
    cell = cell.lower()
    if cell not in ("lstm", "gru"):
        raise ValueError(f"build_rnn: cell must be 'lstm' or 'gru', got {cell!r}")
    from rnnkit.rnn import GRU, LSTM  # here, so rnnkit.models imports without the rnn stack

    cls = LSTM if cell == "lstm" else GRU
    return cls(input_size, hidden_size, num_layers, batch_first=True, **tricks)


class DropoutEmbedding(nn.Embedding):
    """An embedding with dropout in training: ``mode="entries"`` drops entries of the output
    vectors; ``"words"`` drops whole rows of the matrix, so a dropped word is zero wherever it
    occurs in the batch (Gal & Ghahramani 2016, :func:`rnnkit.regularizers.embedding_dropout`).
    Soft token weights (the expected embedding of ``SequenceModel``) are not dropped."""

    def __init__(self, num_embeddings: int, embedding_dim: int, dropout: float = 0.0,
                 mode: str = "entries") -> None:
        super().__init__(num_embeddings, embedding_dim)
        if mode not in ("entries", "words"):
            raise ValueError(f"DropoutEmbedding: mode must be 'entries' or 'words', got {mode!r}")
        self.dropout, self.mode = check_rate("dropout", dropout), mode

    def forward(self, tokens: Tensor) -> Tensor:
        if self.mode == "words":
            weight = embedding_dropout(self.weight, self.dropout, self.training)
            return nn.functional.embedding(tokens, weight)
        e = super().forward(tokens)
        mask = dropout_mask(e.shape, self.dropout, self.training, e)
        return e if mask is None else e * mask


class SequenceModel(nn.Module):
    """A generic next-step model: ``params_t = head(rnn(encoder(normalize(x_<=t))))``.

    - ``encoder``: inputs -> RNN inputs: ``nn.Embedding`` for tokens (it also accepts soft
      weights ``[..., C]`` and returns ``weights @ E``, the expected embedding), ``nn.Identity``
      or ``nn.Linear`` for continuous features.
    - ``rnn``: any batch-first module ``rnn(x [B, T, I], state) -> (out [B, T, H], state)``
      whose state tensors are ``[num_layers, B, H]`` (torch.nn / rnnkit LSTM, GRU). ``reset=``
      is passed only when its forward accepts it.
    - ``head``: a :mod:`rnnkit.heads` head; ``params`` are its distribution parameters.
    - ``normalizer``: optional :class:`FeatureNormalizer` (continuous data). Inputs, targets,
      predictions and fed-back values are all in *data units*; the model normalizes inputs
      and targets itself and the head works in normalized units.

    Shapes: ``forward(inputs [B, T, ...], state, reset [B, T]) -> (params [B, T, P], state)``;
    ``step(input_t [B, ...], state) -> (params_t [B, P], state)``.

    Example::

        model = SequenceModel.char_lm(vocab_size=65, hidden_size=256, num_layers=2)
        params, state = model(tokens)                  # tokens [B, T] int64
        per_step = model.loss(params, next_tokens)     # [B, T] nats
    """

    def __init__(self, encoder: nn.Module, rnn: nn.Module, head: nn.Module,
                 normalizer: FeatureNormalizer | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.rnn = rnn
        self.head = head
        self.normalizer = normalizer
        self._rnn_takes_reset = accepts_reset(rnn)

    # -- running ---------------------------------------------------------------------------

    def encode(self, inputs: Tensor) -> Tensor:
        """Data-unit inputs ``[B, T, ...]`` -> RNN inputs ``[B, T, I]``."""
        if self.normalizer is not None:
            inputs = self.normalizer(inputs)
        if isinstance(self.encoder, nn.Embedding) and inputs.is_floating_point():
            return inputs @ self.encoder.weight  # soft token weights: the expected embedding
        return self.encoder(inputs)

    def run_rnn(self, x: Tensor, state: Any = None, reset: Tensor | None = None
                ) -> tuple[Tensor, Any]:
        """``rnn(x, state, reset=reset)``; for an rnn without ``reset=`` the chunk is run in
        segments between the steps where some row resets, zeroing those rows' state (zeros
        are torch.nn's default state)."""
        if reset is not None and self._rnn_takes_reset:
            return self.rnn(x, state, reset=reset)
        return run_with_resets(self.rnn, x, state, reset)

    def forward(self, inputs: Tensor, state: Any = None, reset: Tensor | None = None,
                return_hidden: bool = False):
        """``(params [B, T, P], state)``, plus the RNN outputs ``[B, T, H]`` if
        ``return_hidden`` (the hidden-state trajectory, e.g. for professor forcing)."""
        out, state = self.run_rnn(self.encode(inputs), state, reset)
        params = self.head(out)
        return (params, state, out) if return_hidden else (params, state)

    def step(self, input_t: Tensor, state: Any = None, reset: Tensor | None = None,
             return_hidden: bool = False):
        """One step: ``input_t [B, ...]`` (reset ``[B]``) -> ``(params_t [B, P], state)``;
        the same numbers as the sequence call."""
        reset = None if reset is None else reset.unsqueeze(1)
        out, state = self.run_rnn(self.encode(input_t.unsqueeze(1)), state, reset)
        out = out.squeeze(1)
        params = self.head(out)
        return (params, state, out) if return_hidden else (params, state)

    # -- the distribution, in data units ------------------------------------------------------

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        """Per-step NLL ``[...]`` of data-unit targets (normalized first when continuous)."""
        if self.normalizer is not None:
            targets = self.normalizer(targets)
        return self.head.loss(params, targets)

    def predict(self, params: Tensor) -> Tensor:
        """The expected next value in data units (probabilities for tokens)."""
        mean = self.head.mean(params)
        return self.normalizer.inverse(mean) if self.normalizer is not None else mean

    def sample(self, params: Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        draw = self.head.sample(params, generator, temperature)
        return self.normalizer.inverse(draw) if self.normalizer is not None else draw

    def feedback(self, params: Tensor, **kwargs: Any) -> Tensor:
        """The next rollout input in data units; see the head's ``feedback`` for modes."""
        value = self.head.feedback(params, **kwargs)
        return self.normalizer.inverse(value) if self.normalizer is not None else value

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def char_lm(cls, vocab_size: int, hidden_size: int = 256, num_layers: int = 2,
                embedding_dim: int | None = None, cell: str = "lstm",
                **rnn_tricks: Any) -> SequenceModel:
        """Token language model: Embedding -> LSTM/GRU (with ``rnn_tricks``) -> categorical."""
        embedding_dim = embedding_dim or hidden_size
        return cls(nn.Embedding(vocab_size, embedding_dim),
                   build_rnn(cell, embedding_dim, hidden_size, num_layers, **rnn_tricks),
                   CategoricalHead(hidden_size, vocab_size))

    @classmethod
    def forecaster(cls, num_features: int, hidden_size: int = 64, num_layers: int = 1,
                   cell: str = "lstm", mse: bool = False,
                   train_data: Tensor | np.ndarray | None = None,
                   **rnn_tricks: Any) -> SequenceModel:
        """Continuous next-step model with a :class:`FeatureNormalizer` and a Gaussian head.

        ``train_data [N, F]``: the *training split*; fits the normalizer when given (else call
        ``model.normalizer.fit(train)`` before training)."""
        normalizer = FeatureNormalizer(num_features)
        if train_data is not None:
            normalizer.fit(train_data)
        return cls(nn.Identity(),
                   build_rnn(cell, num_features, hidden_size, num_layers, **rnn_tricks),
                   GaussianHead(hidden_size, num_features, mse=mse), normalizer)
