"""The trial contract (tune_gpt.trial): one outcome vocabulary, one set of columns."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tune_gpt import trial
from tune_gpt.config import KNOBS


@pytest.mark.parametrize("last, errored, expected", [
    ({"outcome": "completed"}, False, trial.COMPLETED),
    ({"outcome": "running"}, False, trial.STOPPED_EARLY),   # ASHA or a budget stopped it
    (None, False, trial.STOPPED_EARLY),                     # stopped before its first report
    ({"outcome": "oom"}, False, trial.OOM),
    ({"outcome": "diverged"}, False, trial.DIVERGED),
    ({"outcome": "predicted_oom"}, False, trial.PREDICTED_OOM),
    ({"outcome": "running"}, True, trial.FAILED),           # its process raised
    (None, True, trial.FAILED),
    ({"outcome": "oom"}, True, trial.OOM),                  # it said why before it died
    ({"outcome": "diverged"}, True, trial.DIVERGED),
])
def test_outcome_of(last, errored, expected) -> None:
    assert trial.outcome_of(last, errored=errored) == expected


def test_vocabulary_has_running_and_every_end() -> None:
    assert trial.RUNNING in trial.ALL and trial.RUNNING not in trial.ENDED
    assert set(trial.ENDED) | {trial.RUNNING} == set(trial.ALL)
    assert trial.recorded_outcome("running") == trial.RUNNING
    assert trial.recorded_outcome(None) == trial.FAILED
    assert trial.recorded_outcome("bogus") == trial.FAILED


def test_eval_keys_are_the_training_loops_record() -> None:
    from tune_gpt.train import EvalRecord

    fields = [f.name for f in dataclasses.fields(EvalRecord) if f.name != "diverged"]
    # a rung read's fields are reported and logged, not curve columns
    assert list(trial.EVAL_KEYS) + list(trial.READ_KEYS) == fields
    assert set(trial.READ_KEYS) <= set(trial.METRIC_KEYS)
    assert trial.CURVE_COLUMNS[0] == "trial_id" and trial.CURVE_COLUMNS[1:] == trial.EVAL_KEYS
    assert set(trial.EVAL_KEYS) - {"iter"} <= set(trial.METRIC_KEYS)


def _row(tid: str, vals: list[float], trains: list[float], outcome: str = "completed") -> dict:
    evals = [{"iter": i, "tokens": 100 * i, "val_loss": v, "train_loss": t}
             for i, (v, t) in enumerate(zip(vals, trains), 1)]
    return trial.trial_row(tid, outcome, "", {"batch_size": 8}, evals, evals[-1], KNOBS)


def test_trial_row_columns_and_losses() -> None:
    row = _row("a", [2.0, 1.5, 1.7], [2.1, 1.4, 1.2])
    assert set(trial.TRIAL_TEXT) | set(trial.TRIAL_NUMBERS) | set(KNOBS) >= set(row)
    assert row["best_val_loss"] == 1.5 and row["final_val_loss"] == 1.7
    assert row["best_train_loss"] == 1.2 and row["final_train_loss"] == 1.2
    empty = trial.trial_row("b", trial.FAILED, "boom", {}, [], {}, KNOBS)
    assert math.isnan(empty["best_val_loss"]) and empty["error"] == "boom"


def test_best_follows_the_metric() -> None:
    """A bug once: metric train_loss chose the best trial by val_loss."""
    rows = [_row("val-winner", [1.5], [1.6]), _row("train-winner", [1.8], [1.2])]
    assert trial.best_of(rows, "val_loss")["trial_id"] == "val-winner"
    assert trial.best_of(rows, "best_val_loss")["trial_id"] == "val-winner"
    assert trial.best_of(rows, "train_loss")["trial_id"] == "train-winner"
    assert trial.best_of([], "val_loss") is None
    assert trial.told_column("train_loss") == "final_train_loss"


def test_trial_plan_round_trips_through_a_config() -> None:
    plan = trial.TrialPlan(sampled={"learning_rate": 1e-3}, rescue_of="abc", rescue_depth=1)
    config = {"batch_size": 8, **plan.to_config()}
    assert trial.TrialPlan.of(config) == plan
    assert trial.knobs_of(config) == {"batch_size": 8}
    assert trial.TrialPlan.of({"batch_size": 8}) == trial.TrialPlan()


def test_search_meta_reads_old_and_new_files() -> None:
    meta = trial.SearchMeta.from_dict({"name": "x", "metric": "train_loss", "old_key": 1,
                                       "best": None})
    assert meta.name == "x" and meta.metric == "train_loss" and meta.best is None
    assert trial.SearchMeta.from_dict(meta.to_dict()) == meta
    assert trial.SearchMeta.from_dict(None) == trial.SearchMeta()
