"""The command line: ``rnnkit train | sample | eval`` (main.py parses and dispatches)."""

from rnnkit.cli.main import main

__all__ = ["main"]
