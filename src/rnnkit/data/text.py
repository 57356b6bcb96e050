"""Character-level text data: reading files safely, the embedded default corpus, a vocabulary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from rnnkit.data.errors import DataError

DEFAULT_CORPUS_NAME = "pydoc_data.topics"


def default_corpus() -> str:
    """Python's own help topics (``pydoc_data.topics``): ~465k characters of English prose and
    code that ship with every CPython, so ``rnnkit train`` works offline with no file."""
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def read_text_file(path: str | Path, kind: str = "a text file") -> str:
    """Read a UTF-8 text file, refusing missing, unreadable, empty, binary and non-UTF-8 files
    with a message that names the file and what was wrong (``kind`` says what was expected)."""
    path = Path(path)
    try:
        if not path.exists():
            raise DataError(f"{path}: no such file")
        if path.is_dir():
            raise DataError(f"{path}: is a directory, expected {kind}")
        raw = path.read_bytes()
    except OSError as err:  # permission denied, a name too long, an I/O error
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not raw:
        raise DataError(f"{path}: file is empty")
    for bom, name in _OTHER_UNICODE_BOMS:
        if raw.startswith(bom):
            raise DataError(f"{path}: is {name} text, expected UTF-8; convert it to UTF-8 first")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: looks binary (contains NUL bytes, the first at byte {nul}), "
                        "expected UTF-8 text")
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        start = bom + err.start  # an offset into the file, not into the text after its BOM
        line = raw.count(b"\n", 0, start) + 1
        raise DataError(
            f"{path}: not valid UTF-8 (byte {start} is 0x{raw[start]:02x}, on line {line}); "
            "convert it to UTF-8 first"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: file holds only whitespace")
    return text.replace("\r\n", "\n")


# UTF-32 first: its little-endian mark begins with UTF-16's.
_OTHER_UNICODE_BOMS = [(b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                       (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")]


def load_texts(paths: Sequence[str | Path]) -> list[str]:
    """One string per file; with no path, the embedded default corpus."""
    if not paths:
        return [default_corpus()]
    return [read_text_file(p) for p in paths]


class CharVocab:
    """A sorted character vocabulary: ``encode`` text to ids, ``decode`` ids to text."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: list[str] = sorted(set(chars))
        if not self.chars:
            raise DataError("cannot build a vocabulary from empty text")
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharVocab:
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        return cls(chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Ids as a LongTensor [len(text)]; an unknown character raises DataError naming it."""
        try:
            return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)
        except KeyError as err:
            ch = err.args[0]
            pos = text.index(ch)
            raise DataError(
                f"character {ch!r} (position {pos}) is not in the model's vocabulary of "
                f"{len(self)} characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_list(self) -> list[str]:
        """What a checkpoint stores; ``CharVocab(to_list())`` rebuilds the same vocabulary."""
        return list(self.chars)
