"""Compute in FLOPs: ASHA's time_attr flops and budget.total_flops."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tune_gpt.errors import UserError
from tune_gpt.search.budget import TokenBudget
from tune_gpt.search.tuner import _budget_stopper, make_scheduler, max_flops_per_token
from tune_gpt.space import load_space, parse_amount

ROOT = Path(__file__).resolve().parents[1]


def _smoke(**sections) -> dict:
    data = yaml.safe_load((ROOT / "search_spaces" / "smoke.yaml").read_text())
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return data


def test_flop_amounts() -> None:
    assert parse_amount("2P", "x") == 2e15 and parse_amount("3.5T", "x") == 3.5e12
    assert parse_amount("2e15", "x") == 2e15


def test_flops_stopper_counts_the_flops_column(tmp_path: Path) -> None:
    stop = TokenBudget(1e12, str(tmp_path), attr="flops")
    assert not stop("a", {"tokens": 10**9, "flops": 4e11})
    assert stop("b", {"tokens": 1, "flops": 6e11})


def test_space_with_flops(tmp_path: Path) -> None:
    space = load_space("f.yaml", profile="cpu", data=_smoke(
        scheduler={"time_attr": "flops", "grace_period": "4e9"},
        budget={"total_flops": "20T", "total_tokens": "1M"}))
    assert space.budget.total_flops == 2e13 and space.scheduler.grace_period == 4e9
    asha = make_scheduler(space, 100, vocab_size=65)
    # the longest trial in FLOPs: 60k tokens of the largest model (2 x 64, block 32)
    assert asha._max_t == 60_000 * max_flops_per_token(space, 65)
    assert asha._time_attr == "flops"
    both = _budget_stopper(space, str(tmp_path))
    assert type(both).__name__ == "CombinedStopper"


@pytest.mark.parametrize("sections, message", [
    ({"scheduler": {"time_attr": "flops", "grace_period": 0}}, "grace_period in FLOPs"),
    ({"budget": {"total_flops": "lots"}}, "budget.total_flops"),
    ({"budget": {"total_flops": 0}}, "must be > 0"),
])
def test_bad_flops_settings(sections: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_space("f.yaml", profile="cpu", data=_smoke(**sections))


def test_with_a_final_phase_exploring_gets_its_share_and_can_settle(tmp_path: Path) -> None:
    from tune_gpt.search.budget import ExploreSettled, TokenBudget
    from tune_gpt.search.tuner import exploring_budget

    space = load_space("f.yaml", profile="cpu", data=_smoke(
        budget={"total_tokens": "1M", "time_budget_s": 600}, final={"explore_share": 0.25}))
    b = exploring_budget(space)
    assert (b.total_tokens, b.time_budget_s) == (250_000, 150)
    assert space.budget.total_tokens == 1_000_000  # the space's own budget is untouched
    both = _budget_stopper(space, str(tmp_path))
    kinds = {type(s) for s in both._stoppers}
    assert kinds == {TokenBudget, ExploreSettled}
    token = next(s for s in both._stoppers if isinstance(s, TokenBudget))
    assert token.total_tokens == 250_000
    settle = next(s for s in both._stoppers if isinstance(s, ExploreSettled))
    assert settle.rule.patience == 4  # smoke's 4 start-up trials (reduction_factor 2)
