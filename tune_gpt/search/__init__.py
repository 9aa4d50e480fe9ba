"""A search: a space YAML -> Ray Tune (Optuna sampler + ASHA) -> MLflow -> results + report.

    from tune_gpt.search import SearchOptions, run_search, resume_search
    result = run_search(SearchOptions(space="search_spaces/smoke.yaml", data="input.txt"))
    resume_search(result.name)

Modules, in the order a search runs through them:
    state      SearchOptions, state.json (SearchState), names, SearchResult
    run        run_search / resume_search: checks, MLflow parent, fit, tables, report
    tuner      build_tuner: the Tuner (trainable, searcher, ASHA, callbacks), unrun
    optuna     define-by-run space, samplers, OptunaSearch, the study afterwards
    callbacks  live view, MLflow nested runs, OOM rescue, token budget (Ray callbacks)
    collect    Ray's result grid -> trials / curves tables and SearchMeta
Ray, Optuna and MLflow are imported inside the functions that need them.
"""

from __future__ import annotations

from tune_gpt.search.run import resume_search, run_search
from tune_gpt.search.state import SearchOptions, SearchResult

__all__ = ["SearchOptions", "SearchResult", "resume_search", "run_search"]
