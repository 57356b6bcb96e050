"""Text data: the default corpus, safe file reading, the character vocabulary."""

import pytest
import torch

from rnnkit.data.errors import DataError
from rnnkit.data.split import split_tail
from rnnkit.data.text import CharVocab, default_corpus, load_texts, read_text_file


def test_default_corpus_is_real_offline_text():
    text = default_corpus()
    assert len(text) > 100_000
    assert "def " in text and "the " in text
    assert load_texts([]) == [text]


def test_read_text_file_round_trip(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\r\nwörld\n", encoding="utf-8")
    assert read_text_file(path) == "héllo\nwörld\n"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b"  \n\t\n", "only whitespace"),
        (b"abc\x00\x01\x02", "looks binary"),
        (b"caf\xe9 au lait", r"not valid UTF-8 \(byte 3 is 0xe9\)"),
    ],
)
def test_read_text_file_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_text_file(path)


def test_read_text_file_missing_and_directory(tmp_path):
    with pytest.raises(DataError, match="nope.txt: no such file"):
        read_text_file(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_text_file(tmp_path)


def test_vocab_encode_decode_and_unknown_character():
    vocab = CharVocab.from_texts(["hello", "world"])
    assert vocab.chars == sorted(set("helloworld"))
    ids = vocab.encode("low")
    assert ids.dtype == torch.long and vocab.decode(ids.tolist()) == "low"
    assert CharVocab(vocab.to_list()).chars == vocab.chars
    with pytest.raises(DataError, match=r"character 'z' \(position 2\) is not in"):
        vocab.encode("loz")


def test_split_tail_holds_out_the_last_fraction():
    assert split_tail(1000, 0.1) == 900
    assert split_tail(1000, 0.0) == 1000
    with pytest.raises(DataError, match="val_fraction"):
        split_tail(10, 1.5)
