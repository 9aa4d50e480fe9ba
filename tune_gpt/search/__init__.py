"""A search: a space YAML -> Ray Tune (Optuna sampler + ASHA) -> MLflow -> results + report.

    from tune_gpt.search import SearchOptions, run_search, resume_search
    result = run_search(SearchOptions(space="search_spaces/smoke.yaml", data="input.txt"))
    resume_search(result.name)

Modules, in the order a search runs through them:
    state        SearchOptions, state.json (SearchState), SearchResult
    run          run_search / resume_search: checks, MLflow parent, fit, tables, report
    nodes        Ray: local or --address, what every node must see
    tuner        build_tuner: the Tuner (the space's trainable, searcher, ASHA, callbacks)
    optuna       define-by-run space, samplers, OptunaSearch, the study afterwards
    priors       the recipe trial first, start-up trials near the priors
    fidelity     what the sampler is told of a trial stopped early
    asha         ASHA's rungs kept across a resume
    live         the live view in the terminal (eta: its time left)
    mlflow_runs  one nested MLflow run per trial
    rescue       the OOM rescue (half the batch, twice the accumulation)
    budget       the compute budget (total tokens / FLOPs) as a Ray Stopper
    driver_memory  what the driver keeps of finished trials
    collect      Ray's result grid -> trials / curves tables and SearchMeta
    confirm      the top configs again on new seeds: is the winner real?
    samples      text samples of the best trials
Ray, Optuna and MLflow are imported inside the functions that need them.
"""

from __future__ import annotations

from tune_gpt.search.run import resume_search, run_search
from tune_gpt.search.state import SearchOptions, SearchResult

__all__ = ["SearchOptions", "SearchResult", "resume_search", "run_search"]
