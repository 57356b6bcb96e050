"""What the CLI trains: a character language model or a next-step forecaster of CSV columns.

A task knows how to read its files into sequences, build its model, describe itself for the
run directory (``task.json``), and use a trained model (sample text, forecast, score a file).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.cli_config import TrainSettings, task_kind
from rnnkit.data.errors import DataError
from rnnkit.data.series import load_csv
from rnnkit.data.text import CharVocab, load_texts, split_tail
from rnnkit.heads import CategoricalHead
from rnnkit.models import SequenceModel, build_rnn
from rnnkit.regularizers import check_rate, dropout_mask


def split_documents(docs: Sequence[Tensor], val_fraction: float
                    ) -> tuple[list[Tensor], list[Tensor]]:
    """The last ``val_fraction`` of all steps, in order, is validation; documents cut at the
    boundary contribute a piece to each side."""
    total = sum(len(d) for d in docs)
    cut = split_tail(total, val_fraction)
    train, val, seen = [], [], 0
    for doc in docs:
        k = min(max(cut - seen, 0), len(doc))
        if k > 0:
            train.append(doc[:k])
        if k < len(doc):
            val.append(doc[k:])
        seen += len(doc)
    return train, val


def rnn_tricks(s: TrainSettings) -> dict[str, Any]:
    """The settings' structural tricks as rnnkit.LSTM / GRU keyword arguments."""
    tricks: dict[str, Any] = {
        "dropout": s.dropout if s.num_layers > 1 else 0.0,
        "layer_norm": s.layer_norm,
        "input_layers": s.input_layers,
        "sum_outputs": s.sum_outputs,
        "learned_initial_state": s.learned_initial_state,
        "recurrent_dropout": s.recurrent_dropout,
    }
    if s.cell == "lstm":
        tricks.update(forget_bias=s.forget_bias, zoneout_cell=s.zoneout, zoneout_hidden=s.zoneout)
    else:
        tricks.update(zoneout=s.zoneout)
    return tricks


class DropoutCategoricalHead(CategoricalHead):
    """A categorical head with dropout on its input (the RNN output) in training."""

    def __init__(self, hidden_size: int, num_classes: int, dropout: float) -> None:
        super().__init__(hidden_size, num_classes)
        self.dropout = check_rate("dropout", dropout)

    def forward(self, h: Tensor) -> Tensor:
        # rnnkit's mask (rand >= p) instead of nn.Dropout's bernoulli_: the same distribution,
        # faster on CPU (forward+backward at [32, 64, 384]: 6.7 ms instead of 8.5).
        mask = dropout_mask(h.shape, self.dropout, self.training, h)
        return self.proj(h if mask is None else h * mask)


class DropoutEmbedding(nn.Embedding):
    """An embedding with dropout on its output vectors in training (soft token weights, the
    expected embedding of ``SequenceModel``, are not dropped)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, dropout: float) -> None:
        super().__init__(num_embeddings, embedding_dim)
        self.dropout = check_rate("dropout", dropout)

    def forward(self, tokens: Tensor) -> Tensor:
        e = super().forward(tokens)
        mask = dropout_mask(e.shape, self.dropout, self.training, e)
        return e if mask is None else e * mask


def check_chunk(train_steps: int, s: TrainSettings) -> None:
    """Refuse a chunk longer than each of the batch's parallel streams (before any run dir)."""
    stream = train_steps // s.batch_size
    if s.chunk_len > stream:
        raise DataError(
            f"chunk length {s.chunk_len} is longer than the data allows: {train_steps} training "
            f"steps in {s.batch_size} streams give {stream} steps each; use a smaller "
            "--chunk-len or --batch-size, or more data"
        )


