"""Train / validation splits of sequences: the validation data is the tail, in order."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from rnnkit.data.errors import DataError


def split_tail(n: int, val_fraction: float) -> int:
    """Index where the validation tail starts: the last ``val_fraction`` of ``n`` items."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    return n - int(round(n * val_fraction))


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
