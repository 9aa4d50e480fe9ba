"""The search strategies the replay compares, as Ray Tune builds them.

A method is a factory: `factory(seed)` returns `(searcher, scheduler_or_None)`, a Ray
`Searcher` and a Ray scheduler (None: FIFO, every trial trained to its end). Register one
with `register_method(name, factory)`, e.g.

    register_method("tpe_only", lambda seed: (optuna_searcher(TPESampler(seed=seed)), None))

or from a module of your own, imported with `--methods-from MODULE`.

Today's methods: `random`, `asha_random` and `asha_tpe` are Ray's plain `OptunaSearch`
(stopped trials told COMPLETE, as tune-gpt did before fidelity.py); `default` and
`default_wrong_prior` are tune-gpt's own searcher built from the real benchmark's space,
priors included, with stopped trials told PRUNED at their token steps; `default_rules` is
the same with every prior `auto`, set by the cited rules for the table's data.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.common.efficiency import (
    GRACE_PERIOD,
    REDUCTION_FACTOR,
    SEARCH_PARAMS,
    TOKENS_PER_TRIAL,
    space_for,
)
from benchmarks.common.replay.table import METRIC, MODE, TIME_ATTR

MethodFactory = Callable[[int], tuple[Any, Any]]
METHODS: dict[str, MethodFactory] = {}


def register_method(name: str, factory: MethodFactory, replace: bool = False) -> None:
    """Make `name` a method of the replay: factory(seed) -> (ray Searcher, scheduler or None)."""
    if name in METHODS and not replace:
        raise ValueError(f"method {name!r} is already registered (pass replace=True)")
    METHODS[name] = factory


def load_methods_from(modules: Iterable[str]) -> None:
    """Import modules that call register_method (e.g. a tune_gpt module with new searchers)."""
    for m in modules:
        importlib.import_module(m)


def define_by_run(trial: Any) -> None:
    """The search's space for Optuna, sampled in the order tune_gpt's `suggest` samples it."""
    for name, d in SEARCH_PARAMS.items():
        if "choice" in d:
            trial.suggest_categorical(name, list(d["choice"]))
        elif "loguniform" in d:
            trial.suggest_float(name, *d["loguniform"], log=True)
        else:
            trial.suggest_int(name, *d["int"], step=d.get("step", 1))
    return None


def optuna_searcher(sampler: Any) -> Any:
    """Ray's OptunaSearch over the benchmark's space with this Optuna sampler (in memory)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(define_by_run, metric=METRIC, mode=MODE, sampler=sampler)


def asha(**overrides: Any) -> Any:
    """The real benchmark's ASHA: on tokens, grace 250k, reduction factor 3, max_t 2M."""
    from ray.tune.schedulers import ASHAScheduler

    opts = {"time_attr": TIME_ATTR, "max_t": TOKENS_PER_TRIAL, "grace_period": GRACE_PERIOD,
            "reduction_factor": REDUCTION_FACTOR} | overrides
    return ASHAScheduler(**opts)  # metric/mode come from set_search_properties, as in Tuner


def _random(seed: int) -> Any:
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe(seed: int) -> Any:
    import optuna
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def product_method(method: str) -> MethodFactory:
    """A method as tune-gpt itself builds it from the real benchmark's space
    (efficiency.space_for): the product's sampler factory (priors included) and its
    searcher class (stopped trials told PRUNED at their token steps), with the same ASHA."""

    def factory(seed: int) -> Any:
        from tune_gpt.search.fidelity import MultiFidelityOptunaSearch
        from tune_gpt.search.optuna import make_sampler
        from tune_gpt.space import load_space

        space = load_space(f"{method}.yaml", data=space_for(method, seed, 1, 1.0, []),
                           profile="cpu")
        searcher = MultiFidelityOptunaSearch(define_by_run, metric=METRIC, mode=MODE,
                                             sampler=make_sampler(space, seed),
                                             resource_attr=TIME_ATTR, recipe_bar=GRACE_PERIOD)
        return searcher, asha()

    return factory


register_method("random", lambda seed: (optuna_searcher(_random(seed)), None))
register_method("asha_random", lambda seed: (optuna_searcher(_random(seed)), asha()))
register_method("asha_tpe", lambda seed: (optuna_searcher(_tpe(seed)), asha()))
_DATA: dict[str, Any] = {}


def set_data(path: str | None, factor: float = 1.0) -> None:
    """The data the replayed table was recorded on and the length its runs were recorded
    at (the quick grid's fidelity factor): `default_rules` sets its priors from them."""
    from tune_gpt.space.auto_priors import train_tokens_here

    _DATA["train_tokens"] = train_tokens_here(path) if path else None
    _DATA["factor"] = factor


def rules_method(seed: int) -> tuple[Any, Any]:
    """tune-gpt's default search with every prior `auto` (tune_gpt/space/auto_priors.py),
    resolved for the table's data, the tokens its trials trained (2M times the table's
    fidelity factor) and a CPU: the priors by cited rule, not picked on any table."""
    from tune_gpt.search.fidelity import MultiFidelityOptunaSearch
    from tune_gpt.search.optuna import make_sampler
    from tune_gpt.space import load_space
    from tune_gpt.space.auto_priors import resolve

    space = load_space("default_rules.yaml", profile="cpu",
                       data=space_for("default_rules", seed, 1, 1.0, []))
    # the rules see the tokens the table's trials trained (a quick table: a fifth of 2M)
    space.budget.tokens_per_trial = int(space.budget.tokens_per_trial * _DATA.get("factor", 1.0))
    resolve(space, _DATA.get("train_tokens"), "cpu")
    searcher = MultiFidelityOptunaSearch(define_by_run, metric=METRIC, mode=MODE,
                                         sampler=make_sampler(space, seed),
                                         resource_attr=TIME_ATTR, recipe_bar=GRACE_PERIOD)
    return searcher, asha()


register_method("default", product_method("default"))
register_method("default_wrong_prior", product_method("default_wrong_prior"))
register_method("default_rules", rules_method)
