"""tune_gpt.names: one rule for space and search names (it used to live in two places that
disagreed, so a space of 85+ characters gave a search that could not be resumed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tune_gpt import names
from tune_gpt.errors import UserError
from tune_gpt.search.state import check_name, new_name
from tune_gpt.space import load_space

ROOT = Path(__file__).resolve().parents[1]


def test_every_space_name_that_loads_gives_a_search_name_that_is_valid(tmp_path: Path):
    longest = "s" * names.MAX_SPACE_NAME
    space = tmp_path / "long.yaml"
    space.write_text((ROOT / "search_spaces" / "smoke.yaml").read_text()
                     .replace("name: smoke", f"name: {longest}"))
    loaded = load_space(space, profile="cpu")
    made = names.search_name(loaded.name, dt.datetime(2026, 12, 5, 18, 30, 0))
    assert made == f"{longest}-20261205-183000" and len(made) == names.MAX_NAME
    check_name(made)  # --name / resume accept what a search names itself
    assert names.is_name(new_name(loaded.name))
    space.write_text(space.read_text().replace(f"name: {longest}", f"name: {longest}s"))
    with pytest.raises(UserError, match=rf"name '{longest}s' is {names.MAX_SPACE_NAME + 1} "
                                        rf"characters long; at most {names.MAX_SPACE_NAME}"):
        load_space(space, profile="cpu")


@pytest.mark.parametrize("bad", ["-x", "a b", "a/b", "..", "ü"])
def test_a_bad_name_is_one_line_naming_where_it_came_from(bad: str):
    with pytest.raises(UserError, match="--name .* may hold only letters"):
        check_name(bad)


def test_derived_names_fit_the_space_rule():
    base = "b" * names.MAX_NAME
    nxt = names.derived(base, "-next")
    assert nxt.endswith("-next") and len(nxt) == names.MAX_SPACE_NAME
    assert names.derived("search-1", "-next") == "search-1-next"