@dataclass
class TextTask:
    """Character-level language modelling on one or more text files."""

    vocab: CharVocab
    kind: str = "text"
    unit: str = "char"

    @classmethod
    def from_files(cls, files: Sequence[str]) -> tuple[TextTask, list[Tensor]]:
        texts = load_texts(files)
        task = cls(CharVocab.from_texts(texts))
        return task, [task.vocab.encode(t) for t in texts]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab.to_list()}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> TextTask:
        return cls(CharVocab(d["vocab"]))

    def build_model(self, s: TrainSettings, train: Sequence[Tensor]) -> SequenceModel:
        del train  # nothing to fit: tokens need no normalization
        rnn = build_rnn(s.cell, s.embed_dim, s.hidden_size, s.num_layers, **rnn_tricks(s))
        head = DropoutCategoricalHead(s.hidden_size, len(self.vocab), s.dropout)
        embedding = DropoutEmbedding(len(self.vocab), s.embed_dim, s.embed_dropout)
        return SequenceModel(embedding, rnn, head)

    def read_file(self, path: str) -> Tensor:
        return self.vocab.encode(load_texts([path])[0])

    @torch.no_grad()
    def generate(self, model: SequenceModel, prime: str, length: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Iterator[str]:
        """Stream ``length`` characters, one ``model.step`` each, after reading ``prime``."""
        model.eval()
        device = next(model.parameters()).device
        start = prime or ("\n" if "\n" in self.vocab.index else self.vocab.chars[0])
        ids = self.vocab.encode(start).to(device)
        state = None
        for i in range(len(ids)):
            params, state = model.step(ids[i : i + 1], state)
        for _ in range(length):
            token = model.sample(params, generator, temperature)
            yield self.vocab.chars[int(token)]
            params, state = model.step(token.view(1), state)


@dataclass
class ForecastTask:
    """Next-step prediction of numeric CSV columns (a Gaussian over the next row)."""

    columns: list[str]
    kind: str = "forecast"
    unit: str = "step"

    @classmethod
    def from_files(cls, files: Sequence[str], columns: list[str]
                   ) -> tuple[ForecastTask, list[Tensor]]:
        if not files:
            raise DataError("--task forecast needs a CSV file")
        first = load_csv(files[0], columns or None)
        series = [first] + [load_csv(f, first.columns) for f in files[1:]]
        return cls(first.columns), [torch.from_numpy(s.values) for s in series]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": self.columns}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> ForecastTask:
        return cls(list(d["columns"]))

    def build_model(self, s: TrainSettings, train: Sequence[Tensor]) -> SequenceModel:
        # the normalizer is fitted on the training split; a loaded model gets it from its weights
        fit = torch.cat(list(train)) if train else None
        return SequenceModel.forecaster(len(self.columns), s.hidden_size, s.num_layers, s.cell,
                                        train_data=fit, **rnn_tricks(s))

    def read_file(self, path: str) -> Tensor:
        return torch.from_numpy(load_csv(path, self.columns).values)

    @torch.no_grad()
    def forecast(self, model: SequenceModel, context: Tensor, horizon: int) -> np.ndarray:
        """The open-loop mean forecast ``[horizon, F]`` after reading ``context [T, F]``."""
        from rnnkit.rollout import forecast

        model.eval()
        device = next(model.parameters()).device
        params, _ = forecast(model, context.unsqueeze(0).to(device), horizon, mode="mean")
        return model.predict(params)[0].cpu().numpy()


Task = TextTask | ForecastTask


def task_from_description(d: dict[str, Any]) -> Task:
    return TextTask.from_description(d) if d["kind"] == "text" else ForecastTask.from_description(d)


def load_task_data(s: TrainSettings) -> tuple[Task, list[Tensor]]:
    """The task the settings ask for, and its data as a list of sequences (one per file)."""
    if task_kind(s) == "forecast":
        return ForecastTask.from_files(s.files, s.columns)
    if s.columns:
        raise DataError("--columns only applies to --task forecast (CSV files)")
    return TextTask.from_files(s.files)


@torch.no_grad()
def score(model: SequenceModel, seq: Tensor, streams: int = 16, chunk: int = 256) -> float:
    """Mean next-step loss (nats per step) over a whole sequence: cut into ``streams``
    contiguous pieces read in parallel, each with its state carried from chunk to chunk."""
    if len(seq) < 2:
        raise DataError("nothing to score: the file has fewer than 2 steps")
    model.eval()
    device = next(model.parameters()).device
    pieces = torch.tensor_split(torch.arange(len(seq) - 1), min(streams, len(seq) - 1))
    longest = max(len(p) for p in pieces)
    index = torch.zeros(len(pieces), longest, dtype=torch.long)
    mask = torch.zeros(len(pieces), longest, dtype=torch.bool)
    for row, piece in enumerate(pieces):
        index[row, : len(piece)] = piece
        mask[row, : len(piece)] = True
    inputs, targets = seq[index].to(device), seq[index + 1].to(device)
    mask = mask.to(device)
    total, state = 0.0, None
    for start in range(0, longest, chunk):
        params, state = model(inputs[:, start : start + chunk], state)
        loss = model.loss(params, targets[:, start : start + chunk])
        total += float(loss[mask[:, start : start + chunk]].sum())
    return total / (len(seq) - 1)


def bits(nats: float) -> float:
    return nats / math.log(2)
