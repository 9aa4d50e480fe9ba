"""Ray Tune's results -> the plain tables the report reads (one row per trial, one per
evaluation) and the search's SearchMeta, written under the search folder so that a report
can be made again later without Ray (`tune-gpt report NAME`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tune_gpt import trial as contract
from tune_gpt.config import KNOBS
from tune_gpt.search.optuna import importances
from tune_gpt.settings import SchedulerSettings
from tune_gpt.space import SearchSpace, label
from tune_gpt.trial import SearchMeta


def collect(grid: Any, space: SearchSpace, state: Any, folder: Path, wall_s: float,
            scheduler: SchedulerSettings) -> tuple[Any, Any, SearchMeta]:
    """(trials, curves, meta) of a finished (or stopped) Tuner.fit(). `scheduler` is the
    scheduler as the search ran it (tuner.resolved_scheduler: max_t and the first rung in
    its time_attr's units), which meta.json records."""
    import pandas as pd

    rows, curves = [], []
    for result in grid:
        row, evals = result_row(result, folder / "checkpoints")
        trial_id = row["trial_id"]
        for name in space.group_params():
            matches = [label(v) for v in space.params[name].values
                       if all(row.get(k) == x for k, x in v.items())]
            row[name] = matches[0] if matches else ""
        rows.append(row)
        curves += [contract.curve_point(trial_id, r) for r in evals]
    trials = pd.DataFrame(rows)
    curves_df = pd.DataFrame(curves, columns=list(contract.CURVE_COLUMNS))
    counts = {o: sum(r["outcome"] == o for r in rows) for o in contract.ENDED}
    meta = SearchMeta(
        name=state.name, space_file=space.source, metric=space.metric, mode=space.mode,
        profile=space.profile, device=_device(rows), sampler=space.sampler,
        scheduler=scheduler,
        params={k: d.to_yaml() for k, d in space.params.items()}, fixed=dict(space.fixed),
        budget=space.budget, resources=dict(space.resources),
        data=state.dataset or space.data, wall_s=wall_s, started_at=state.created,
        memory_limit_bytes=space.memory_limit, rescue=space.rescue,
        importances=importances(folder), tracking_uri=state.tracking_uri,
        mlflow_parent_run_id=state.parent_run_id, counts=counts,
        best=best_summary(rows, space.metric, space.mode))
    return trials, curves_df, meta


def trial_id_of(result: Any) -> str:
    """The trial id of one of Ray's results (its folder's name before its first report)."""
    return str((result.metrics or {}).get("trial_id") or Path(result.path).name)


def result_row(result: Any, checkpoints: Path | None = None, name: str | None = None
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One of Ray's results -> its trials-table row and its evaluations (from progress.csv,
    and, with `checkpoints`, the trial's own evaluation log there, <name or trial id>.pt's,
    for the reports a resume dropped; the outcome decided by trial.outcome_of)."""
    from tune_gpt.checkpoint import read_evals

    df = result.metrics_dataframe
    reported = [] if df is None else df.to_dict("records")
    if checkpoints is not None:
        iters = [r["iter"] for r in reported if r.get("iter") == r.get("iter") and
                 r.get("iter") is not None]
        first = min(iters) if iters else math.inf
        reported = [r for r in read_evals(checkpoints / f"{name or trial_id_of(result)}.pt")
                    if r.get("iter") is not None and r["iter"] < first] + reported
    last = reported[-1] if reported else {}
    evals = [r for r in reported if r.get("outcome") in contract.EVALUATED]
    row = contract.trial_row(trial_id_of(result),
                             contract.outcome_of(last, errored=result.error is not None),
                             str(last.get("error") or (result.error or "")),
                             dict(result.config or {}), evals, last, KNOBS)
    return row, evals


def unfinished(grid: Any, stopped: Any = ()) -> int:
    """The trials an interrupt left part-way: their last report says running (or there is
    none yet) and the scheduler had not stopped them (`stopped`: ASHA's). Ray's own count,
    trials not TERMINATED, says 0 after a graceful Ctrl-C, which stops every trial."""
    return sum((r.metrics or {}).get("outcome") in (None, contract.RUNNING)
               and trial_id_of(r) not in set(stopped) for r in grid)


def best_summary(rows: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    """The best trial for the search's metric: id, metric, value, best val_loss, config."""
    b = contract.best_of(rows, metric, mode)
    if b is None:
        return None
    return {"trial_id": b["trial_id"], "metric": metric,
            "value": float(b[contract.score_column(metric)]),
            "best_val_loss": float(b["best_val_loss"]),
            "config": {k: _plain(b[k]) for k in KNOBS}}


def write_tables(folder: Path, trials: Any, curves: Any, meta: SearchMeta) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trials.to_csv(folder / "trials.csv", index=False)
    curves.to_csv(folder / "curves.csv", index=False)
    (folder / "meta.json").write_text(json.dumps(meta.to_dict(), indent=2, default=_plain))


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON and YAML)."""
    if hasattr(v, "item"):
        return v.item()
    return v


def _device(rows: list[dict[str, Any]]) -> str:
    devices = [str(r.get("device")) for r in rows if r.get("device")]
    return max(set(devices), key=devices.count) if devices else "cpu"
