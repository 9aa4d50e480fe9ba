"""Knob effects at an equal budget, and why they differ from the naive "final value" view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report_data import RUNG0, biased_search, report_of, section

from tune_gpt.report.effects import knob_effects
from tune_gpt.report.results import at_budget, common_budget, comparable_ids, prepare
from tune_gpt.report.stats import halves, pareto_front, spearman


def test_equal_budget_undoes_the_early_stopping_bias():
    fx = report_of("biased").findings.effects
    assert fx.budget == RUNG0  # where the stopped trials stopped
    eq, naive = fx.get("dropout", "val_loss"), fx.get("dropout", "val_loss", naive=True)
    # at equal budget the high-dropout trials are better: more dropout -> lower val_loss ...
    assert eq.direction == "down" and eq.rho < 0 and eq.diff < 0
    # ... but read where each trial stopped, dropout looks harmful
    assert naive.direction == "up" and naive.rho > 0
    text = section(report_of("biased").markdown, 7)
    assert "`dropout` would look harmful (↑ loss) for val_loss instead of helpful (↓ loss)" in text


def test_the_naive_view_is_what_one_gets_from_final_values():
    trials, curves, meta = biased_search()
    rho, n = spearman(trials["dropout"], trials["final_val_loss"])
    assert n == 6 and rho > 0.3
    res = prepare(trials, curves, meta)
    at = at_budget(res, comparable_ids(res), RUNG0)
    rho_eq, _ = spearman(trials.set_index("trial_id")["dropout"], at["val_loss"])
    assert rho_eq < -0.3


def test_value_at_budget_is_the_last_eval_at_or_before_it():
    trials = pd.DataFrame({"trial_id": ["a", "b"], "outcome": ["completed", "stopped_early"],
                           "tokens_per_iter": [100, 100]})
    curves = pd.DataFrame({"trial_id": ["a"] * 4 + ["b"] * 3,
                           "iter": [0, 1, 3, 5, 0, 2, 4],
                           "tokens": [0, 100, 300, 500, 0, 200, 400],
                           "val_loss": [4.0, 3.0, 2.0, 1.5, 4.0, 2.5, 2.2],
                           "train_loss": [4.0, 2.9, 1.9, 1.3, 4.0, 2.4, 2.0]})
    res = prepare(trials, curves, {})
    assert common_budget(res, ["a", "b"]) == 400  # b reached 400, a 500
    at = at_budget(res, ["a", "b"], 400)
    assert at.loc["a", "val_loss"] == 2.0 and at.loc["a", "tokens"] == 300  # not the 1.5 at 500
    assert at.loc["b", "val_loss"] == 2.2
    assert at.loc["a", "gap"] == pytest.approx(0.1)


def test_statistics():
    x = pd.Series([1, 2, 3, 4], index=list("abcd"))
    assert spearman(x, pd.Series([10, 20, 30, 40], index=list("abcd")))[0] == pytest.approx(1)
    assert spearman(x, pd.Series([4, 3, 2, 1], index=list("abcd")))[0] == pytest.approx(-1)
    assert np.isnan(spearman(x, pd.Series([1, 1, 1, 1], index=list("abcd")))[0])
    h = halves(pd.Series([16, 16, 16, 64], index=list("abcd")), pd.Series([1.0, 2.0, 3.0, 9.0], index=list("abcd")))
    assert h.low == ["a", "b", "c"] and h.high == ["d"] and h.diff == pytest.approx(7.0)
    front = pareto_front(pd.Series([1, 2, 3], index=list("xyz")), pd.Series([1.0, 1.5, 1.2], index=list("xyz")))
    assert front == ["z", "x"]  # y is slower than z and worse


def test_every_tuned_knob_gets_all_four_metrics_and_importances_from_meta():
    fx = report_of("planted").findings.effects
    knobs = ["batch_size", "learning_rate", "n_layer", "n_head", "n_embd", "dropout"]
    assert [e.knob for e in fx.effects[::4]] == knobs
    assert {e.metric for e in fx.effects} == {"val_loss", "tokens_per_s", "peak_mem", "gap"}
    assert fx.importance_source == "meta" and next(iter(fx.importances)) == "learning_rate"
    assert fx.get("n_embd", "peak_mem").direction == "up"  # wider models need more memory
    text = section(report_of("planted").markdown, 7)
    assert "Spearman" in text and "memory ↑, speed ↑, gradient noise ↓" in text


def test_importances_fall_back_to_rank_correlation():
    fx = knob_effects(prepare(*biased_search()))
    assert fx.importance_source == "spearman" and set(fx.importances) == {"dropout"}
