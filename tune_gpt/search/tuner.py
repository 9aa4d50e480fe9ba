"""The Ray Tune side of a search, built but not run: `build_tuner` returns the Tuner (a new
one, or one restored from its folder), so a test can inspect it without calling fit().

    tuner = build_tuner(space, folder, dataset, prepared, uri, parent_run_id)
    grid = tuner.fit()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tune_gpt.errors import UserError
from tune_gpt.settings import SchedulerSettings
from tune_gpt.space import SearchSpace, grid_size, label, resolve
from tune_gpt.trial import TrialSettings


def make_scheduler(space: SearchSpace, max_iters: int, vocab_size: int,
                   state_path: Path | None = None) -> Any:
    """Ray's ASHA as `scheduler:` says, or None (every trial runs to its end). With
    `state_path`, its rungs are kept there and survive a resume (search/asha.py)."""
    s = resolved_scheduler(space, max_iters, vocab_size)
    if s.type == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    opts = dict(time_attr=s.time_attr, max_t=s.max_t, grace_period=s.grace_period,
                reduction_factor=s.reduction_factor, brackets=s.brackets)
    if state_path is None:
        return ASHAScheduler(**opts)
    from tune_gpt.search.asha import PersistentASHA

    return PersistentASHA(state_path=state_path, **opts)


def resolved_scheduler(space: SearchSpace, max_iters: int, vocab_size: int
                       ) -> SchedulerSettings:
    """The space's scheduler with max_t and its first rung in time_attr's units, as ASHA
    runs them (and as meta.json records them). max_t defaults to one trial's length:
    budget.tokens_per_trial in tokens (times the largest model's FLOPs per token for
    flops), `max_iters` for iter, the time budget for time_s."""
    s = space.scheduler
    tokens = space.budget.tokens_per_trial or 0
    max_t = s.max_t or {"tokens": tokens, "iter": max_iters,
                        "flops": tokens * max_flops_per_token(space, vocab_size),
                        "time_s": space.budget.time_budget_s or 3600}[s.time_attr]
    return s.resolved(max_t)


def largest_model(space: SearchSpace, vocab_size: int) -> tuple[int, int]:
    """(parameters, training FLOPs per token) of the space's largest model."""
    from tune_gpt.estimate import count_params, flops_per_token
    from tune_gpt.space.resolve import values_of

    L, C, T = (max(values_of(space, k)) for k in ("n_layer", "n_embd", "block_size"))
    n_params = count_params(L, C, T, vocab_size, False)[0]
    return n_params, flops_per_token(n_params, L, C, T)


def max_flops_per_token(space: SearchSpace, vocab_size: int) -> int:
    """Training FLOPs per token of the space's largest model (its longest trial in FLOPs)."""
    return largest_model(space, vocab_size)[1]


def trial_settings(space: SearchSpace, folder: Path, checkpoints: str = "checkpoints"
                   ) -> TrialSettings:
    s = space.scheduler  # rung reads: ASHA's rungs, in tokens (the space checked); none: none
    return TrialSettings(metric=space.metric, checkpoint_dir=str(folder / checkpoints),
                         memory_limit_bytes=space.memory_limit, rung_cooldown=s.rung_cooldown,
                         rungs=tuple(s.rungs(space.budget.tokens_per_trial))
                         if s.rung_cooldown else ())


def make_trainable(space: SearchSpace, folder: Path, prepared: Any,
                   checkpoints: str = "checkpoints",
                   resources: dict[str, float] | None = None) -> Any:
    """The Ray trainable with its data and TrialSettings, and the resources of one trial
    (`resources`, default the space's).
    The token files travel once through Ray's object store, so any node can train on them;
    a data set too big for that is read from a path every node sees (search.nodes checks)."""
    from ray import tune

    from tune_gpt.data.folder import shipment

    res = resources or space.resources
    return tune.with_resources(
        tune.with_parameters(load_trainable(space), data_ship=shipment(prepared),
                             settings=trial_settings(space, folder, checkpoints)),
        {"cpu": res["cpu"], "gpu": res["gpu"]})


def load_trainable(space: SearchSpace) -> Any:
    """The function the space's `trainable: module:function` names (tune_gpt imports no
    trainable of its own: trainables/ is a package beside it). UserError if it cannot be
    imported or is not a function."""
    import importlib

    mod, _, fn = space.trainable.partition(":")
    try:
        found = getattr(importlib.import_module(mod), fn, None)
    except ImportError as e:
        raise UserError(f"{space.source}: trainable {space.trainable!r} cannot be imported "
                        f"({e}); fix `trainable:` or install its package") from None
    if not callable(found):
        raise UserError(f"{space.source}: trainable {space.trainable!r}: {mod} has no function "
                        f"{fn!r}")
    return found


def longest_trial_iters(space: SearchSpace, max_iters_cap: int | None) -> int:
    """max_iters of the space's first point: ASHA's max_t when it counts iterations."""
    point = {k: (d.low if d.candidates() is None else label(d.candidates()[0]))
             for k, d in space.params.items()}
    return max(resolve(space, point, max_iters_cap=max_iters_cap)["max_iters"], 1)


