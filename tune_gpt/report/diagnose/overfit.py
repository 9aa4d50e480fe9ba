"""Overfitting, told apart from the gaps that are not: val_loss rising from its minimum
while train_loss keeps falling (overfitting); a val/train gap beyond what the data's own
split difference explains (memorisation, which comes before it); and a gap that is only the
data's own while val_loss never turned up (not overfitting: more training or a bigger model
may help). For each of the guide's remedies, whether this search shows it narrowing the
gap (trials with more dropout, more weight decay, smaller models)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tune_gpt.data.doctor import DataReport
from tune_gpt.report.findings import Evidence, OverfitCase, OverfitFinding
from tune_gpt.report.results import Results, at_budget, common_budget, comparable_ids
from tune_gpt.report.rules import (DATA_GAP_FACTOR, EFFECT_MIN_LOSS, EFFECT_MIN_N, EFFECT_MIN_RHO,
                                   OVERFIT_GAP_RATIO, OVERFIT_MIN_RISE, OVERFIT_RISE_NOISES,
                                   REMEDY_GAP_NOISES, REMEDY_MIN_GAP, STILL_FALLING)
from tune_gpt.report.stats import halves, spearman
from tune_gpt.trial import COMPLETED


def overfit_case(trial_id: str, cur: pd.DataFrame, data_gap: float = OVERFIT_GAP_RATIO,
                 wobble: float = EFFECT_MIN_LOSS) -> OverfitCase | None:
    """"rising": val_loss rose above its minimum, by OVERFIT_MIN_RISE and by
    OVERFIT_RISE_NOISES times the curves' `wobble` (noise.py), while train_loss kept falling;
    it started at the minimum's iteration. "gap": val/train gap (relative to train_loss)
    above DATA_GAP_FACTOR times the data's own `data_gap`, and at least OVERFIT_GAP_RATIO.
    "healthy": val_loss never turned up and the gap, above OVERFIT_GAP_RATIO, is within what
    the data explains: not an alarm. None otherwise."""
    c = cur[np.isfinite(cur["val_loss"])]
    if len(c) < 2:
        return None
    min_rise = max(OVERFIT_MIN_RISE, OVERFIT_RISE_NOISES * wobble)
    m = int(np.argmin(c["val_loss"].to_numpy()))
    at_min, last = c.iloc[m], c.iloc[-1]
    turned_up = last["val_loss"] - at_min["val_loss"] >= min_rise
    rising = (m < len(c) - 1 and turned_up
              and np.isfinite(last["train_loss"]) and np.isfinite(at_min["train_loss"])
              and last["train_loss"] < at_min["train_loss"])
    ratio = gap_ratio(last)
    wide = np.isfinite(ratio) and ratio > max(DATA_GAP_FACTOR * data_gap, OVERFIT_GAP_RATIO)
    healthy = np.isfinite(ratio) and ratio > OVERFIT_GAP_RATIO and not turned_up
    if not (rising or wide or healthy):
        return None
    kind = "rising" if rising else "gap" if wide else "healthy"
    seen = at_min if rising else last  # where it started, or where the gap was measured
    # still falling: lower at the end than at 3/4 of the trial's tokens, beyond the wobble
    earlier = c[c["tokens"] <= 0.75 * last["tokens"]]
    drop = float(earlier["val_loss"].iloc[-1] - last["val_loss"]) if len(earlier) else float("nan")
    falling = bool(np.isfinite(drop) and drop > max(STILL_FALLING, wobble))
    return OverfitCase(trial_id, kind, float(seen["iter"]), float(seen["tokens"]),
                       float(at_min["val_loss"]), float(last["val_loss"]),
                       float(at_min["train_loss"]), float(last["train_loss"]),
                       float(last["val_loss"] - last["train_loss"]), float(last["tokens"]), falling,
                       drop=drop, rise=min_rise)


def gap_ratio(ev: pd.Series) -> float:
    """val_loss above train_loss, relative to train_loss (NaN when unmeasured)."""
    t = ev["train_loss"]
    return float((ev["val_loss"] - t) / t) if np.isfinite(t) and t > 0 else float("nan")


def own_gaps(res: Results, skip: set[str]) -> dict[str, float]:
    """The data's own val/train gap, trial by trial: the relative gap at the last eval of the
    trials whose val_loss never turned up (by OVERFIT_MIN_RISE), the longest-trained ones
    (completed, when any are such). Val is different text from train; these trials show how
    far apart the two splits are without memorisation."""
    gaps: dict[str, float] = {}
    for tid in comparable_ids(res):
        c = res.curve(tid)
        c = c[np.isfinite(c["val_loss"])]
        if tid in skip or len(c) < 2 or c["val_loss"].iloc[-1] - c["val_loss"].min() >= OVERFIT_MIN_RISE:
            continue
        if np.isfinite(r := gap_ratio(c.iloc[-1])):
            gaps[tid] = r
    done = {i: r for i, r in gaps.items() if res.trials.at[i, "outcome"] == COMPLETED}
    return done or gaps


def data_gap(gaps: dict[str, float], leave_out: str | None = None) -> tuple[float, int]:
    """The median of `gaps` (without `leave_out`: a trial is not its own baseline) and how
    many trials it comes from; (OVERFIT_GAP_RATIO, 0) when none measures it."""
    use = [r for i, r in gaps.items() if i != leave_out]
    return (float(np.median(use)), len(use)) if use else (OVERFIT_GAP_RATIO, 0)


def diagnose_overfitting(res: Results, skip: set[str]) -> OverfitFinding:
    gaps = own_gaps(res, skip)
    doctor = DataReport.from_dict(res.meta.data_doctor) if res.meta.data_doctor else None
    corpus = float(doctor.n_train) if doctor and doctor.n_train else None
    wobble = res.noise.eval  # within one run the seed plays no part: the curves' wobble
    found = [c for tid in res.trials.index if tid not in skip
             and (c := overfit_case(tid, res.curve(tid), data_gap(gaps, tid)[0], wobble)) is not None]
    for c in found:
        c.epochs = c.tokens / corpus if corpus else None
        c.data_gap = data_gap(gaps, c.trial_id)[0]
    cases = [c for c in found if c.kind != "healthy"]
    # the gap reported as the data's own: that of the trials not flagged as memorising
    base, n_base = data_gap({i: r for i, r in gaps.items()
                             if i not in {c.trial_id for c in cases if c.kind == "gap"}})
    ids = [i for i in comparable_ids(res) if i not in skip]
    done = [i for i in ids if res.trials.at[i, "outcome"] == COMPLETED]
    ids = done if len(done) >= EFFECT_MIN_N else ids  # late gaps are where overfitting shows
    budget = common_budget(res, ids)
    table = at_budget(res, ids, budget)
    t = res.trials.loc[table.index]
    size = t["n_params"].where(np.isfinite(t["n_params"]),
                               12 * t["n_layer"].astype(float) * t["n_embd"].astype(float) ** 2)
    min_gap = max(REMEDY_MIN_GAP, REMEDY_GAP_NOISES * res.noise.per_run)
    remedies = [_evidence("dropout", "dropout", t["dropout"], table["gap"], +1, min_gap),
                _evidence("weight_decay", "weight_decay", t["weight_decay"], table["gap"], +1, min_gap),
                _evidence("smaller_model", "n_params", size, table["gap"], -1, min_gap),
                Evidence("more_data", "", "advice")]
    return OverfitFinding(cases, remedies, budget, [c for c in found if c.kind == "healthy"],
                          base, n_base, corpus)


def _evidence(key: str, knob: str, x: pd.Series, gap: pd.Series, sign: int,
              min_gap: float = REMEDY_MIN_GAP) -> Evidence:
    """sign +1: raising the knob is the remedy (dropout); -1: lowering it is (model size).
    The two sides' median gaps must differ by `min_gap` (the noise) to count either way."""
    x = pd.to_numeric(x, errors="coerce")
    h = halves(x, gap)
    if h is None:
        return Evidence(key, knob, "not_tried")
    rho, n = spearman(x, gap)
    good, bad = (h.high, h.low) if sign > 0 else (h.low, h.high)
    gm, bm = (h.high_median, h.low_median) if sign > 0 else (h.low_median, h.high_median)
    big = abs(gm - bm) >= min_gap
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
                    _span(x[good], fmt), _span(x[bad], fmt), min_gap)


def _span(v: pd.Series, fmt) -> str:
    lo, hi = v.min(), v.max()
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"
