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
        (b"caf\xe9 au lait", r"not valid UTF-8 \(byte 3 is 0xe9, on line 1\)"),
        # the offset counts the BOM: it is the byte's place in the file
        (b"\xef\xbb\xbfok\ncaf\xe9", r"not valid UTF-8 \(byte 9 is 0xe9, on line 2\)"),
        (b"x" * 70000 + b"\x00", r"looks binary \(contains NUL bytes, the first at byte 70000\)"),
        ("h\u00e9llo\n".encode("utf-16"), r"is UTF-16 text, expected UTF-8"),
        ("h\u00e9llo\n".encode("utf-32"), r"is UTF-32 text, expected UTF-8"),
    ],
    ids=["empty", "whitespace", "nul", "latin-1", "latin-1 after bom", "late nul", "utf-16",
         "utf-32"],
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


def test_read_text_file_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("abc", encoding="utf-8")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_bytes", denied)  # root ignores chmod 000
    with pytest.raises(DataError, match=r"locked.txt: cannot be read \(Permission denied\)"):
        read_text_file(path)
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"cannot be read \(File name too long\)"):
        read_text_file(tmp_path / ("x" * 5000))


def test_read_text_file_drops_the_utf8_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfh\xc3\xa9\r\nx\n")
    assert read_text_file(path) == "h\u00e9\nx\n"
