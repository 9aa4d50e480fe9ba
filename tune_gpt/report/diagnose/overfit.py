"""Overfitting: val_loss rising from its minimum while train_loss keeps falling, or a wide
val/train gap; and, for each of the guide's remedies, whether this search shows it
narrowing the gap (trials with more dropout, more weight decay, smaller models)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tune_gpt.report.findings import Evidence, OverfitCase, OverfitFinding
from tune_gpt.report.results import Results, at_budget, common_budget, comparable_ids
from tune_gpt.report.rules import (EFFECT_MIN_N, EFFECT_MIN_RHO, OVERFIT_GAP_RATIO,
                                   OVERFIT_MIN_RISE, REMEDY_MIN_GAP)
from tune_gpt.report.stats import halves, spearman
from tune_gpt.trial import COMPLETED


def overfit_case(trial_id: str, cur: pd.DataFrame) -> OverfitCase | None:
    """"rising": val_loss rose >= OVERFIT_MIN_RISE above its minimum while train_loss kept
    falling; it started at the minimum's iteration. "gap": val/train gap above the ratio."""
    c = cur[np.isfinite(cur["val_loss"])]
    if len(c) < 2:
        return None
    m = int(np.argmin(c["val_loss"].to_numpy()))
    at_min, last = c.iloc[m], c.iloc[-1]
    rising = (m < len(c) - 1 and last["val_loss"] - at_min["val_loss"] >= OVERFIT_MIN_RISE
              and np.isfinite(last["train_loss"]) and np.isfinite(at_min["train_loss"])
              and last["train_loss"] < at_min["train_loss"])
    gap = float(last["val_loss"] - last["train_loss"])
    wide = np.isfinite(gap) and last["train_loss"] > 0 and gap / last["train_loss"] > OVERFIT_GAP_RATIO
    if not (rising or wide):
        return None
    seen = at_min if rising else last  # where it started, or where the gap was measured
    return OverfitCase(trial_id, "rising" if rising else "gap", float(seen["iter"]), float(seen["tokens"]),
                       float(at_min["val_loss"]), float(last["val_loss"]),
                       float(at_min["train_loss"]), float(last["train_loss"]), gap)


def diagnose_overfitting(res: Results, skip: set[str]) -> OverfitFinding:
    cases = [c for tid in res.trials.index if tid not in skip
             and (c := overfit_case(tid, res.curve(tid))) is not None]
    ids = [i for i in comparable_ids(res) if i not in skip]
    done = [i for i in ids if res.trials.at[i, "outcome"] == COMPLETED]
    ids = done if len(done) >= EFFECT_MIN_N else ids  # late gaps are where overfitting shows
    budget = common_budget(res, ids)
    table = at_budget(res, ids, budget)
    t = res.trials.loc[table.index]
    size = t["n_params"].where(np.isfinite(t["n_params"]),
                               12 * t["n_layer"].astype(float) * t["n_embd"].astype(float) ** 2)
    remedies = [_evidence("dropout", "dropout", t["dropout"], table["gap"], +1),
                _evidence("weight_decay", "weight_decay", t["weight_decay"], table["gap"], +1),
                _evidence("smaller_model", "n_params", size, table["gap"], -1),
                Evidence("more_data", "", "advice")]
    return OverfitFinding(cases, remedies, budget)


def _evidence(key: str, knob: str, x: pd.Series, gap: pd.Series, sign: int) -> Evidence:
    """sign +1: raising the knob is the remedy (dropout); -1: lowering it is (model size)."""
    x = pd.to_numeric(x, errors="coerce")
    h = halves(x, gap)
    if h is None:
        return Evidence(key, knob, "not_tried")
    rho, n = spearman(x, gap)
    good, bad = (h.high, h.low) if sign > 0 else (h.low, h.high)
    gm, bm = (h.high_median, h.low_median) if sign > 0 else (h.low_median, h.high_median)
    big = abs(gm - bm) >= REMEDY_MIN_GAP
    if n < EFFECT_MIN_N or not np.isfinite(rho):
        status = "too_few"
    elif sign * rho <= -EFFECT_MIN_RHO and gm < bm and big:
        status = "works"
    elif sign * rho >= EFFECT_MIN_RHO and gm > bm and big:
        status = "worse"
    else:
        status = "no_effect"
    fmt = (lambda v: f"{v:.3g}") if knob != "n_params" else (lambda v: f"{v / 1e6:.2f}M")
    return Evidence(key, knob, status, rho, n, good, bad, gm, bm,
                    _span(x[good], fmt), _span(x[bad], fmt))


def _span(v: pd.Series, fmt) -> str:
    lo, hi = v.min(), v.max()
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"
