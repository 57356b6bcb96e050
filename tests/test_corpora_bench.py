"""benchmarks/corpora.py: the development corpora are what their names say, and every
character of a test split can be scored by a model trained on the rest."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpora  # noqa: E402

needs_shakespeare = pytest.mark.skipif(not corpora.SHAKESPEARE.exists(),
                                       reason="../shared/data/tinyshakespeare.txt is absent")


@needs_shakespeare
def test_shakespeare_subsets_are_whole_lines_of_the_file_start():
    full = corpora.corpus("shakespeare")
    small = corpora.corpus("shakespeare_100k")
    assert 99_000 < len(small) <= 100_000 and small.endswith("\n")
    assert full.startswith(small)


@pytest.mark.parametrize("name", ["pydoc_topics", pytest.param("shakespeare_300k",
                                                               marks=needs_shakespeare)])
def test_the_test_split_has_no_character_the_rest_lacks(name):
    text = corpora.corpus(name)
    cut = corpora.test_length(len(text))
    assert cut == round(len(text) * corpora.TEST_FRACTION)
    assert set(text[:cut]) <= set(text[cut:])


def test_unseen_characters_are_dropped(monkeypatch):
    monkeypatch.setitem(corpora.CORPORA, "toy", lambda: "é" + "ab\n" * 20)
    assert corpora.corpus("toy") == "ab\n" * 20


def test_unknown_corpus_is_named():
    with pytest.raises(ValueError, match="got 'nope'"):
        corpora.corpus("nope")
