"""The development corpora of the char-model defaults: texts of different sizes and kinds.

Every corpus comes from the shared data or from what Python ships, so nothing is downloaded:

    shakespeare_100k, shakespeare_300k   the first 100 / 300 KB of tinyshakespeare (whole lines)
    shakespeare                          all of tinyshakespeare (1.1 MB)
    pydoc_topics                         pydoc_data.topics, Python's help texts (465 KB prose)
    stdlib_code                          Python's standard library source, 2 MB of it

Each corpus's test split is its first 10% (as benchmarks/charlm.py cuts it) and no setting is
chosen on it; rules are chosen on the validation split ``rnnkit train`` cuts from the rest.

    python benchmarks/corpora.py              # the name, size and vocabulary of each
    python benchmarks/corpora.py --write DIR  # each as DIR/NAME.txt
"""

from __future__ import annotations

import argparse
import sysconfig
from collections.abc import Callable
from pathlib import Path

from rnnkit.data.split import split_tail

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TEST_FRACTION = 0.1
CODE_CHARS = 2_000_000


def _lines_up_to(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text``, cut back to the end of a line."""
    return text[: text.rfind("\n", 0, chars) + 1]


def _shakespeare(chars: int | None = None) -> Callable[[], str]:
    def read() -> str:
        text = SHAKESPEARE.read_text(encoding="utf-8")
        return text if chars is None else _lines_up_to(text, chars)
    return read


def _pydoc_topics() -> str:
    from pydoc_data.topics import topics
    return "\n".join(topics[key] for key in sorted(topics))


def _stdlib_code() -> str:
    """ASCII .py files of the standard library in path order, without its tests, IDLE, and the
    generated codec tables of encodings/ (tables, not code), up to CODE_CHARS characters."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idlelib", "encodings", "lib2to3"}
    parts, size = [], 0
    for path in sorted(lib.rglob("*.py")):
        if skip & set(path.relative_to(lib).parts):
            continue
        try:
            source = path.read_bytes().decode("ascii")
        except UnicodeDecodeError:
            continue
        parts.append(source)
        size += len(source)
        if size >= CODE_CHARS:
            break
    return _lines_up_to("".join(parts), CODE_CHARS)


CORPORA: dict[str, Callable[[], str]] = {
    "shakespeare_100k": _shakespeare(100_000),
    "shakespeare_300k": _shakespeare(300_000),
    "shakespeare": _shakespeare(),
    "pydoc_topics": _pydoc_topics,
    "stdlib_code": _stdlib_code,
}


def corpus(name: str) -> str:
    """The text of corpus ``name``, without the characters that occur only in its test split
    (a model trained on the rest could not score them)."""
    if name not in CORPORA:
        raise ValueError(f"corpus must be one of {sorted(CORPORA)}, got {name!r}")
    text = CORPORA[name]()
    while unseen := set(text[:test_length(len(text))]) - set(text[test_length(len(text)):]):
        text = "".join(c for c in text if c not in unseen)
    return text


def test_length(chars: int) -> int:
    """Characters of a corpus's test split, its first TEST_FRACTION (charlm.py's cut)."""
    return chars - split_tail(chars, TEST_FRACTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="DIR", help="write each corpus as DIR/NAME.txt")
    args = parser.parse_args()
    for name in CORPORA:
        text = corpus(name)
        print(f"{name:18s} {len(text):9d} chars  {len(set(text)):4d} distinct")
        if args.write:
            Path(args.write).mkdir(parents=True, exist_ok=True)
            (Path(args.write) / f"{name}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
