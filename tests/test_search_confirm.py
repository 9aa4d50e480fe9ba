"""tune_gpt.search.confirm: picking the configs to re-run, their seeds, and the verdict."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tune_gpt.search.confirm import SEED_STRIDE, confirm_configs, pick_top, summarize
from tune_gpt.trial import TRIAL_PLAN_KEY, TrialPlan


def _rows() -> list[dict]:
    return [{"trial_id": "a", "outcome": "completed", "best_val_loss": 1.50},
            {"trial_id": "b", "outcome": "stopped_early", "best_val_loss": 1.52},
            {"trial_id": "c", "outcome": "oom", "best_val_loss": 5.2},
            {"trial_id": "d", "outcome": "completed", "best_val_loss": 1.60},
            {"trial_id": "e", "outcome": "completed", "best_val_loss": math.nan}]


def test_pick_top_takes_usable_trials_best_first() -> None:
    assert pick_top(_rows(), "val_loss", 2) == ["a", "b"]
    assert pick_top(_rows(), "val_loss", 10) == ["a", "b", "d"]  # no oom, no NaN


def test_confirm_configs_new_seeds_full_knobs_and_the_link() -> None:
    configs = {"a": {"seed": 7, "max_iters": 100, **TrialPlan(sampled={"x": 1}).to_config()}}
    runs = confirm_configs(["a"], configs, 2)
    assert [r["seed"] for r in runs] == [7 + SEED_STRIDE, 7 + 2 * SEED_STRIDE]
    assert all(r["max_iters"] == 100 and TrialPlan.of(r).confirm_of == "a" for r in runs)
    assert all(set(r) == {"seed", "max_iters", TRIAL_PLAN_KEY} for r in runs)


def _rerun(of: str, v: float, outcome: str = "completed") -> dict:
    return {"confirm_of": of, "outcome": outcome, "best_val_loss": v}


def test_a_real_winner() -> None:
    reruns = [_rerun("a", 1.49), _rerun("a", 1.51), _rerun("b", 1.60), _rerun("b", 1.62)]
    s = summarize(["a", "b"], _rows(), reruns, "val_loss", 2)
    a, b = s["configs"]
    # a config's sample is its re-runs: the search run (1.50) is shown, not counted
    assert a["values"] == [1.49, 1.51] and a["search_value"] == 1.50
    assert a["mean"] == pytest.approx(1.50) and b["values"] == [1.60, 1.62]
    assert s["winner"] == "a" and s["runner_up"] == "b" and s["same_as_search_best"]
    assert s["noise"] == pytest.approx(math.sqrt((0.0002 + 0.0002) / 2)) and s["dof"] == 2
    assert s["t"] == pytest.approx(4.303, abs=1e-3)  # Student's t, 2 dof, two-sided 95%
    assert s["threshold"] == pytest.approx(s["t"] * s["gap_se"])
    assert s["gap"] == pytest.approx(0.11) and s["winner_is_real"] is True


def test_the_run_picked_for_being_best_is_not_counted() -> None:
    """The winner's curse: a's search run was the luckiest of the search (1.30). On new seeds
    a is worse than b, and the summary must say so; counting the lucky run would make a
    the winner (mean 1.453 < 1.51)."""
    rows = [{"trial_id": "a", "outcome": "completed", "best_val_loss": 1.30},
            {"trial_id": "b", "outcome": "completed", "best_val_loss": 1.45}]
    reruns = [_rerun("a", 1.52), _rerun("a", 1.54), _rerun("b", 1.50), _rerun("b", 1.52)]
    s = summarize(["a", "b"], rows, reruns, "val_loss", 2)
    assert s["winner"] == "b" and not s["same_as_search_best"]
    assert [c["n"] for c in s["configs"]] == [2, 2]


def test_a_gap_two_standard_errors_wide_is_not_real_with_few_seeds() -> None:
    """z = 2 would call this gap (2.47 standard errors) real; Student's t at the 2 degrees of
    freedom two re-runs a config leave (4.30) does not."""
    reruns = [_rerun("a", 1.49), _rerun("a", 1.51), _rerun("b", 1.525), _rerun("b", 1.545)]
    s = summarize(["a", "b"], _rows(), reruns, "val_loss", 2)
    assert s["gap"] / s["gap_se"] == pytest.approx(2.47, abs=0.01)
    assert s["winner_is_real"] is False


def test_a_winner_within_the_noise_and_a_changed_winner() -> None:
    reruns = [_rerun("a", 1.56), _rerun("a", 1.48), _rerun("b", 1.49), _rerun("b", 1.47)]
    s = summarize(["a", "b"], _rows(), reruns, "val_loss", 2)
    assert s["winner"] == "b" and not s["same_as_search_best"]
    assert s["winner_is_real"] is False


def test_too_few_runs_say_so() -> None:
    s = summarize(["b", "d"], _rows(), [_rerun("b", 1.5, "oom")], "val_loss", 1)
    assert s["winner_is_real"] is None and s["configs"][0]["failed_reruns"] == 1


def test_the_report_shows_the_verdict_and_marks_effects_within_noise() -> None:
    from tune_gpt.report import build_report
    from tune_gpt.report.effects import effect

    e = effect("dropout", "val_loss", pd.Series([0.0, 0.0, 0.1, 0.1, 0.2, 0.2]),
               pd.Series([1.50, 1.51, 1.52, 1.53, 1.54, 1.55]), noise=0.05)
    assert e.direction == "noise"
    assert effect("dropout", "val_loss", pd.Series([0.0, 0.0, 0.1, 0.1, 0.2, 0.2]),
                  pd.Series([1.50, 1.51, 1.52, 1.53, 1.54, 1.55])).direction == "up"
    reruns = [_rerun("a", 1.49), _rerun("a", 1.51), _rerun("b", 1.60), _rerun("b", 1.62)]
    confirm = summarize(["a", "b"], _rows(), reruns, "val_loss", 2)
    trials = pd.DataFrame([{**r, "final_val_loss": r["best_val_loss"], "tokens": 1000,
                            "iters": 10} for r in _rows()])
    curves = pd.DataFrame([{"trial_id": r["trial_id"], "iter": 10, "tokens": 1000,
                            "val_loss": r["best_val_loss"], "train_loss": 1.4}
                           for r in _rows()])
    for lang, word in (("en", "the lead is real"), ("zh", "领先是真实的")):
        report = build_report(trials, curves, {"name": "x", "confirm": confirm}, lang=lang)
        assert word in report.markdown and "`confirm_of`" in report.markdown