def build_tuner(space: SearchSpace, folder: Path, dataset: str, prepared: Any, uri: str,
                parent_run_id: str, *, seed: int | None = None,
                max_iters_cap: int | None = None, resume: bool = False,
                quiet: bool = False) -> Any:
    """The search's Tuner: the trainable with its data and TrialSettings, the Optuna
    searcher, ASHA, the budgets and the callbacks (MLflow, live view, OOM rescue, the
    compaction of finished trials).
    With `resume`, the Tuner is restored from FOLDER/tune (UserError if there is none)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from tune_gpt.search.live import LiveView
    from tune_gpt.search.mlflow_runs import MLflowTrialCallback
    from tune_gpt.search.rescue import RescueOnOOM
    from tune_gpt.search.driver_memory import CompactFinishedTrials
    from tune_gpt.search.optuna import make_searcher

    trainable = make_trainable(space, folder, prepared)
    tune_dir = folder / "tune"
    if resume:
        if not tune.Tuner.can_restore(str(tune_dir)):
            raise UserError(f"cannot resume: {tune_dir} holds no Ray Tune experiment (the "
                            f"search stopped before its first trial); start it again without "
                            f"--resume")
        return tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_errored=True)

    budget = exploring_budget(space)
    num = budget.num_samples
    if space.sampler.type == "grid" and not space.rescue:
        num = min(num, grid_size(space))  # rescues are extra trials: the user sizes those
    concurrency = trial_slots(space)
    rescue = [RescueOnOOM(str(folder), space.rescue)] if space.rescue else []
    # Ray's automatic loggers are off (TensorBoard's noise); keep the two the results need.
    longest = longest_trial_iters(space, max_iters_cap)
    sched = resolved_scheduler(space, longest, prepared.vocab_size)
    stopper = _budget_stopper(space, str(tune_dir), budget, sched)
    callbacks = [*rescue, JsonLoggerCallback(), CSVLoggerCallback(),
                 MLflowTrialCallback(uri, parent_run_id, budget.time_budget_s, stopper),
                 LiveView(num, list(space.params), space.metric, concurrency,
                          budget.time_budget_s, quiet=quiet, total_tokens=budget.total_tokens),
                 CompactFinishedTrials([space.metric, space.scheduler.time_attr])]
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode,
            search_alg=make_searcher(space, folder, dataset, seed=seed,
                                     max_iters_cap=max_iters_cap,
                                     recipe_bar=sched.grace_period if sched.type == "asha" else None),
            scheduler=make_scheduler(space, longest, prepared.vocab_size,
                                     state_path=folder / "asha.json"),
            num_samples=num, max_concurrent_trials=budget.max_concurrent_trials,
            time_budget_s=budget.time_budget_s, reuse_actors=True,
            trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(folder), verbose=0, log_to_file=True,
            stop=stopper,
            failure_config=tune.FailureConfig(max_failures=2),
            callbacks=callbacks))


def exploring_budget(space: SearchSpace) -> Any:
    """The budget the search explores with: the space's, or with `final:` the share of its
    time, tokens and FLOPs that exploring may take (tune_gpt.explore.explore_budget); the
    final phase gets the rest."""
    from dataclasses import replace

    if space.final is None:
        return space.budget
    from tune_gpt.explore import explore_budget

    return replace(space.budget, **explore_budget(space.budget, space.final.explore_share))


def _budget_stopper(space: SearchSpace, tune_dir: str, budget: Any = None,
                    sched: SchedulerSettings | None = None) -> Any:
    """budget.total_tokens and/or budget.total_flops (of `budget`, default the exploring
    budget), and with `final:` the rule that ends exploring early (on the rungs of `sched`,
    the scheduler as it runs), as one Ray Stopper (None: none of them)."""
    from ray.tune.stopper import CombinedStopper

    from tune_gpt.search.budget import ExploreSettled, TokenBudget

    budget = budget or exploring_budget(space)
    sched = sched or space.scheduler.resolved(space.budget.tokens_per_trial or 0)

    stoppers = [TokenBudget(total, tune_dir, attr) for total, attr in
                ((budget.total_tokens, "tokens"), (budget.total_flops, "flops")) if total]
    if space.final is not None and sched.type == "asha" and sched.rungs():
        from tune_gpt.explore import default_patience

        patience = space.final.patience or default_patience(sched.reduction_factor, space.sampler.startup_trials())
        stoppers.append(ExploreSettled(patience, [*sched.rungs(), *([sched.max_t] if
                                                                    sched.max_t else [])],
                                       sched.time_attr, space.metric))
    return None if not stoppers else stoppers[0] if len(stoppers) == 1 else \
        CombinedStopper(*stoppers)


def trial_slots(space: SearchSpace) -> int:
    """How many trials run at once: budget.max_concurrent_trials, or as many as the
    cluster's CPUs hold at resources.cpu each."""
    return space.budget.max_concurrent_trials or max(1, int(_cluster_cpus() //
                                                            space.resources["cpu"]))


def trial_name(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1.0
