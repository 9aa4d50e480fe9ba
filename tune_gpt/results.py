"""Ray Tune results -> the plain tables the report reads (one row per trial, one per eval).

The tables are written as CSV + JSON under the search folder, so that a report can be
re-made later without Ray (`tune-gpt report NAME`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tune_gpt import outcomes
from tune_gpt.config import KNOBS
from tune_gpt.live import outcome_of
from tune_gpt.space import SearchSpace

CURVE_COLUMNS = ("trial_id", "iter", "tokens", "train_loss", "val_loss", "lr", "tokens_per_s",
                 "ms_per_iter", "mfu", "peak_mem_bytes", "elapsed_s", "eval_s")


def collect(grid: Any, space: SearchSpace, state: dict[str, Any], folder: Path,
            wall_s: float) -> tuple[Any, Any, dict[str, Any]]:
    import pandas as pd

    rows, curves = [], []
    for result in grid:
        df = result.metrics_dataframe
        reported = [] if df is None else df.to_dict("records")
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        last = reported[-1] if reported else {}
        outcome = outcome_of(last, errored=result.error is not None and not reported)
        if result.error is not None and last.get("outcome") not in (outcomes.OOM,
                                                                    outcomes.DIVERGED):
            outcome = outcomes.FAILED
        evals = [r for r in reported if r.get("outcome") in ("running", outcomes.COMPLETED)]
        row = trial_row(trial_id, outcome, str(last.get("error") or (result.error or "")),
                        dict(result.config or {}), evals, last)
        for name in space.group_params():
            from tune_gpt.sampling import label

            matches = [label(v) for v in space.params[name].values
                       if all(row.get(k) == x for k, x in v.items())]
            row[name] = matches[0] if matches else ""
        rows.append(row)
        curves += [{"trial_id": trial_id, **{c: r.get(c) for c in CURVE_COLUMNS[1:]}}
                   for r in evals]
    trials = pd.DataFrame(rows)
    curves_df = pd.DataFrame(curves, columns=list(CURVE_COLUMNS))
    counts = {o: int((trials["outcome"] == o).sum()) if len(trials) else 0 for o in outcomes.ALL}
    best = None
    if len(trials) and trials["best_val_loss"].notna().any():
        b = trials.loc[trials["best_val_loss"].idxmin()]
        best = {"trial_id": b["trial_id"], "best_val_loss": float(b["best_val_loss"]),
                "config": {k: _plain(b[k]) for k in KNOBS}}
    meta = {
        "name": state["name"], "space_file": space.source, "metric": space.metric,
        "mode": space.mode, "profile": space.profile, "device": _device(trials),
        "sampler": dict(space.sampler), "scheduler": dict(vars(space.scheduler)),
        "params": {k: d.to_yaml() for k, d in space.params.items()},
        "fixed": dict(space.fixed), "budget": dict(vars(space.budget)),
        "resources": dict(space.resources), "data": state.get("dataset", space.data),
        "wall_s": wall_s, "started_at": state.get("created"),
        "memory_limit_bytes": space.memory_limit,
        "rescue": space.rescue,
        "importances": importances(folder / "optuna.db", folder.name),
        "tracking_uri": state.get("tracking_uri"),
        "mlflow_parent_run_id": state.get("parent_run_id"),
        "counts": counts, "best": best,
    }
    if meta["scheduler"].get("type") == "asha" and not meta["scheduler"].get("max_t"):
        meta["scheduler"]["max_t"] = space.budget.tokens_per_trial
    return trials, curves_df, meta


def trial_row(trial_id: str, outcome: str, error: str, config: dict[str, Any],
              evals: list[dict[str, Any]], last: dict[str, Any]) -> dict[str, Any]:
    """One row of the trials table from a trial's config, its evaluations and its last
    report (shared by the Ray and the MLflow sources)."""
    val = [r["val_loss"] for r in evals if _finite(r.get("val_loss"))]
    end = evals[-1] if evals else {}
    row: dict[str, Any] = {"trial_id": trial_id, "outcome": outcome, "error": error[:500]}
    row.update({k: config.get(k) for k in KNOBS})
    row.update({
        "tokens_per_iter": last.get("tokens_per_iter"),
        "iters": last.get("iter", end.get("iter", 0)),
        "tokens": last.get("tokens", end.get("tokens", 0)),
        "best_val_loss": min(val) if val else math.nan,
        "final_val_loss": val[-1] if val else math.nan,
        **{k: end.get(k, math.nan) for k in ("train_loss", "tokens_per_s", "ms_per_iter", "mfu")},
        **{k: last.get(k, math.nan) for k in ("peak_mem_bytes", "est_mem_bytes", "eval_s",
                                               "n_params", "vocab_size")},
        "wall_s": last.get("wall_s", last.get("elapsed_s", math.nan)),
        "rescue_of": last.get("rescue_of", ""),
        "device": last.get("device", config.get("device")),
        "node": last.get("node", ""),
    })
    row["final_train_loss"] = row.pop("train_loss")
    return row


def importances(db: Path, study_name: str) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA); empty when there is too little to say."""
    try:
        import optuna

        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(done) < 3:
            return {}
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:  # noqa: BLE001 — importances are a nicety, never a reason to fail
        return {}


def reconcile_study(db: Path, study_name: str, trials: Any, metric: str) -> int:
    """Close Optuna trials left RUNNING by an interrupted driver.

    A trial that was running when the driver died is resumed by Ray from its checkpoint,
    but the restored searcher may no longer know which Optuna trial it was, leaving that
    one RUNNING for ever. Tell it the value of the Ray trial with the same sampled params,
    or FAIL when none matches. Returns how many were closed."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
    closed = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        match = trials
        for k, v in t.params.items():
            if k in match.columns and k != "n_embd":
                col = match[k]
                match = match[(col - v).abs() < 1e-12 * max(1.0, abs(v))] \
                    if isinstance(v, float) else match[col.astype(str) == str(v)]
        values = match["best_val_loss" if metric == "best_val_loss" else "final_val_loss"]
        values = values.dropna()
        if len(match) and len(values):
            study.tell(t.number, float(values.iloc[0]))
        else:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        closed += 1
    return closed


def write_tables(folder: Path, trials: Any, curves: Any, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trials.to_csv(folder / "trials.csv", index=False)
    curves.to_csv(folder / "curves.csv", index=False)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=_plain))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON and YAML)."""
    if hasattr(v, "item"):
        return v.item()
    return v


def _device(trials: Any) -> str:
    if len(trials) and "device" in trials:
        return str(trials["device"].mode().iloc[0])
    return "cpu"
