"""Divergence: trials whose loss became NaN/inf, climbed back up (exploding) or never left
the uniform guess (flat); learning rates too high to converge well (stable, but far behind
the best at an equal budget: the guide's 不收敛 is that too, not only NaN); and the
learning rates that were both stable and near the best, overall and among the top trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tune_gpt.report.diagnose.common import top_ids
from tune_gpt.report.findings import DivergeCase, DivergeFinding
from tune_gpt.report.results import Results, at_budget, common_budget, comparable_ids, reached
from tune_gpt.report.rules import CONVERGE_RATIO, EXPLODE_RATIO, FLAT_FRACTION, SAFE_MIN_FRACTION
from tune_gpt.trial import DIVERGED, FAILED, OOM, PREDICTED_OOM


def diverge_case(trial_id: str, row: pd.Series, cur: pd.DataFrame,
                 ln_vocab: float | None) -> DivergeCase | None:
    """diverged (outcome), nan (NaN/inf in the curve), exploding (train_loss back up by
    EXPLODE_RATIO) or flat (best val_loss >= FLAT_FRACTION * ln(vocab)); None when fine."""
    lr = float(row["learning_rate"]) if pd.notna(row.get("learning_rate")) else float("nan")
    # an eval with a NaN/inf val_loss, or an infinite train_loss (NaN train = not measured)
    bad = cur[~np.isfinite(cur["val_loss"]) | np.isinf(cur["train_loss"])]
    first_bad = float(bad["iter"].iloc[0]) if len(bad) else float(row["iters"])
    if row["outcome"] == DIVERGED:
        return DivergeCase(trial_id, lr, "diverged", first_bad, float("nan"))
    if len(bad):
        return DivergeCase(trial_id, lr, "nan", first_bad, float("nan"))
    tr = cur[np.isfinite(cur["train_loss"]) & (cur["iter"] > 0)]
    if len(tr) >= 2:
        m = float(tr["train_loss"].min())
        last = tr.iloc[-1]
        if m > 0 and last["train_loss"] >= EXPLODE_RATIO * m:
            return DivergeCase(trial_id, lr, "exploding", float(last["iter"]), float(last["train_loss"]))
    val = cur[np.isfinite(cur["val_loss"]) & (cur["iter"] > 0)]
    if ln_vocab and len(val) and val["val_loss"].min() >= FLAT_FRACTION * ln_vocab:
        return DivergeCase(trial_id, lr, "flat", float(val["iter"].iloc[-1]), float(val["val_loss"].min()))
    return None


def diagnose_divergence(res: Results) -> DivergeFinding:
    ln_vocab = math.log(res.vocab_size) if res.vocab_size and res.vocab_size > 1 else None
    cases = []
    for tid, row in res.trials.iterrows():
        if row["outcome"] in (OOM, PREDICTED_OOM, FAILED):
            continue  # these never trained far enough to say anything about the lr
        c = diverge_case(tid, row, res.curve(tid), ln_vocab)
        if c is not None:
            cases.append(c)
    bad = {c.trial_id for c in cases}
    lr = pd.to_numeric(res.trials["learning_rate"], errors="coerce")
    unstable = [c.learning_rate for c in cases
                if c.reason != "flat" and np.isfinite(c.learning_rate)]
    found = DivergeFinding(cases, None, None, 0, ln_vocab)
    _converged(res, lr, bad, found)
    near = [lr[i] for i in _safe(res, lr, bad, found)]
    if near:
        below = [v for v in near if not unstable or v < min(unstable)]
        found.safe_lr, found.n_safe = (min(near), max(below or near)), len(near)
    top, _ = top_ids(res)
    good_lrs = [lr[i] for i in top if i not in bad and np.isfinite(lr[i])]
    found.good_lr = (min(good_lrs), max(good_lrs)) if good_lrs else None
    return found


def _safe(res: Results, lr: pd.Series, bad: set[str], found: DivergeFinding) -> list[str]:
    """The stable trials whose loss is indistinguishable from the best's (within the noise's
    threshold for two runs, judge.Noise.pair), compared at the budget that the trials
    trained at least SAFE_MIN_FRACTION of the longest trial all reached. An early loss says
    little about where a run ends (a high learning rate leads early and ends worse), so
    without two such trials no range is called safe (found.safe_budget stays None)."""
    ids = [i for i in comparable_ids(res) if i not in bad and np.isfinite(lr[i])]
    longest = max((reached(res, i) for i in ids), default=0.0)
    far = [i for i in ids if reached(res, i) >= SAFE_MIN_FRACTION * longest]
    found.safe_margin, found.safe_min_tokens = res.noise.pair, SAFE_MIN_FRACTION * longest
    if len(far) < 2:
        return []
    budget = common_budget(res, far)
    at = at_budget(res, far, budget)
    loss = pd.to_numeric(at[res.metric], errors="coerce")
    loss = loss[np.isfinite(loss)]
    if len(loss) < 2:
        return []
    found.safe_budget = budget
    return [i for i in loss.index if loss[i] <= float(loss.min()) + found.safe_margin]


def _converged(res: Results, lr: pd.Series, bad: set[str], found: DivergeFinding) -> list[str]:
    """Read the stable trials at the leaderboard's equal budget: those within the margin of
    the best are near it (returned); those at learning rates above every near one are all
    beyond it, so from the lowest of them up the rate is too high to converge well."""
    ids = comparable_ids(res)
    found.budget = common_budget(res, ids)  # the budget the leaderboard compares at
    at = at_budget(res, [i for i in ids if i not in bad and np.isfinite(lr[i])], found.budget)
    loss = pd.to_numeric(at[res.metric], errors="coerce")  # an empty table is of dtype object
    loss = loss[np.isfinite(loss)]
    if loss.empty:
        return []
    best = float(loss.min())
    margin, source = CONVERGE_RATIO * best, "rule"
    noise = res.noise  # a difference of two runs beyond noise.pair (judge)
    if noise.pair > margin:
        margin, source = noise.pair, noise.source
    found.best_loss, found.margin, found.margin_source = best, margin, source
    near = [i for i in loss.index if loss[i] <= best + margin]
    top_near = max(lr[i] for i in near)
    high = sorted((i for i in loss.index if lr[i] > top_near), key=lambda i: (lr[i], i))
    found.too_high = [DivergeCase(i, float(lr[i]), "too_high", float(at.at[i, "iter"]), float(loss[i]))
                      for i in high]
    found.too_high_lr = found.too_high[0].learning_rate if found.too_high else None
    return near
