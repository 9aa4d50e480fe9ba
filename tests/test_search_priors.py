"""tune_gpt.search.priors on real Optuna studies: the recipe first, prior sampling early,
the wrapped sampler later."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tune_gpt.search.priors import FROM_PRIOR, PriorSampler, sample_near

optuna.logging.set_verbosity(optuna.logging.WARNING)
LR = FloatDistribution(1e-4, 1e-2, log=True)


def objective(t: optuna.Trial) -> float:
    lr = t.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    layers = t.suggest_int("n_layer", 2, 6)
    batch = t.suggest_categorical("batch_size", [12, 16, 32, 64])
    return (math.log10(lr) + 2.5) ** 2 + 0.01 * layers + 0.001 * batch


def _study(priors: dict, n_startup: int = 5, seed: int = 0) -> optuna.Study:
    base = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup)
    return optuna.create_study(sampler=PriorSampler(base, priors, n_startup, seed=seed))


def test_the_first_trial_is_the_prior_itself() -> None:
    study = _study({"learning_rate": (1e-3, "medium"), "n_layer": (4, "high"),
                    "batch_size": (12, "low")})
    study.optimize(objective, n_trials=1)
    assert study.trials[0].params == {"learning_rate": 1e-3, "n_layer": 4, "batch_size": 12}
    assert study.trials[0].system_attrs[FROM_PRIOR] == "center"


def test_startup_trials_concentrate_near_the_prior() -> None:
    """Start-up draws around lr 1e-3 (medium confidence) are much closer to it than uniform
    draws over [1e-4, 1e-2] would be."""
    study = _study({"learning_rate": (1e-3, "high")}, n_startup=40)
    study.optimize(objective, n_trials=40)
    modes = [t.system_attrs.get(FROM_PRIOR) for t in study.trials]
    # half and half; the trial beside the recipe (trial 1) is a uniform one
    assert modes.count("prior") == 19 and modes.count("random") == 20
    assert modes[:4] == ["center", "random", "prior", "random"]
    logs = np.array([math.log10(t.params["learning_rate"]) for t in study.trials
                     if t.system_attrs.get(FROM_PRIOR) == "prior"])
    assert np.median(np.abs(logs + 3)) < 0.3  # uniform over 2 decades: median ~0.5
    assert logs.min() >= -4 and logs.max() <= -2


def test_later_trials_come_mostly_from_the_wrapped_sampler() -> None:
    study = _study({"learning_rate": (1e-3, "medium")}, n_startup=5)
    study.optimize(objective, n_trials=60)
    late = study.trials[30:]
    from_prior = sum(bool(t.system_attrs.get(FROM_PRIOR)) for t in late)
    assert from_prior < len(late) / 3


def test_a_wrong_prior_does_not_sink_the_search() -> None:
    """Prior at lr 1e-4, the optimum at ~3e-3: the prior's draws lose to the uniform ones,
    it is no longer sampled after the start-up, and TPE finds the optimum."""
    study = _study({"learning_rate": (1e-4, "high")}, n_startup=6)
    study.optimize(objective, n_trials=60)
    assert study.best_value < 0.1
    late = [t.system_attrs.get(FROM_PRIOR) for t in study.trials[6:]]
    assert late.count("prior") <= 2


@pytest.mark.parametrize("conf", ["low", "medium", "high"])
def test_sample_near_stays_in_range_and_on_step(conf: str) -> None:
    rng = np.random.RandomState(0)
    ints = IntDistribution(64, 192, step=64)
    for _ in range(200):
        assert 1e-4 <= sample_near(rng, 1e-3, conf, LR) <= 1e-2
        assert sample_near(rng, 128, conf, ints) in (64, 128, 192)
    cats = CategoricalDistribution([12, 16, 32])
    draws = [sample_near(rng, 16, conf, cats) for _ in range(500)]
    assert set(draws) <= {12, 16, 32} and draws.count(16) > 500 / 3


def _trial(number: int, mode: str | None, steps: dict[int, float],
           state: TrialState = TrialState.PRUNED) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(
        state=state, value=steps[max(steps)] if state == TrialState.COMPLETE else None,
        params={"learning_rate": 1e-3}, distributions={"learning_rate": LR},
        intermediate_values=steps, system_attrs={FROM_PRIOR: mode} if mode else {})
    t.number = number
    return t


def test_the_recipe_is_judged_at_equal_fidelity() -> None:
    """The recipe trains to its end on ASHA's empty rungs and finishes COMPLETE. Ranked as
    TPE ranks (finished first) it would always be among the best, however bad; judged at
    the step the others reached, a bad recipe loses and a good one wins."""
    study = optuna.create_study()
    others = [_trial(1, "random", {250_000: 2.5, 750_000: 2.2}),
              _trial(2, "random", {250_000: 2.6, 750_000: 2.3}),
              _trial(3, "random", {250_000: 2.9})]
    bad = _trial(0, "center", {250_000: 3.4, 750_000: 3.0, 2_000_000: 2.7},
                 TrialState.COMPLETE)
    assert PriorSampler.prior_share(study, [bad, *others]) == 0.0
    good = _trial(0, "center", {250_000: 2.4, 750_000: 2.0, 2_000_000: 1.7},
                  TrialState.COMPLETE)
    assert PriorSampler.prior_share(study, [good, *others]) == 0.5  # top 2: it and trial 1


def test_a_losing_prior_is_not_sampled_in_the_start_up() -> None:
    """Start-up draws from the prior alternate with uniform ones only while the prior is
    not losing: once the best trial measured so far (running ones count) is a uniform
    draw, the next prior draw is a uniform one instead."""
    base = optuna.samplers.TPESampler(seed=0, n_startup_trials=10)
    study = optuna.create_study(sampler=PriorSampler(base, {"learning_rate": (1e-4, "high")},
                                                     10, seed=0))

    def objective(t: optuna.Trial) -> float:  # the optimum at lr 3e-3, far from 1e-4
        lr = t.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        value = (math.log10(lr) + 2.5) ** 2
        t.report(value + 1.0, 250_000)
        return value

    study.optimize(objective, n_trials=2)   # the recipe (lr 1e-4), then a uniform draw
    modes = [t.system_attrs.get(FROM_PRIOR) for t in study.trials]
    assert modes == ["center", "random"]
    assert study.trials[1].value < study.trials[0].value   # the uniform draw won
    study.optimize(objective, n_trials=1)
    assert study.trials[2].system_attrs.get(FROM_PRIOR) == "random"  # not "prior"
