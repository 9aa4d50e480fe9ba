"""The results a report reads, normalised once: trials, curves and the search's meta.

`prepare` fills every column the report uses (missing -> NaN or ""), so the rest of the
package never asks "is this column there?". It also holds the one idea every section
shares: comparing trials at an *equal budget*. ASHA stops weak trials early, so a trial's
last value mixes "how good is this config" with "how long did it train". Reading every
trial's curve at the same number of tokens removes the second part:

    budget = common_budget(res, ids)     # the largest token count all of `ids` reached
    table = at_budget(res, ids, budget)  # each trial's last eval at or before it
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tune_gpt.config import FIELD_TYPES, KNOBS, coerce
from tune_gpt.outcomes import COMPLETED, DIVERGED, STOPPED_EARLY

# Evaluations fall on a token grid that differs a little between batch sizes
# (eval_interval is a whole number of iterations, rounded up): an evaluation at most 5% past
# the equal budget counts as at it, so no trial drops out of a comparison over a few tokens.
BUDGET_TOLERANCE = 0.05

# Columns of the trials table (besides the knobs) and what a missing one defaults to.
TRIAL_TEXT = ("trial_id", "outcome", "error", "rescue_of")
TRIAL_NUMBERS = ("tokens_per_iter", "iters", "tokens", "best_val_loss", "final_val_loss",
                 "final_train_loss", "tokens_per_s", "ms_per_iter", "mfu", "peak_mem_bytes",
                 "est_mem_bytes", "wall_s", "eval_s", "n_params", "vocab_size")
CURVE_NUMBERS = ("iter", "tokens", "train_loss", "val_loss", "lr", "tokens_per_s",
                 "ms_per_iter", "mfu", "peak_mem_bytes", "elapsed_s", "eval_s")

# Knobs that say where or how a trial ran rather than what it trained: never "tuned".
NOT_TUNED = ("out_dir", "dataset", "device", "seed")


@dataclass
class Results:
    """One search's results. `trials` is indexed by trial_id (str)."""

    trials: pd.DataFrame
    curves: pd.DataFrame
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "search")

    @property
    def vocab_size(self) -> int | None:
        v = pd.to_numeric(self.trials["vocab_size"], errors="coerce").dropna()
        if len(v):
            return int(v.iloc[0])
        m = self.meta.get("vocab_size")
        return int(m) if m else None

    @property
    def params(self) -> dict[str, Any]:
        """The tuned parameters as written in the search space (knob or group -> dist)."""
        p = self.meta.get("params") or {}
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
        devices = {str(self.meta.get("device", "")).lower()}
        devices |= {str(d).lower() for d in self.trials.get("device", [])}
        gpus = (self.meta.get("resources") or {}).get("gpu") or 0
        return any("cuda" in d for d in devices) or self.meta.get("profile") == "gpu" or float(gpus) > 0

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
            except Exception:  # a value the config would reject: leave it out, don't guess
                continue
        return out

    def __post_init__(self) -> None:
        self._by_trial = {str(k): g.reset_index(drop=True)
                          for k, g in self.curves.groupby("trial_id", sort=False)}


def prepare(trials: pd.DataFrame, curves: pd.DataFrame, meta: dict[str, Any] | None) -> Results:
    """Copy and normalise the three inputs (never mutates them)."""
    t = trials.copy() if trials is not None else pd.DataFrame()
    for col in TRIAL_TEXT:
        t[col] = t[col].fillna("").astype(str) if col in t.columns else ""
    if len(t) and (t["trial_id"] == "").any():
        t.loc[t["trial_id"] == "", "trial_id"] = [f"trial_{i}" for i in range((t["trial_id"] == "").sum())]
    t["outcome"] = t["outcome"].str.strip().str.lower()
    for col in TRIAL_NUMBERS:
        t[col] = pd.to_numeric(t[col], errors="coerce") if col in t.columns else np.nan
    for knob in KNOBS:  # the contract has them all; a hand-made table may not
        if knob not in t.columns:
            t[knob] = np.nan
    t = t.drop_duplicates("trial_id", keep="last").set_index("trial_id", drop=False)
    t.index.name = None

    c = curves.copy() if curves is not None else pd.DataFrame()
    c["trial_id"] = c["trial_id"].astype(str) if "trial_id" in c.columns else ""
    for col in CURVE_NUMBERS:
        c[col] = pd.to_numeric(c[col], errors="coerce") if col in c.columns else np.nan
    c = c[c["trial_id"].isin(t.index)]
    # tokens seen = iter * tokens/iter when the curve does not say
    tpi = c["trial_id"].map(t["tokens_per_iter"]) if len(c) else c["iter"]
    c["tokens"] = c["tokens"].fillna(c["iter"] * tpi)
    c = c.sort_values(["trial_id", "iter", "tokens"], kind="stable").reset_index(drop=True)

    res = Results(t, c, dict(meta or {}))
    _fill_from_curves(res)
    return res


def _fill_from_curves(res: Results) -> None:
    """Totals the trials table lacks but the curves have (best/final losses, tokens)."""
    t = res.trials
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
        if math.isnan(t.at[tid, "final_train_loss"]) and len(train):
            t.at[tid, "final_train_loss"] = train["train_loss"].iloc[-1]
        if math.isnan(t.at[tid, "tokens"]):
            t.at[tid, "tokens"] = cur["tokens"].max()
        if math.isnan(t.at[tid, "iters"]):
            t.at[tid, "iters"] = cur["iter"].max()


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
    """Trial ids by best_val_loss, best first; trials without a finite loss last."""
    t = res.trials if ids is None else res.trials.loc[ids]
    key = t["best_val_loss"].where(np.isfinite(t["best_val_loss"]), np.inf)
    return list(key.sort_values(kind="stable").index)


def best_id(res: Results) -> str | None:
    """The trial with the lowest finite best_val_loss, or None when no trial has one. A
    diverged trial is never "best" (its recipe does not work), unless nothing else is left."""
    order = [i for i in ranked(res) if np.isfinite(res.trials.at[i, "best_val_loss"])]
    sound = [i for i in order if res.trials.at[i, "outcome"] != DIVERGED]
    return (sound or order or [None])[0]


def parse_amount(v: Any) -> float:
    """200k -> 2e5 (meta values are numbers, but a hand-written meta may use suffixes)."""
    if isinstance(v, (int, float)):
        return float(v)
    text = str(v).strip().lower()
    mult = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}.get(text[-1:], 1.0)
    return float(text[:-1] if mult != 1.0 else text) * mult
