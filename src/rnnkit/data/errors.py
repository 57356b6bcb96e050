"""The one error type for bad user data: the CLI prints it as one line and exits non-zero."""

from __future__ import annotations


class DataError(ValueError):
    """A file or value the user gave cannot be used; the message names it and says why."""
