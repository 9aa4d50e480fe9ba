"""The results a report reads, normalised once: trials, curves and the search's meta.

`prepare` fills every column the report uses (missing -> NaN or ""), so the rest of the
package never asks "is this column there?". It also holds the one idea every section
shares: comparing trials at an *equal budget*. ASHA stops weak trials early, so a trial's
last value mixes "how good is this config" with "how long did it train". Reading every
trial's curve at the same number of tokens removes the second part:

    budget = common_budget(res, ids)     # the largest token count all of `ids` reached
    table = at_budget(res, ids, budget)  # each trial's last eval at or before it

Trials are ranked by the search's metric (`meta.metric`): `res.score` is the trials-table
column that ranks them (best_val_loss, or best_train_loss for metric train_loss) and
`res.metric` the evaluation it is the best of (val_loss or train_loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

import numpy as np
import pandas as pd

from tune_gpt.config import FIELD_TYPES, KNOBS, coerce
from tune_gpt.errors import UserError, note
from tune_gpt.report.findings import Noise
from tune_gpt.report.noise import loss_noise
from tune_gpt.report.rules import BUDGET_TOLERANCE
from tune_gpt.trial import (COMPLETED, DIVERGED, EVAL_KEYS, LATER_NUMBERS, STOPPED_EARLY,
                            TRIAL_NUMBERS, TRIAL_TEXT, SearchMeta, score_column)

# Knobs that say where or how a trial ran rather than what it trained: never "tuned".
NOT_TUNED = ("out_dir", "dataset", "device", "seed")
# Filled from the curves when the trials table has no value (_fill_from_curves).
FROM_CURVES = ("best_val_loss", "final_val_loss", "best_train_loss", "final_train_loss",
               "tokens", "iters")


def _names(items: list[str], most: int = 8) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


@dataclass
class Results:
    """One search's results. `trials` is indexed by trial_id (str)."""

    trials: pd.DataFrame
    curves: pd.DataFrame
    meta: SearchMeta

    @property
    def name(self) -> str:
        return str(self.meta.name or "search")

    @property
    def score(self) -> str:
        """The trials-table column that ranks trials for the search's metric."""
        return score_column(self.meta.metric)

    @property
    def metric(self) -> str:
        """The evaluation `score` is the best of: val_loss or train_loss (what the report
        names when it says "best", and reads at the equal budget to rank trials)."""
        return self.score.removeprefix("best_")

    @property
    def vocab_size(self) -> int | None:
        v = pd.to_numeric(self.trials["vocab_size"], errors="coerce").dropna()
        if len(v):
            return int(v.iloc[0])
        m = self.meta.vocab_size
        return int(m) if m else None

    @property
    def params(self) -> dict[str, Any]:
        """The tuned parameters as written in the search space (knob or group -> dist)."""
        p = self.meta.params or {}
        return dict(p) if isinstance(p, dict) else {}

    def tuned_knobs(self) -> list[str]:
        """Knobs the search varied: those in meta.params (groups expanded to their knobs);
        when meta has none, every knob whose value differs between trials."""
        out: list[str] = []
        for name, spec in self.params.items():
            if name in FIELD_TYPES:
                out.append(name)
            elif isinstance(spec, dict) and isinstance(spec.get("choice"), list):
                for choice in spec["choice"]:
                    if isinstance(choice, dict):
                        out += [k for k in choice if k in FIELD_TYPES]
        if not out:
            out = self.varying_knobs(list(self.trials.index))
        return [k for k in dict.fromkeys(out) if k in self.trials.columns]

    def varying_knobs(self, ids: list[str]) -> list[str]:
        """Knobs whose value is not the same for all of `ids` (in KNOBS order)."""
        t = self.trials.loc[ids]
        return [k for k in KNOBS if k in t.columns and k not in NOT_TUNED
                and t[k].astype(str).nunique() > 1]

    def on_gpu(self) -> bool:
        """Did the search run on a GPU? (device may say "auto"; the profile or resources tell.)"""
        devices = {str(self.meta.device or "").lower()}
        devices |= {str(d).lower() for d in self.trials.get("device", [])}
        resources = self.meta.resources if isinstance(self.meta.resources, dict) else {}
        gpus = resources.get("gpu") or 0
        return any("cuda" in d for d in devices) or self.meta.profile == "gpu" or float(gpus) > 0

    @cached_property
    def noise(self) -> Noise:
        """How much one run's loss moves by chance: what every loss comparison of the report
        is judged against (report/noise.py), from the curves of the trials that trained."""
        return loss_noise([self.curve(i) for i in comparable_ids(self)], self.meta.confirm)

    def curve(self, trial_id: str) -> pd.DataFrame:
        """That trial's evaluations, sorted by iteration (empty when it has none)."""
        return self._by_trial.get(trial_id, self.curves.iloc[0:0])

    def knobs(self, trial_id: str) -> dict[str, Any]:
        """The trial's resolved knobs as plain Python values of the right type."""
        row = self.trials.loc[trial_id]
        out: dict[str, Any] = {}
        for k in KNOBS:
            if k not in row.index:
                continue
            v = row[k]
            if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
                continue
            try:
                out[k] = coerce(k, v.item() if hasattr(v, "item") else v)
            except (UserError, TypeError, ValueError) as e:
                # a value the config would reject: leave it out, don't guess (said once)
                if (trial_id, k) not in self._noted:
                    self._noted.add((trial_id, k))
                    note(f"trial {trial_id}: {e}; {k} is left out of its config")
        return out

    def __post_init__(self) -> None:
        self._by_trial = {str(k): g.reset_index(drop=True)
                          for k, g in self.curves.groupby("trial_id", sort=False)}
        self._noted: set[tuple[str, str]] = set()


