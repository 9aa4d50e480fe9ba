"""The one exception type for mistakes a user can make (bad config, missing file, ...).

The CLI turns it into a single line on stderr and exit status 2; everything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable


class UserError(Exception):
    """A problem the user can fix. The message says what, where and how to fix it, on one
    line: a line break that comes from the user's input (a key named "a\\nb") is shown
    escaped, so the message stays one line."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"), *args)


def note(message: str) -> None:
    """A fallback taken because something is missing or odd in the input: one line on
    stderr, "note: ...", so that nothing is filled in or left out silently."""
    import sys

    print(f"note: {UserError(message)}", file=sys.stderr)


def closest(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the nearest candidate, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_writable(folder: Path, what: str, fix: str) -> None:
    """UserError unless `folder` could be created and written (checked without creating
    anything: its nearest existing ancestor must be a writable folder)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {folder} is not writable ({existing} is not a writable "
                        f"folder); {fix}")


class SearchInterrupted(Exception):
    """The search stopped before its end (Ctrl-C); its state is saved for `tune-gpt resume`.
    The CLI prints it as one line and exits 130."""

    def __init__(self, name: str, unfinished: int):
        super().__init__(f"search '{name}' interrupted with {unfinished} trial(s) unfinished; "
                         f"continue it with `tune-gpt resume {name}` (same --storage-path)")
        self.name = name
        self.unfinished = unfinished
