"""The one rule for the names a user gives or tune-gpt makes: a search space's `name:`, a
search's `--name`, the names derived from them (`<space>-YYYYMMDD-HHMMSS`, `<search>-next`).

A search's name becomes a folder under the storage path, an Optuna study and an MLflow run
name, so it holds only letters, digits, '_', '-' and '.', starts with a letter or digit, and
is at most MAX_NAME characters (far below the 255 bytes a file name may have, and MLflow's
250-character run names). A space's name leaves room for the timestamp a search adds to it,
so every space that loads gives a search that can be started, resumed and reported.
"""

from __future__ import annotations

import datetime as dt
import re

from tune_gpt.errors import UserError

MAX_NAME = 120
STAMP = "-%Y%m%d-%H%M%S"       # what a search adds to its space's name
STAMP_LEN = len("-20261205-183000")
MAX_SPACE_NAME = MAX_NAME - STAMP_LEN
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_name(name: str, most: int = MAX_NAME) -> bool:
    return len(name) <= most and bool(_ALLOWED.fullmatch(name)) and name not in (".", "..")


def check_name(name: str, where: str, most: int = MAX_NAME) -> str:
    """`name` if it follows the rule; else a UserError naming `where` it came from."""
    if not _ALLOWED.fullmatch(name):
        raise UserError(f"{where} {name!r} may hold only letters, digits, '_', '-' and '.', "
                        f"and must start with a letter or digit (it names a folder)")
    if len(name) > most:
        raise UserError(f"{where} {name!r} is {len(name)} characters long; at most {most} "
                        f"(it names a folder, an Optuna study and an MLflow run)")
    return name


def search_name(space_name: str, now: dt.datetime | None = None) -> str:
    """A new search's default name: the space's name and the time it started."""
    return f"{space_name}{(now or dt.datetime.now()).strftime(STAMP)}"


def derived(name: str, suffix: str, most: int = MAX_SPACE_NAME) -> str:
    """`name` + `suffix`, shortened from the end of `name` so the result fits `most`."""
    return f"{name[:most - len(suffix)].rstrip('_.-') or 'x'}{suffix}"