def prepare(trials: pd.DataFrame, curves: pd.DataFrame,
            meta: SearchMeta | Mapping[str, Any] | None) -> Results:
    """Copy and normalise the three inputs (never mutates them). `meta` is a SearchMeta or
    the dict of a meta.json (keys of other versions are dropped, missing ones default)."""
    t = trials.copy() if trials is not None else pd.DataFrame()
    # the columns are the trial contract's (tune_gpt.trial): a missing one is "" or NaN
    # (the contract has them all; an older or hand-made table may not)
    lacking = [col for col in (*TRIAL_TEXT, *TRIAL_NUMBERS, *KNOBS) if col not in t.columns
               and col not in LATER_NUMBERS]
    if len(t) and lacking:
        note(f"the trials table has no column {_names(lacking)}: read as empty")
    for col in TRIAL_TEXT:
        t[col] = t[col].astype(object).fillna("").astype(str) if col in t.columns else ""
    unnamed = t["trial_id"] == ""
    if len(t) and unnamed.any():
        t.loc[unnamed, "trial_id"] = [f"trial_{i}" for i in range(unnamed.sum())]
        note(f"{unnamed.sum()} row(s) of the trials table have no trial_id: named "
             f"trial_0 onwards")
    t["outcome"] = t["outcome"].str.strip().str.lower()
    for col in TRIAL_NUMBERS:
        t[col] = pd.to_numeric(t[col], errors="coerce") if col in t.columns else np.nan
    for knob in KNOBS:
        if knob not in t.columns:
            t[knob] = np.nan
    twice = t["trial_id"][t["trial_id"].duplicated()].unique().tolist()
    if twice:
        note(f"trial(s) {_names(twice)} appear more than once in the trials table: the last "
             f"row of each is kept")
    t = t.drop_duplicates("trial_id", keep="last").set_index("trial_id", drop=False)
    t.index.name = None

    c = curves.copy() if curves is not None else pd.DataFrame()
    lacking = [col for col in ("trial_id", *EVAL_KEYS) if col not in c.columns]
    if len(c) and lacking:
        note(f"the curves table has no column {_names(lacking)}: read as empty")
    c["trial_id"] = c["trial_id"].astype(str) if "trial_id" in c.columns else ""
    for col in EVAL_KEYS:
        c[col] = pd.to_numeric(c[col], errors="coerce") if col in c.columns else np.nan
    stray = sorted(set(c["trial_id"]) - set(t.index))
    if stray:
        note(f"the curves of trial(s) {_names([repr(i) for i in stray])} are left out: the "
             f"trials table has no such trial")
    c = c[c["trial_id"].isin(t.index)]
    # tokens seen = iter * tokens/iter when the curve does not say
    tpi = c["trial_id"].map(t["tokens_per_iter"]) if len(c) else c["iter"]
    c["tokens"] = c["tokens"].fillna(c["iter"] * tpi)
    c = c.sort_values(["trial_id", "iter", "tokens"], kind="stable").reset_index(drop=True)

    res = Results(t, c, SearchMeta.from_dict(meta))
    _fill_from_curves(res)
    return res


