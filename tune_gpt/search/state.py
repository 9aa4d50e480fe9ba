"""What a search is asked (SearchOptions), what it keeps to be resumed (SearchState, as
STORAGE/NAME/state.json) and what it gives back (SearchResult). No Ray, no MLflow."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tune_gpt import names
from tune_gpt.errors import UserError, check_writable
from tune_gpt.trial import known_fields

STATE_FILE = "state.json"


@dataclass
class SearchOptions:
    """What `tune-gpt search` was asked (CLI flags; None = as the space says)."""

    space: str
    num_samples: int | None = None
    max_iters: int | None = None
    data: str | None = None
    name: str | None = None
    seed: int | None = None
    tracking_uri: str | None = None
    storage_path: str | None = None
    address: str | None = None
    resume: bool = False
    sets: list[str] = field(default_factory=list)
    profile: str | None = None
    lang: str = "en"
    report: bool = True
    reports_dir: str = "reports"
    quiet: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchOptions:
        return cls(**known_fields(cls, data))


@dataclass
class SearchState:
    """state.json: everything a resume needs that the space file does not say."""

    name: str
    space_name: str
    profile: str
    tracking_uri: str
    parent_run_id: str
    dataset: str
    options: dict[str, Any]
    created: str = field(default_factory=lambda: dt.datetime.now().isoformat(timespec="seconds"))
    finished: bool = False
    # seconds the search has explored (fit) so far, over every start and resume: what a
    # final phase (`final:`) has left of a time budget is the budget minus this
    explored_s: float = 0.0

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(folder / STATE_FILE)

    @classmethod
    def read(cls, folder: Path) -> SearchState:
        return cls(**known_fields(cls, json.loads((folder / STATE_FILE).read_text())))


@dataclass
class SearchResult:
    name: str
    folder: Path
    best: dict[str, Any] | None
    counts: dict[str, int]
    report: Path | None
    tracking_uri: str
    parent_run_id: str
    wall_s: float


def storage_of(storage_path: str | None) -> Path:
    """The storage folder, checked for writing without creating anything yet."""
    storage = Path(storage_path or "runs").expanduser().resolve()
    check_writable(storage, "storage path", "pass a writable --storage-path")
    return storage


def check_name(name: str) -> None:
    names.check_name(name, "--name")


def new_name(space_name: str) -> str:
    return names.search_name(space_name)


def find_resumable(storage: Path, space_name: str) -> str:
    """The most recent unfinished search of this space under `storage`."""
    candidates = []
    for state in storage.glob(f"*/{STATE_FILE}"):
        info = json.loads(state.read_text())
        if info.get("space_name") == space_name and not info.get("finished"):
            candidates.append((state.stat().st_mtime, info["name"]))
    if not candidates:
        raise UserError(f"nothing to resume: no unfinished search of '{space_name}' under "
                        f"{storage}; run without --resume, or pass --name of a search")
    return max(candidates)[1]


def existing_state(storage: Path, name: str) -> SearchState:
    """The state of the search `name`, or a UserError saying there is none."""
    folder = storage / name
    if not names.is_name(name) or \
            not (folder / STATE_FILE).is_file():
        raise UserError(f"cannot resume '{name}': no search of that name under {storage}; "
                        f"check the name and --storage-path")
    return SearchState.read(folder)
