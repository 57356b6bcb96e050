"""The text task: a character-level language model of one or more text files."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.errors import DataError
from rnnkit.data.text import CharVocab, load_texts
from rnnkit.heads import CategoricalHead
from rnnkit.models import DropoutEmbedding, SequenceModel, build_rnn
from rnnkit.tasks.common import rnn_tricks


def bits(nats: float) -> float:
    return nats / math.log(2)


@dataclass
class TextTask:
    """Character-level language modelling on one or more text files."""

    vocab: CharVocab
    kind: str = "text"
    unit: str = "char"

    @classmethod
    def from_files(cls, files: Sequence[str], columns: Sequence[str] = ()
                   ) -> tuple[TextTask, list[Tensor]]:
        if columns:
            raise DataError("--columns only applies to --task forecast (CSV files)")
        texts = load_texts(files)
        task = cls(CharVocab.from_texts(texts))
        return task, [task.vocab.encode(t) for t in texts]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab.to_list()}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> TextTask:
        return cls(CharVocab(d["vocab"]))

    def summary(self) -> str:
        return f"{len(self.vocab)} distinct characters"

    def build_model(self, s: Any, train: Sequence[Tensor]) -> SequenceModel:
        del train  # nothing to fit: tokens need no normalization
        rnn = build_rnn(s.cell, s.embed_dim, s.hidden_size, s.num_layers, **rnn_tricks(s))
        head = CategoricalHead(s.hidden_size, len(self.vocab), s.dropout)
        embedding = DropoutEmbedding(len(self.vocab), s.embed_dim, s.embed_dropout,
                                     getattr(s, "embed_dropout_mode", "entries"))
        return SequenceModel(embedding, rnn, head)

    def read_file(self, path: str, unknown: str = "error") -> tuple[Tensor, int]:
        """The file's character ids, and how many characters not in the vocabulary were
        skipped (``unknown="skip"``; ``"error"`` raises DataError naming the first)."""
        text = load_texts([path])[0]
        if unknown == "skip":
            known = "".join(ch for ch in text if ch in self.vocab.index)
            return self.vocab.encode(known), len(text) - len(known)
        return self.vocab.encode(text), 0

    def loss_text(self, nats: float) -> str:
        return f"{nats:.4f} nats/{self.unit} ({bits(nats):.4f} bits/{self.unit})"

    def notes(self, s: Any) -> list[str]:
        return []

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

    def write_example(self, model: SequenceModel, run: Path, step: int, seed: int, length: int,
                      train: Sequence[Tensor], val: Sequence[Tensor]) -> str:
        """Append a sample at temperature 0.8 to ``samples.txt``; returns its start."""
        # Own generator: sampling must not move the trainer's RNG, or resume would not be exact.
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed + step)
        text = "".join(self.generate(model, "", length, 0.8, gen))
        with open(run / "samples.txt", "a", encoding="utf-8") as f:
            f.write(f"=== step {step} ===\n{text}\n\n")
        return "  | " + text.strip().replace("\n", " ")[:100]

    def use(self, model: SequenceModel, run: Path, files: Sequence[str], prime: str, length: int,
            temperature: float, seed: int, output: str) -> None:
        """Stream ``length`` characters after ``prime`` to stdout."""
        if output:
            raise DataError("--output is for forecast models; a text sample goes to stdout")
        self.vocab.encode(prime)  # an unknown character fails here, before any output
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        sys.stdout.write(prime)
        for ch in self.generate(model, prime, length, temperature, gen):
            sys.stdout.write(ch)
            sys.stdout.flush()
        sys.stdout.write("\n")

    def next_command(self, run: Path) -> str:
        return f"rnnkit sample {run} --length 500"
