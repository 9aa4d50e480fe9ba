"""Multi-fidelity feedback for Optuna: a trial that ASHA stopped reaches the sampler as what
it is, PRUNED at the token (or FLOP) step it reached, not as a finished trial.

Ray's OptunaSearch (2.60) tells Optuna a stopped trial is COMPLETE with its last value, and
reports intermediate values at `training_iteration`. TPE then ranks a 250k-token loss
beside 2M-token losses as if both were final, and its "good" group (the best ~10% of
trials) fills with trials that were merely cheap. Told PRUNED, TPE does what its authors
designed for: finished trials rank first by value, then stopped ones by the step they
reached (furthest first) and their loss there (optuna/samplers/_tpe/sampler.py,
`_split_trials`).

    searcher = MultiFidelityOptunaSearch(space_fn, metric="val_loss", mode="min",
                                         resource_attr="tokens", sampler=..., storage=...)

What each outcome becomes (tune_gpt.trial's words):
    completed                 COMPLETE with its metric (Ray's behaviour)
    stopped_early             PRUNED; Optuna takes the last intermediate value as its value
    oom / diverged / failed   COMPLETE with the penalty the trainable reported (worse than
    / predicted_oom           uniform guessing), so the sampler learns to avoid the region
    an exception, no report   FAIL (Ray's behaviour)

With a prior (search/priors.py), the recipe is trial 0 and trains to its end on ASHA's empty
rungs. With ASHA (`recipe_bar`: its first rung), the searcher proposes nothing else until
the recipe has reached that rung: its value there is the bar the trials started beside it are
held to. Without the wait, a small, fast trial started beside a slow recipe reaches every rung
first, finds it empty and trains to its end too, however poor it is (the replay benchmark:
with the wait the default reached the target on 27-30 of 30 seeds, without it on 22).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from tune_gpt import trial as contract

logger = logging.getLogger(__name__)


class MultiFidelityOptunaSearch(OptunaSearch):
    """OptunaSearch whose intermediate values are at `resource_attr` steps (the resource
    ASHA's rungs count: tokens or FLOPs) and whose stopped trials are PRUNED."""

    def __init__(self, *args: Any, resource_attr: str = "tokens",
                 recipe_bar: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.resource_attr = resource_attr
        # ASHA's first rung (resource_attr units): the recipe's bar; None: no ASHA, no wait
        self.recipe_bar = recipe_bar
        # trial -> furthest step it reported a measurement at (a key: it was measured)
        self._reached: dict[str, float] = {}
        self._recipe: str | None = None   # the trial running the prior's recipe (trial 0)

    def suggest(self, trial_id: str) -> dict | None:
        recipe = self._recipe
        if recipe is not None and recipe not in self._completed_trials and \
                self._reached.get(recipe, -1.0) < self.recipe_bar:
            return None  # Ray asks again later: wait for the recipe's first rung
        config = super().suggest(trial_id)
        if recipe is None and self.recipe_bar is not None and self._starts_at_recipe():
            self._recipe = trial_id
        return config

    def _starts_at_recipe(self) -> bool:
        from tune_gpt.search.priors import PriorSampler

        sampler = getattr(self._ot_study, "sampler", None)
        return isinstance(sampler, PriorSampler) and sampler.starts_at_prior and \
            len(self._ot_trials) == 1

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if result.get("outcome") not in contract.EVALUATED:
            return  # a penalty report (oom, diverged...) is not a measurement of the model
        value = result.get(self.metric)
        step = result.get(self.resource_attr)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or \
                not isinstance(step, (int, float)):
            return
        self._ot_trials[trial_id].report(float(value), int(step))
        self._reached[trial_id] = max(self._reached.get(trial_id, 0.0), float(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        outcome = contract.outcome_of(result, errored=error)
        ot_trial = self._ot_trials[trial_id]
        if outcome == contract.STOPPED_EARLY and trial_id in self._reached:
            from optuna.trial import TrialState

            try:
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            except Exception as exc:  # noqa: BLE001 — as Ray does: a warning, not a crash
                logger.warning(exc)
            self._completed_trials.add(trial_id)
            return
        # stopped before its first evaluation: nothing measured, PRUNED without a value
        if outcome == contract.STOPPED_EARLY:
            result = None
        return super().on_trial_complete(trial_id, result, error)
