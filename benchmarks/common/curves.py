"""Best val_loss so far against compute, and the figures read off such a curve.

Compute = training tokens (iterations x tokens per iteration), counted over all trials. The
manual sweeps are counted in the guide's order, one run after another; a search's trials
run side by side, so its compute at an evaluation is every trial's tokens trained by that
moment (each trial's token count interpolated between its reports). A curve is a list of
[compute, best val_loss so far] points, compute non-decreasing, the loss non-increasing.
"""

from __future__ import annotations

import math
from typing import Any

# Ray's progress.csv rows of one trial (the first row carries the trial's config as
# "_config"), keyed by trial id.
Trials = dict[str, list[dict[str, Any]]]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _usable(row: dict[str, Any]) -> bool:
    """A report the curve counts: a finite val_loss from a run that had not diverged."""
    return _finite(row.get("val_loss")) and row.get("outcome") in ("running", "completed")


def manual_curve(trials: Trials, plan: list[dict[str, Any]]) -> tuple[list[list[float]], float]:
    """Runs one after another in the guide's order: compute = tokens of the runs before +
    this run's tokens at the evaluation. Returns the curve and the tokens spent."""
    keys = ("batch_size", "learning_rate", "n_layer", "n_embd", "max_iters")
    points, spent, best = [], 0.0, math.inf
    for run in plan:
        rows = next((r for r in trials.values() if _matches(r, run, keys)), [])
        for r in rows:
            if _usable(r):
                best = min(best, float(r["val_loss"]))
                points.append([spent + float(r["tokens"]), best])
        spent += float(rows[-1]["tokens"]) if rows else 0.0
    return points, spent


def _matches(rows: list[dict[str, Any]], run: dict[str, Any], keys: tuple[str, ...]) -> bool:
    cfg = rows[0].get("_config") or {}
    return all(cfg.get(k) == run[k] for k in keys)


def search_curve(trials: Trials) -> tuple[list[list[float]], float]:
    """Trials ran side by side: compute at an evaluation = all trials' tokens by then.
    Returns the curve and the tokens spent."""
    import numpy as np

    timelines = []
    for rows in trials.values():
        # timestamp is whole seconds; time_total_s is precise within the trial
        t0 = float(np.median([r["timestamp"] - r["time_total_s"] for r in rows]))
        ts = [t0] + [t0 + r["time_total_s"] for r in rows]
        toks = [0.0] + [float(r.get("tokens") or 0) for r in rows]
        timelines.append((np.array(ts), np.maximum.accumulate(np.array(toks))))

    def spent_at(t: float) -> float:
        return float(sum(np.interp(t, ts, toks, left=0.0) for ts, toks in timelines))

    events = []
    for (ts, _), rows in zip(timelines, trials.values()):
        for t, r in zip(ts[1:], rows):
            if _usable(r):
                events.append((t, float(r["val_loss"])))
    points, best = [], math.inf
    for t, v in sorted(events):
        best = min(best, v)
        points.append([spent_at(t), best])
    total = sum(float(toks[-1]) for _, toks in timelines)
    return points, total


def reach(curve: list[list[float]], target: float) -> float:
    """Compute spent when the curve first gets to `target` (inf if it never does)."""
    return next((c for c, b in curve if b <= target + 1e-12), math.inf)


def best_at(curve: list[list[float]], compute: float) -> float:
    """Best val_loss reached within `compute` (NaN if the curve has no point by then)."""
    got = [b for c, b in curve if c <= compute]
    return got[-1] if got else math.nan
