"""tune_gpt.search.state: names, state.json, finding a search to resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.errors import UserError
from tune_gpt.search.state import (SearchOptions, SearchState, check_name, existing_state,
                                   find_resumable)


def _state(name: str, space: str = "smoke", finished: bool = False) -> SearchState:
    return SearchState(name=name, space_name=space, profile="cpu", tracking_uri="sqlite:///x",
                       parent_run_id="p" * 32, dataset="d.txt",
                       options={"space": "s.yaml", "seed": 3, "unknown_later": 1},
                       finished=finished)


def test_state_round_trips(tmp_path: Path) -> None:
    s = _state("a")
    s.write(tmp_path / "a")
    back = SearchState.read(tmp_path / "a")
    assert back == s
    opts = SearchOptions.from_dict(back.options)  # unknown keys of other versions dropped
    assert opts.space == "s.yaml" and opts.seed == 3


def test_find_resumable_takes_the_latest_unfinished_of_the_space(tmp_path: Path) -> None:
    _state("old").write(tmp_path / "old")
    _state("done", finished=True).write(tmp_path / "done")
    _state("other", space="beginner").write(tmp_path / "other")
    assert find_resumable(tmp_path, "smoke") == "old"
    with pytest.raises(UserError, match="nothing to resume"):
        find_resumable(tmp_path, "missing")


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "no such"])
def test_existing_state_rejects_what_is_not_a_search(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError, match="cannot resume"):
        existing_state(tmp_path, name)


@pytest.mark.parametrize("name", ["a b", "../x", "-x", "é"])
def test_check_name(name: str) -> None:
    with pytest.raises(UserError, match="--name"):
        check_name(name)
    check_name("beginner-20261202.1_x")
