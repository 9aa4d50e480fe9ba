"""The OOM rescue (`memory: {rescue: N}`): a Ray Tune callback in the driver that queues a
trial that ran out of memory again, with half the batch and twice the accumulation."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from tune_gpt import trial as outcomes
from tune_gpt.search.optuna import RESCUE_ATTR, study_storage
from tune_gpt.trial import TrialPlan


class RescueOnOOM(Callback):
    """The guide's remedy 3 (gradient accumulation: half the memory, the same result), done
    for the user: a trial that ran out of memory is queued again in the Optuna study with
    the same sampled params, batch_size halved and gradient_accumulation_steps doubled (the
    same tokens per iteration), up to `max_rescues` times per config. The new trial records
    `rescue_of`, which links it to the original in MLflow and the report. A rescue takes
    one of the search's num_samples."""

    def __init__(self, folder: str, max_rescues: int):
        self.folder, self.max_rescues = folder, max_rescues

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        last = trial.last_result or {}
        if last.get("outcome") != outcomes.OOM:
            return
        cfg = trial.config
        plan = TrialPlan.of(cfg)
        if plan.rescue_depth >= self.max_rescues or cfg["batch_size"] < 2:
            return
        import optuna
        from pathlib import Path

        folder = Path(self.folder)
        study = optuna.load_study(study_name=folder.name, storage=study_storage(folder))
        study.enqueue_trial(dict(plan.sampled), skip_if_exists=False,
                            user_attrs={RESCUE_ATTR: {
                                "of": plan.rescue_of or trial.trial_id,
                                "batch_size": cfg["batch_size"] // 2,
                                "gradient_accumulation_steps":
                                    cfg["gradient_accumulation_steps"] * 2,
                                "depth": plan.rescue_depth + 1}})