def _fill_from_curves(res: Results) -> None:
    """Totals the trials table lacks but the curves have (best/final losses, tokens)."""
    t = res.trials
    before = t[list(FROM_CURVES)].isna().sum()
    for tid in t.index:
        cur = res.curve(tid)
        if cur.empty:
            continue
        val = cur[np.isfinite(cur["val_loss"])]
        if math.isnan(t.at[tid, "best_val_loss"]) and len(val):
            t.at[tid, "best_val_loss"] = val["val_loss"].min()
        if math.isnan(t.at[tid, "final_val_loss"]) and len(val):
            t.at[tid, "final_val_loss"] = val["val_loss"].iloc[-1]
        train = cur[np.isfinite(cur["train_loss"])]
        if math.isnan(t.at[tid, "best_train_loss"]) and len(train):
            t.at[tid, "best_train_loss"] = train["train_loss"].min()
        if math.isnan(t.at[tid, "final_train_loss"]) and len(train):
            t.at[tid, "final_train_loss"] = train["train_loss"].iloc[-1]
        if math.isnan(t.at[tid, "tokens"]):
            t.at[tid, "tokens"] = cur["tokens"].max()
        if math.isnan(t.at[tid, "iters"]):
            t.at[tid, "iters"] = cur["iter"].max()
    filled = before - t[list(FROM_CURVES)].isna().sum()
    if filled.any():
        note("the trials table lacks " + ", ".join(f"{n} {col}" for col, n in filled.items() if n)
             + " value(s): taken from the trials' curves")


# ----------------------------------------------------------------------------- equal budget

def comparable_ids(res: Results) -> list[str]:
    """Trials whose curves can be compared: they trained (completed or stopped by ASHA, not
    diverged) and have a finite val_loss after the start."""
    out = []
    for tid, row in res.trials.iterrows():
        if row["outcome"] not in (COMPLETED, STOPPED_EARLY):
            continue
        if reached(res, tid) > 0:
            out.append(tid)
    return out


def reached(res: Results, trial_id: str) -> float:
    """Tokens at the trial's last eval with a finite val_loss (0 when none)."""
    cur = res.curve(trial_id)
    ok = cur[np.isfinite(cur["val_loss"]) & np.isfinite(cur["tokens"])]
    return float(ok["tokens"].max()) if len(ok) else 0.0


def common_budget(res: Results, ids: list[str]) -> float | None:
    """The largest token count that every trial in `ids` reached (None if `ids` is empty)."""
    marks = [reached(res, i) for i in ids]
    marks = [m for m in marks if m > 0]
    return min(marks) if marks else None


def at_budget(res: Results, ids: list[str], budget: float | None) -> pd.DataFrame:
    """Each trial's last evaluation at or before `budget` tokens (within BUDGET_TOLERANCE):
    columns iter, tokens,
    val_loss, train_loss, gap (= val - train). Trials without such an eval are left out."""
    rows = {}
    for tid in ids:
        cur = res.curve(tid)
        cur = cur[np.isfinite(cur["val_loss"]) & (cur["tokens"] > 0)]
        if budget is not None:
            cur = cur[cur["tokens"] <= budget * (1 + BUDGET_TOLERANCE)]
        if cur.empty:
            continue
        last = cur.iloc[-1]
        rows[tid] = {"iter": last["iter"], "tokens": last["tokens"], "val_loss": last["val_loss"],
                     "train_loss": last["train_loss"],
                     "gap": last["val_loss"] - last["train_loss"]}
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["iter", "tokens", "val_loss", "train_loss", "gap"])


def ranked(res: Results, ids: list[str] | None = None) -> list[str]:
    """Trial ids by the search's metric (`res.score`), best first; only trials with a
    finite score. The losses are minimised whatever meta.mode says."""
    t = res.trials if ids is None else res.trials.loc[ids]
    score = t[res.score]
    return list(score[np.isfinite(score)].sort_values(kind="stable").index)


def best_id(res: Results) -> str | None:
    """The trial with the lowest finite score, or None when no trial has one. A diverged
    trial is never "best" (its recipe does not work), unless nothing else is left."""
    order = ranked(res)
    sound = [i for i in order if res.trials.at[i, "outcome"] != DIVERGED]
    return (sound or order or [None])[0]
