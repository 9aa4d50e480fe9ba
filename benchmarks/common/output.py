"""How benchmark results reach the disk, and how a resume reads them back.

A benchmark runs for minutes to hours and is often interrupted (a kill, a full disk, the
machine taken back), then resumed from the cells it saved. Two rules keep those files
honest:

- Every cell, table line and summary is written atomically: to a temporary file in the
  same folder, flushed to disk, then `os.replace`d over the target. A reader sees the old
  file or the new one, never half of one (`os.replace` is atomic within one file system,
  hence the same folder). The temporary name starts with a dot and ends in `.tmp`, so a
  glob for `*.json` never picks up one left by a kill.
- A resume trusts a saved cell only if it parses as a cell (a JSON object with the keys
  every cell of that script has). Files written before the first rule, or cut short by
  something else, are redone, and the script says so in one line; never trusted, never a
  crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file to write `path` through ("w" text, "wb" bytes): it replaces `path` only when
    the block ends without an error; otherwise `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    text = {} if "b" in mode else {"encoding": "utf-8"}
    try:
        with open(tmp, mode.replace("w", "x"), **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())   # on disk before the rename makes it the file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)   # gone after os.replace; removes an aborted write


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str | Path, data: Any, **dumps: Any) -> None:
    """`data` as JSON (json.dumps' keywords: indent, default, separators)."""
    write_text(path, json.dumps(data, **dumps))


def write_summary(path: str | Path, data: Any, markdown: str, **dumps: Any) -> tuple[Path, Path]:
    """The summary at `path` and its markdown table beside it (same name, .md): the shape of
    every script's `--json OUT`. Returns both paths."""
    path = Path(path)
    md = path.with_suffix(".md")
    write_json(path, data, **dumps)
    write_text(md, markdown)
    return path, md


def publish(summary_path: str | Path, json_path: str | Path | None, data: Any,
            markdown: str, **dumps: Any) -> list[Path]:
    """A cells script's ending: the summary (and its markdown) at summary_path and at
    --json when given, the table printed, and where they went. Returns the paths."""
    written = [*write_summary(summary_path, data, markdown, **dumps)]
    if json_path:
        written += write_summary(json_path, data, markdown, **dumps)
    print(markdown)
    print(f"written: {', '.join(map(str, written))}")
    return written


def write_figure(fig: Any, path: str | Path, **savefig: Any) -> None:
    """A matplotlib figure saved atomically (its format from the file's suffix)."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", **savefig)


# ----------------------------------------------------------------------------- reading back

def _read(path: Path, required: Iterable[str]) -> tuple[dict[str, Any] | None, str]:
    """(cell, "") or (None, what is wrong with the file)."""
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None, "does not parse (cut short?)"
    if not isinstance(cell, dict):
        return None, "is not a cell (not a JSON object)"
    missing = [k for k in required if k not in cell]
    if missing:
        return None, f"is not a whole cell (no {', '.join(missing)})"
    return cell, ""


def saved_cell(path: str | Path, required: Iterable[str] = ()) -> dict[str, Any] | None:
    """The cell saved at `path` to resume with, or None when the cell is to be run: there is
    no file, or the file is not a whole cell (then one line says it is redone)."""
    path = Path(path)
    if not path.exists():
        return None
    cell, problem = _read(path, required)
    if cell is None:
        print(f"{path} {problem}: redone", flush=True)
    return cell


def load_cells(paths: Iterable[Path], required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The whole cells among `paths` (for a summary); one line for each file left out."""
    required = tuple(required)
    cells = []
    for path in paths:
        cell, problem = _read(path, required)
        if cell is None:
            print(f"{path} {problem}: left out of the summary", flush=True)
        else:
            cells.append(cell)
    return cells


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> tuple[list[str], int]:
    """The lines of a JSON-lines table that parse as records with the `required` keys, as
    written, and how many lines did not (a line cut short by a kill, from before the table
    was written atomically)."""
    path = Path(path)
    if not path.exists():
        return [], 0
    required = tuple(required)
    kept, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict) and all(k in record for k in required):
            kept.append(line)
        else:
            bad += 1
    return kept, bad


def write_jsonl(path: str | Path, lines: list[str]) -> None:
    """A JSON-lines table rewritten whole (atomically): appending in place could leave a
    line cut short."""
    write_text(path, "".join(line + "\n" for line in lines))
