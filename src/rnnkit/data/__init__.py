"""Data sources: text, CSV time series, and the built-in Lorenz-63 system."""

from rnnkit.data.errors import DataError
from rnnkit.data.series import Series, load_csv
from rnnkit.data.text import CharVocab, default_corpus, load_texts, read_text_file

__all__ = ["CharVocab", "DataError", "Series", "default_corpus", "load_csv", "load_texts",
           "read_text_file"]
