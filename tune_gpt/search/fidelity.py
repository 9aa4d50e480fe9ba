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

    def __init__(self, *args: Any, resource_attr: str = "tokens", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.resource_attr = resource_attr
        self._measured: set[str] = set()  # trials with at least one intermediate value

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
        self._measured.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        outcome = contract.outcome_of(result, errored=error)
        ot_trial = self._ot_trials[trial_id]
        if outcome == contract.STOPPED_EARLY and trial_id in self._measured:
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
