"""tune_gpt.search.priors on real Optuna studies: the recipe first, prior sampling early,
the wrapped sampler later."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

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
    assert modes.count("prior") == 20 and modes.count("random") == 19  # half and half
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
