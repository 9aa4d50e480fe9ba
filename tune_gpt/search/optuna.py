"""Optuna's side of a search: the define-by-run space, the sampler, the searcher, and the
study after the fact (closing trials a killed driver left open, parameter importances).

    searcher = make_searcher(space, folder, dataset, seed=0)   # Ray's OptunaSearch
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tune_gpt.errors import note
from tune_gpt.settings import SAMPLERS
from tune_gpt.space import SearchSpace, label, resolve, suggest
from tune_gpt.space.sampler_options import check_sampler_options
from tune_gpt.trial import TrialPlan

RESCUE_ATTR = "tune_gpt.rescue"  # Optuna user attr of an enqueued OOM rescue


class DefineByRun:
    """Optuna define-by-run space for Ray's OptunaSearch: sample the tuned knobs, return the
    trial's whole config as constants: every knob, plus its TrialPlan (picklable, so a
    restored search has it)."""

    def __init__(self, space: SearchSpace, data: str, max_iters_cap: int | None = None,
                 seed: int | None = None):
        self.space, self.data, self.cap, self.seed = space, data, max_iters_cap, seed

    def __call__(self, trial: Any) -> dict[str, Any]:
        sampled = suggest(trial, self.space)
        knobs = resolve(self.space, sampled, data=self.data, max_iters_cap=self.cap,
                        seed=self.seed)
        plan = TrialPlan(sampled=dict(sampled))
        rescue = (getattr(trial, "user_attrs", None) or {}).get(RESCUE_ATTR)
        if rescue:  # an OOM'd config again: same tokens/iter in smaller micro-batches
            knobs["batch_size"] = rescue["batch_size"]
            knobs["gradient_accumulation_steps"] = rescue["gradient_accumulation_steps"]
            plan = TrialPlan(sampled=dict(sampled), rescue_of=str(rescue["of"]),
                             rescue_depth=int(rescue["depth"]))
        return {**knobs, **plan.to_config()}


def make_sampler(space: SearchSpace, seed: int | None = None) -> Any:
    """The Optuna sampler the space names, with its options (`sampler:` minus type, seed and
    priors). When knobs have a `prior:` (and `sampler.priors` is not false), it is wrapped in
    a PriorSampler: the recipe first, start-up trials near the priors (search/priors.py)."""
    import optuna

    opts = dict(space.sampler.options)
    seed = seed if seed is not None else space.sampler.seed
    cls = getattr(optuna.samplers, SAMPLERS[space.sampler.type])
    if space.sampler.type == "grid":
        opts["search_space"] = {k: [label(v) for v in d.candidates() or []]
                                for k, d in space.params.items()}
    check_sampler_options(space.sampler, space.source)  # as validate does: one clear line
    base = cls(seed=seed, **opts)
    priors = {name: (label(p), space.params[name].confidence)
              for name, p in space.priors().items()}
    if not priors or space.sampler.type == "grid" or not space.sampler.priors:
        return base
    from tune_gpt.search.priors import PriorSampler

    return PriorSampler(base, priors, space.sampler.startup_trials(), seed=seed)


def study_storage(folder: Path) -> str:
    return f"sqlite:///{folder / 'optuna.db'}"


def make_searcher(space: SearchSpace, folder: Path, dataset: str, *, seed: int | None = None,
                  max_iters_cap: int | None = None, recipe_bar: float | None = None) -> Any:
    """Ray's OptunaSearch over the space, with its study in FOLDER/optuna.db (readable by
    optuna-dashboard). `seed` (--seed) seeds the sampler and every trial's training.
    `recipe_bar` (ASHA's first rung): with a prior, the other trials wait for the recipe to
    reach it (search/fidelity.py)."""
    import optuna

    from tune_gpt.search.fidelity import MultiFidelityOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_seed = seed if seed is not None else space.sampler.seed
    resource = space.scheduler.time_attr if space.scheduler.type == "asha" else "tokens"
    return MultiFidelityOptunaSearch(
        DefineByRun(space, dataset, max_iters_cap, seed), metric=space.metric,
        mode=space.mode, sampler=make_sampler(space, sampler_seed), study_name=folder.name,
        storage=optuna.storages.RDBStorage(study_storage(folder)), resource_attr=resource,
        recipe_bar=recipe_bar)


def importances(folder: Path) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA); empty when there is too little to say."""
    try:
        import optuna

        study = optuna.load_study(study_name=folder.name, storage=study_storage(folder))
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(done) < 3:
            return {}
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception as e:  # noqa: BLE001 — importances are a nicety, never a reason to fail
        note(f"Optuna's parameter importances left out ({type(e).__name__}: {e})")
        return {}


def reconcile_study(folder: Path, trials: Any, score: str) -> int:
    """Close Optuna trials left RUNNING by an interrupted driver.

    A trial that was running when the driver died is resumed by Ray from its checkpoint,
    but the restored searcher may no longer know which Optuna trial it was, leaving that
    one RUNNING for ever. Tell it what the search's searcher would have: PRUNED when the Ray
    trial with the same sampled params was stopped early, else its `score` column; FAIL
    when none matches. Returns how many were closed."""
    import optuna

    study = optuna.load_study(study_name=folder.name, storage=study_storage(folder))
    closed = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        match = trials
        for k, v in t.params.items():
            if k in match.columns and k != "n_embd":
                col = match[k]
                match = match[(col - v).abs() < 1e-12 * max(1.0, abs(v))] \
                    if isinstance(v, float) else match[col.astype(str) == str(v)]
        values = match[score].dropna() if score in match else []
        if len(match) and (match["outcome"] == "stopped_early").all():
            study.tell(t.number, state=optuna.trial.TrialState.PRUNED)
        elif len(match) and len(values):
            study.tell(t.number, float(values.iloc[0]))
        else:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        closed += 1
    return closed
