"""Priors from the guide: sample near where good values probably are early, trust the data
later (the idea of πBO, Hvarfner et al. 2022, and PriorBand, Mallik et al. 2023).

A knob's `prior:` (and `confidence: low | medium | high`) in a search space says where good
values probably are: the guide's recommended values, or a known recipe such as nanoGPT's
CPU config. `PriorSampler` wraps an Optuna sampler (TPE by default):

- the first trial is the prior itself (every knob at its prior, the others at random):
  the recipe, run first; with ASHA's rungs still empty it trains to its end (with ASHA, the
  searcher holds the other trials back until the recipe has set the bar at the first rung:
  search/fidelity.py);
- of the start-up trials, where TPE would draw uniformly at random, every other one is
  drawn from the prior instead (as PriorBand mixes prior and uniform draws): a normal
  around the prior (in log space for log ranges) whose width is a share of the range set
  by the confidence, or for a choice the prior with a set probability. The trial beside the
  recipe is a uniform one, so the first comparison is the prior against no prior, and a
  start-up trial is drawn from the prior only while the prior is not losing (at least
  half of the best measured trials, running ones included, came from it);
- after the start-up, each trial is drawn from the prior with probability
  (share of the best trials that came from the prior) x n_startup / (n_startup + trials
  since), otherwise by the wrapped sampler: a prior whose draws win keeps being used for
  a while, a wrong one (its draws lose to the uniform ones) is dropped at once.

Trials are compared at equal fidelity (`prior_share`): the recipe, which always trains to
its end, is judged by its loss at the step the other trials reached, not ranked first for
having finished.

Which trials came from the prior is recorded in the trial's system attrs
(`tune_gpt.from_prior`), so the study says what the prior contributed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                  FloatDistribution, IntDistribution)
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

# Normal width around the prior, as a share of the range (log range for log knobs).
WIDTH = {"low": 0.5, "medium": 0.25, "high": 0.125}
# Probability that a choice knob takes its prior value (otherwise uniform over the rest).
CHOICE_P = {"low": 0.4, "medium": 0.6, "high": 0.8}
FROM_PRIOR = "tune_gpt.from_prior"


class PriorSampler(BaseSampler):
    """An Optuna sampler that samples from per-knob priors early and from `base` later.

    priors: knob (Optuna param name) -> (prior value, confidence)."""

    def __init__(self, base: BaseSampler, priors: dict[str, tuple[Any, str]],
                 n_startup_trials: int = 5, seed: int | None = None,
                 start_at_prior: bool = True):
        self._base = base
        self._priors = dict(priors)
        self._n_startup = max(1, int(n_startup_trials))
        self._rng = np.random.RandomState(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._start_at_prior = start_at_prior
        self._mode: dict[int, str] = {}  # trial number -> "center" | "prior" | "base"

    # -- deciding, once per trial

    def _decide(self, study: optuna.Study, trial: FrozenTrial) -> str:
        if trial.number in self._mode:
            return self._mode[trial.number]
        finished = study._get_trials(deepcopy=False, use_cache=True,
                                     states=(TrialState.COMPLETE, TrialState.PRUNED))
        n = trial.number  # trials asked before this one (running ones included)
        if self._start_at_prior and n == 0:
            mode = "center"
        elif len(finished) < self._n_startup or n < self._n_startup:
            # PriorBand's start: half the start-up trials from the prior, half uniform, so
            # that a wrong prior is seen to lose against plain random draws; the trial
            # beside the recipe is a uniform one: the first comparison is prior vs not
            mode = "random" if n % 2 else "prior"
            if mode == "prior" and self._losing(study, n):
                mode = "random"
        else:
            since = max(0, len(finished) - self._n_startup)
            p = self.prior_share(study, finished) * self._n_startup / (self._n_startup + since)
            mode = "prior" if self._rng.rand() < p else "base"
        self._mode[trial.number] = mode
        return mode

    def _losing(self, study: optuna.Study, n: int) -> bool:
        """Whether fewer than half of the best measured trials so far (the top quarter, or
        the best one; running ones count: the start-up cannot wait for trials to finish)
        came from the prior."""
        seen = [t for t in study._get_trials(deepcopy=False, use_cache=True, states=(
            TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
            if t.intermediate_values and t.number != n]
        return len(seen) >= 2 and self.prior_share(study, seen, top=len(seen) // 4) < 0.5

    @staticmethod
    def prior_share(study: optuna.Study, finished: list[FrozenTrial], top: int = 2) -> float:
        """The share of the best trials (the top quarter, at least `top`) that came from the
        prior, judged at equal fidelity: trials are compared at the furthest step that at
        least half of them reached (their value at or before it), trials that stopped short
        of it rank after those that reached it. Ranking finished before stopped trials, as
        TPE does, would always put the recipe (which runs to its end first, on empty rungs)
        on top, however bad it is. A prior whose draws lose against uniform ones stops being
        sampled."""
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
        measured = [t for t in finished if t.intermediate_values]
        if not measured:  # final values only (a study without intermediate reports)
            measured = [t for t in finished if t.value is not None]
            best = sorted(measured, key=lambda t: sign * t.value)[:max(1, top,
                                                                       len(finished) // 4)]
            return sum(t.system_attrs.get(FROM_PRIOR) in ("center", "prior")
                       for t in best) / len(best) if best else 1.0
        # the furthest step reached by at least half of them, and by two at least
        reached = sorted((max(t.intermediate_values) for t in measured), reverse=True)
        common = reached[max(min(1, len(reached) - 1), math.ceil(len(reached) / 2) - 1)]

        def rank(t: FrozenTrial) -> tuple[int, float]:
            if not t.intermediate_values:  # a penalty (OOM, diverged) or nothing at all
                return (2, sign * t.value if t.value is not None else math.inf)
            steps = [s for s in t.intermediate_values if s <= common]
            if max(t.intermediate_values) >= common and steps:
                return (0, sign * t.intermediate_values[max(steps)])
            step = max(t.intermediate_values)
            return (1, sign * t.intermediate_values[step])

        best = sorted(finished, key=rank)[:max(1, top, len(finished) // 4)]
        return sum(bool(t.system_attrs.get(FROM_PRIOR) in ("center", "prior"))
                   for t in best) / len(best)

    @property
    def starts_at_prior(self) -> bool:
        """Whether trial 0 is the recipe (every knob at its prior)."""
        return self._start_at_prior

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if self._decide(study, trial) != "base":
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        mode = self._decide(study, trial)
        if mode == "base":
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        study._storage.set_trial_system_attr(trial._trial_id, FROM_PRIOR, mode)
        if mode == "random" or param_name not in self._priors:
            return self._random.sample_independent(study, trial, param_name,
                                                   param_distribution)
        value, confidence = self._priors[param_name]
        if mode == "center":
            return _snap(value, param_distribution)
        return sample_near(self._rng, value, confidence, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._random.reseed_rng()
        self._rng = np.random.RandomState()


def sample_near(rng: np.random.RandomState, prior: Any, confidence: str,
                dist: BaseDistribution) -> Any:
    """One draw from the prior's distribution over `dist` (truncated to its range)."""
    if isinstance(dist, CategoricalDistribution):
        choices = list(dist.choices)
        if prior in choices and (len(choices) == 1 or rng.rand() < CHOICE_P[confidence]):
            return prior
        others = [c for c in choices if c != prior] or choices
        return others[rng.randint(len(others))]
    low, high, log = float(dist.low), float(dist.high), bool(dist.log)
    f = math.log if log else (lambda x: x)
    lo, hi, centre = f(low), f(high), f(min(max(float(prior), low), high))
    width = WIDTH[confidence] * (hi - lo)
    for _ in range(64):  # truncated normal by rejection; the range always holds the prior
        x = rng.normal(centre, width) if width > 0 else centre
        if lo <= x <= hi:
            break
    else:
        x = centre
    return _snap(math.exp(x) if log else x, dist)


def _snap(value: Any, dist: BaseDistribution) -> Any:
    """A value as the distribution holds it: on its step, inside its range."""
    if isinstance(dist, CategoricalDistribution):
        return value if value in dist.choices else dist.choices[0]
    if isinstance(dist, IntDistribution):
        step = dist.step or 1
        v = int(round((float(value) - dist.low) / step)) * step + dist.low
        return int(min(max(v, dist.low), dist.high))
    assert isinstance(dist, FloatDistribution)
    v = float(value)
    if dist.step:
        v = round((v - dist.low) / dist.step) * dist.step + dist.low
    return float(min(max(v, dist.low), dist.high))
