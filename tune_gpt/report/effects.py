"""What each tuned knob did, measured at an equal budget (the guide's 总结表格 from data).

Every trial is read at the same number of tokens (`results.common_budget`): the last
evaluation at or before the largest token count that all compared trials reached. A
trial ASHA stopped at its first rung is then compared with the others at that rung,
not with their values thousands of iterations later, which would make whatever knob
ASHA happened to stop look harmful.

Statistic (see stats.py): Spearman's rho between the knob and the metric says whether the
effect is consistent; the upper-vs-lower-half mean difference says how big it is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tune_gpt.report.findings import Effect, EffectsFinding
from tune_gpt.report.results import Results, at_budget, common_budget, comparable_ids
from tune_gpt.report.rules import EFFECT_MIN_LOSS, EFFECT_MIN_N, EFFECT_MIN_RATIO, EFFECT_MIN_RHO
from tune_gpt.report.stats import halves, spearman

METRICS = ("val_loss", "tokens_per_s", "peak_mem", "gap")


def effect(knob: str, metric: str, x: pd.Series, y: pd.Series,
           noise: float | None = None) -> Effect:
    """One knob's effect on one metric: rho, n, the two halves and a direction (up / down /
    none; few when fewer than EFFECT_MIN_N trials have both values; constant when they all
    used the same value)."""
    rho, n = spearman(x, y)
    e = Effect(knob, metric, rho, n)
    h = halves(x, y)
    if h is not None:
        e.low_median, e.high_median, e.low_ids, e.high_ids = h.low_median, h.high_median, h.low, h.high
    elif n:
        e.direction = "constant"  # the compared trials all used one value: nothing to say
        return e
    if n < EFFECT_MIN_N:
        e.direction = "few"
    elif np.isfinite(rho) and abs(rho) >= EFFECT_MIN_RHO and _clear(metric, e):
        e.direction = "up" if rho > 0 else "down"
        # smaller than the noise (the confirm runs' seed noise, or the curves' wobble): not real
        if metric in ("val_loss", "gap") and noise and abs(e.diff) < noise:
            e.direction = "noise"
    return e


def _clear(metric: str, e: Effect) -> bool:
    """Do the halves agree with rho's sign, by more than noise? (Loss-like metrics in nats,
    speed and memory as a ratio.) Ranks and medians can disagree when the trials differ in
    several knobs at once; then the direction is not clear."""
    if metric in ("val_loss", "gap"):
        size = e.diff
        return bool(abs(size) >= EFFECT_MIN_LOSS and np.sign(size) == np.sign(e.rho))
    if e.low_median and np.isfinite(e.low_median) and np.isfinite(e.high_median):
        size = e.high_median / e.low_median - 1
        return bool(abs(size) >= EFFECT_MIN_RATIO and np.sign(size) == np.sign(e.rho))
    return False


def knob_effects(res: Results) -> EffectsFinding:
    ids = comparable_ids(res)
    budget = common_budget(res, ids)
    at = at_budget(res, ids, budget)
    ids = list(at.index)
    t = res.trials.loc[ids]
    mem, mem_source = t["peak_mem_bytes"], "measured"
    if not np.isfinite(mem).any():
        mem, mem_source = t["est_mem_bytes"], "estimated"
    metrics = {"val_loss": at["val_loss"], "tokens_per_s": t["tokens_per_s"],
               "peak_mem": mem, "gap": at["gap"]}
    knobs = res.tuned_knobs()
    # the confirm runs' seed noise, or the curves' wobble, at least EFFECT_MIN_LOSS (noise.py)
    noise = res.noise.per_run
    effects = [effect(k, m, t[k], metrics[m], noise) for k in knobs for m in METRICS]
    # The naive view, for contrast: each trial's val_loss wherever it stopped.
    naive = [effect(k, "val_loss", t[k], t["final_val_loss"]) for k in knobs]
    importances, source = _importances(res, effects)
    return EffectsFinding(budget, ids, effects, naive, importances, source, mem_source)


def _importances(res: Results, effects: list[Effect]) -> tuple[dict[str, float], str]:
    """Optuna's importances from meta when given; otherwise |rho| with val_loss, scaled to
    sum to 1, so the figure still ranks the knobs (and says it is the fallback)."""
    given = res.meta.importances if isinstance(res.meta.importances, dict) else {}
    clean = {str(k): float(v) for k, v in given.items()
             if isinstance(v, (int, float)) and np.isfinite(v)}
    if clean:
        return dict(sorted(clean.items(), key=lambda kv: -kv[1])), "meta"
    raw = {e.knob: abs(e.rho) for e in effects if e.metric == "val_loss" and np.isfinite(e.rho)}
    total = sum(raw.values())
    if not total:
        return {}, "spearman"
    return dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda kv: -kv[1])), "spearman"


def disagreements(found: EffectsFinding) -> list[tuple[Effect, Effect]]:
    """(equal-budget, naive) pairs whose val_loss directions differ: where reading each trial
    wherever it stopped would have told the wrong story."""
    out = []
    for n in found.naive:
        e = found.get(n.knob, "val_loss")
        if e is not None and {e.direction, n.direction} <= {"up", "down", "none"} \
                and e.direction != n.direction:
            out.append((e, n))
    return out
