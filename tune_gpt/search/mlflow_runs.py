"""One nested MLflow run per trial, written as the search runs (a Ray Tune callback in the
driver): params, metric series, the outcome and why the trial ended.

The callback must pickle (Ray stores it with the experiment so that `Tuner.restore` can bring
it back), so the MLflow client is rebuilt lazily after a restore.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from tune_gpt import trial as outcomes
from tune_gpt.tracking import TrialRunLogger
from tune_gpt.trial import outcome_of


class MLflowTrialCallback(Callback):
    """One nested MLflow run per trial: params, metric series, outcome tags."""

    def __init__(self, tracking_uri: str, parent_run_id: str, time_budget_s: float | None,
                 stopper: Any = None):
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.time_budget_s = time_budget_s
        self.stopper = stopper  # the search's budget stopper: says when it stopped a trial
        self._logger: TrialRunLogger | None = None
        self._last: dict[str, dict[str, Any]] = {}
        self._start = time.time()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_logger"] = None
        return state

    @property
    def logger(self) -> TrialRunLogger:
        if self._logger is None:
            self._logger = TrialRunLogger(self.tracking_uri, None, self.parent_run_id)
        return self._logger

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        self._last[trial.trial_id] = result
        self.logger.log_result(trial.trial_id, str(trial), trial.config, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        last = self._last.get(trial.trial_id) or trial.last_result or {}
        outcome = outcome_of(last)
        if outcome == outcomes.STOPPED_EARLY:
            from tune_gpt.search.budget import stop_reason

            over = self.time_budget_s and time.time() - self._start >= self.time_budget_s * 0.98
            why = "search time budget reached" if over else stop_reason(self.stopper) or \
                f"ASHA: below the rung cut-off at {int(last.get('tokens', 0)):,} tokens"
        elif outcome == outcomes.COMPLETED:
            why = "reached max_iters"
        else:
            why = str(last.get("error", outcome))
        self.logger.finish(trial.trial_id, str(trial), trial.config, outcome, last, why)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        last = dict(self._last.get(trial.trial_id) or trial.last_result or {})
        outcome = outcome_of(last, errored=True)
        last["error"] = last.get("error") or _error_text(trial)
        self.logger.finish(trial.trial_id, str(trial), trial.config, outcome, last,
                           f"trial process failed: {last['error']}")


def _error_text(trial: Any) -> str:
    err = getattr(trial, "error_file", None) or ""
    try:
        with open(err, encoding="utf-8") as f:
            lines = [ln for ln in f.read().strip().splitlines() if ln.strip()]
            return lines[-1][:500] if lines else "unknown error"
    except OSError:
        return "trial process failed (see the trial's error.txt)"
