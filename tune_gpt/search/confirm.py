"""Is the winner real? (`confirm: {top_k: 3, seeds: 2}`)

A search ranks configs by one training run each, and the run-to-run noise of a small GPT
(another init, other batches) is often as large as the gaps between the best configs. After
the search, the top_k configs train again at their full budget on `seeds` new seeds each,
as nested MLflow runs tagged `confirm_of`. The summary gives each config's mean ± std and
says whether the winner beats the runner-up by more than the seed noise.

    picked = pick_top(trials, metric, k)                      # the search's best trial ids
    runs = confirm_configs(picked, configs, seeds)            # one config per (trial, seed)
    summary = summarize(picked, trials, rerun_rows, metric)   # what meta.json keeps
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from tune_gpt import judge
from tune_gpt import trial as contract

SEED_STRIDE = 1000  # new seeds: the trial's seed + 1000, + 2000, ... (never the search's own)


def pick_top(rows: list[Mapping[str, Any]], metric: str, k: int) -> list[str]:
    """The k best trials with a usable score (completed or stopped early), best first."""
    col = contract.score_column(metric)
    usable = [r for r in rows if r.get("outcome") in contract.USABLE
              and isinstance(r.get(col), (int, float)) and math.isfinite(r[col])]
    usable.sort(key=lambda r: float(r[col]))
    return [str(r["trial_id"]) for r in usable[:k]]


def confirm_configs(picked: list[str], configs: Mapping[str, Mapping[str, Any]],
                    seeds: int) -> list[dict[str, Any]]:
    """Each picked trial's config (its knobs, full max_iters) on `seeds` new seeds, tagged
    with the trial it confirms."""
    out = []
    for tid in picked:
        knobs = contract.knobs_of(configs[tid])
        for i in range(1, seeds + 1):
            plan = contract.TrialPlan(confirm_of=tid)
            out.append({**knobs, "seed": int(knobs.get("seed", 0)) + SEED_STRIDE * i,
                        **plan.to_config()})
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def summarize(picked: list[str], search_rows: list[Mapping[str, Any]],
              rerun_rows: list[Mapping[str, Any]], metric: str, seeds: int) -> dict[str, Any]:
    """Per confirmed config: its re-runs that completed, mean ± std; the pooled seed noise;
    and whether the winner's lead over the runner-up is real (judge.Noise: Student's t for
    the pooled degrees of freedom).

    A config's sample is its re-runs only. Its search run is shown beside them but not
    counted: the top_k were picked for their search runs' low losses, so those runs are
    lucky draws, and counting them would make the winner look better and surer than it is."""
    col = contract.score_column(metric)
    by_id = {str(r["trial_id"]): r for r in search_rows}
    configs = []
    for tid in picked:
        original = by_id.get(tid, {})
        reruns = [r for r in rerun_rows if r.get("confirm_of") == tid]
        done = [float(r[col]) for r in reruns if r.get("outcome") == contract.COMPLETED
                and math.isfinite(float(r.get(col, math.nan)))]
        mean, std = _mean_std(done) if done else (math.nan, math.nan)
        configs.append({"trial_id": tid, "search_value": float(original.get(col, math.nan)),
                        "rerun_values": done, "values": done, "n": len(done),
                        "mean": mean, "std": std,
                        "failed_reruns": len(reruns) - len(done)})
    sd, dof = judge.pooled_sd(c["values"] for c in configs)
    ranked = sorted((c for c in configs if c["n"]), key=lambda c: c["mean"])
    out: dict[str, Any] = {"metric": metric, "column": col, "top_k": len(picked),
                           "seeds": seeds, "noise": sd, "dof": dof, "configs": configs,
                           "winner": ranked[0]["trial_id"] if ranked else None,
                           "runner_up": ranked[1]["trial_id"] if len(ranked) > 1 else None,
                           "same_as_search_best": bool(ranked and picked
                                                       and ranked[0]["trial_id"] == picked[0])}
    if len(ranked) > 1 and dof:
        w, r = ranked[0], ranked[1]
        noise = judge.seed_noise(sd, dof, sum(c["n"] for c in configs))
        gap = r["mean"] - w["mean"]
        out.update(gap=gap, gap_se=noise.per_run * math.sqrt(1 / w["n"] + 1 / r["n"]),
                   t=noise.z, threshold=noise.threshold(w["n"], r["n"]),
                   winner_is_real=noise.real(gap, w["n"], r["n"]))
    else:
        out.update(gap=math.nan, gap_se=math.nan, t=math.nan, threshold=math.nan,
                   winner_is_real=None)
    return out


def run_confirm(space: Any, folder: Any, prepared: Any, uri: str, parent_run_id: str,
                trials: Any, configs: Mapping[str, Mapping[str, Any]], quiet: bool
                ) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """Train the confirm runs (a second Tuner under FOLDER/confirm, no early stopping) and
    summarise them. None when the space asks for none or no trial is usable."""

    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from tune_gpt.search.live import LiveView
    from tune_gpt.search.mlflow_runs import MLflowTrialCallback
    from tune_gpt.search.collect import result_row
    from tune_gpt.search.tuner import make_trainable, trial_name, trial_slots

    c = space.confirm
    rows = trials.to_dict("records")
    picked = pick_top(rows, space.metric, c.top_k) if c.top_k else []
    if not picked:
        return None
    points = confirm_configs(picked, configs, c.seeds)
    tuner = tune.Tuner(
        make_trainable(space, folder, prepared, checkpoints="confirm-checkpoints"),
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode, num_samples=len(points),
            search_alg=points_searcher(points, space.metric, space.mode),
            max_concurrent_trials=space.budget.max_concurrent_trials, reuse_actors=True,
            trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            name="confirm", storage_path=str(folder), verbose=0, log_to_file=True,
            failure_config=tune.FailureConfig(max_failures=1),
            # progress.csv / result.json: the result grid's metrics come from them
            callbacks=[JsonLoggerCallback(), CSVLoggerCallback(),
                       MLflowTrialCallback(uri, parent_run_id, None),
                       LiveView(len(points), ["seed"], space.metric, trial_slots(space),
                                None, quiet=quiet)]))
    reruns = []
    for result in tuner.fit():
        row, _ = result_row(result)
        row["confirm_of"] = contract.TrialPlan.of(result.config or {}).confirm_of
        reruns.append(row)
    return reruns, summarize(picked, rows, reruns, space.metric, c.seeds)


def points_searcher(points: list[dict[str, Any]], metric: str, mode: str) -> Any:
    """A Ray searcher that hands out these configs, in order, then says it is finished; it
    saves and restores what it has not handed out yet, so Tuner.restore can continue."""
    from ray.tune.search import Searcher

    class Points(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=metric, mode=mode)
            self.todo = [dict(p) for p in points]

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            return self.todo.pop(0) if self.todo else Searcher.FINISHED

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            pass

        # what Tuner.restore needs: the configs not yet handed out
        def save(self, checkpoint_path: str) -> None:
            import json

            with open(checkpoint_path, "w") as f:
                json.dump(self.todo, f)

        def restore(self, checkpoint_path: str) -> None:
            import json

            with open(checkpoint_path) as f:
                self.todo = json.load(f)

    return Points()
