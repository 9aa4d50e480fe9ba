"""tune_gpt.search.fidelity: what the sampler is told about each kind of trial, on a real
OptunaSearch and a real Optuna study (driven by hand, as Ray's controller drives it)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tune_gpt.search.fidelity import MultiFidelityOptunaSearch

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(t):
    t.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    return {"batch_size": 8}


@pytest.fixture
def searcher():
    s = MultiFidelityOptunaSearch(space, metric="val_loss", mode="min",
                                  resource_attr="tokens",
                                  sampler=optuna.samplers.RandomSampler(seed=0))
    return s


def _report(s, tid: str, losses: list[float], outcome_last: str = "running") -> dict:
    last = {}
    for i, v in enumerate(losses, 1):
        last = {"val_loss": v, "tokens": 250_000 * i, "training_iteration": i,
                "outcome": outcome_last if i == len(losses) else "running"}
        s.on_trial_result(tid, last)
    return last


def _frozen(s, tid: str):
    return s._ot_study.trials[s._ot_trials[tid].number]


def test_stopped_trials_are_pruned_at_their_token_steps(searcher) -> None:
    s = searcher
    for tid in ("done", "stopped", "oom", "boom", "never"):
        s.suggest(tid)
    s.on_trial_complete("done", _report(s, "done", [2.0, 1.8, 1.6], "completed"))
    s.on_trial_complete("stopped", _report(s, "stopped", [2.5]))   # ASHA: still "running"
    s.on_trial_result("oom", {"val_loss": 5.2, "tokens": 0, "outcome": "oom",
                              "training_iteration": 1})
    s.on_trial_complete("oom", {"val_loss": 5.2, "tokens": 0, "outcome": "oom"})
    s.on_trial_complete("boom", None, error=True)
    s.on_trial_complete("never", None)  # stopped by a budget before its first report

    done, stopped, oom = (_frozen(s, t) for t in ("done", "stopped", "oom"))
    assert done.state == TrialState.COMPLETE and done.value == 1.6
    assert done.intermediate_values == {250_000: 2.0, 500_000: 1.8, 750_000: 1.6}
    assert stopped.state == TrialState.PRUNED
    assert stopped.intermediate_values == {250_000: 2.5} and stopped.value == 2.5
    assert oom.state == TrialState.COMPLETE and oom.value == 5.2  # the penalty is kept
    assert oom.intermediate_values == {}  # a penalty is no measurement of the model
    assert _frozen(s, "boom").state == TrialState.FAIL
    assert _frozen(s, "never").state == TrialState.PRUNED


def test_ray_would_have_called_the_stopped_trial_complete() -> None:
    """The behaviour this module fixes (Ray 2.60's OptunaSearch), so the test above is not
    vacuous: the same calls on the plain searcher record a COMPLETE trial."""
    from ray.tune.search.optuna import OptunaSearch

    s = OptunaSearch(space, metric="val_loss", mode="min",
                     sampler=optuna.samplers.RandomSampler(seed=0))
    s.suggest("stopped")
    s.on_trial_complete("stopped", _report(s, "stopped", [2.5]))
    assert _frozen(s, "stopped").state == TrialState.COMPLETE


def test_the_searcher_survives_save_and_restore(searcher, tmp_path) -> None:
    s = searcher
    s.suggest("a")
    _report(s, "a", [2.2])
    s.save(str(tmp_path / "searcher.pkl"))
    again = MultiFidelityOptunaSearch(space, metric="val_loss", mode="min")
    again.restore(str(tmp_path / "searcher.pkl"))
    again.on_trial_complete("a", {"val_loss": 2.2, "tokens": 250_000, "outcome": "running"})
    assert _frozen(again, "a").state == TrialState.PRUNED and again.resource_attr == "tokens"


def _with_prior(recipe_bar):
    from tune_gpt.search.priors import PriorSampler

    sampler = PriorSampler(optuna.samplers.TPESampler(seed=0),
                           {"learning_rate": (1e-3, "medium")}, 5, seed=0)
    return MultiFidelityOptunaSearch(space, metric="val_loss", mode="min",
                                     resource_attr="tokens", sampler=sampler,
                                     recipe_bar=recipe_bar)


def test_the_other_trials_wait_for_the_recipe_to_reach_the_first_rung() -> None:
    """With a prior and ASHA, nothing else is proposed (Ray asks again later) until the
    recipe has set the bar at ASHA's first rung."""
    s = _with_prior(recipe_bar=500_000)
    assert s.suggest("recipe")["learning_rate"] == pytest.approx(1e-3)
    assert s.suggest("b") is None
    _report(s, "recipe", [3.0])                  # 250k: short of the rung
    assert s.suggest("b") is None
    s.on_trial_result("recipe", {"val_loss": 2.8, "tokens": 500_000,
                                 "training_iteration": 2, "outcome": "running"})
    assert s.suggest("b") is not None
    assert s.suggest("c") is not None            # no more waiting after that


def test_no_wait_without_asha_or_once_the_recipe_has_ended() -> None:
    s = _with_prior(recipe_bar=None)             # no ASHA: nothing to set a bar for
    s.suggest("recipe")
    assert s.suggest("b") is not None
    s = _with_prior(recipe_bar=500_000)
    s.suggest("recipe")
    s.on_trial_complete("recipe", None, error=True)  # a recipe that failed at once
    assert s.suggest("b") is not None
    plain = MultiFidelityOptunaSearch(space, metric="val_loss", mode="min",
                                      resource_attr="tokens", recipe_bar=500_000,
                                      sampler=optuna.samplers.RandomSampler(seed=0))
    plain.suggest("a")                           # no prior: no recipe
    assert plain.suggest("b") is not None
