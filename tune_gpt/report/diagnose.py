"""Diagnosis rules: what counts as out-of-memory trouble, slowness, overfitting and
divergence, and which remedies to try in which order. Every threshold is here, named,
with the reason for its value; the other modules only read them.

The remedy ladders follow the beginner's guide, §6 "配置调优策略", in its priority order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tune_gpt.outcomes import COMPLETED, DIVERGED, FAILED, OOM, PREDICTED_OOM
from tune_gpt.report import memory
from tune_gpt.report.findings import (DivergeCase, DivergeFinding, Evidence, OomCase, OomFinding,
                                      OverfitCase, OverfitFinding, Pair, Remedy, SlowFinding,
                                      SpeedRow)
from tune_gpt.report.results import Results, at_budget, common_budget, comparable_ids, parse_amount
from tune_gpt.report.stats import halves, spearman

# ----------------------------------------------------------------------------- thresholds

LEADERBOARD_SIZE = 10       # ten rows fit on a screen; the full table is trials.csv
CURVES_TOP = 5              # more lines than this in one plot stop being readable

# Overfitting
OVERFIT_MIN_RISE = 0.03     # nats. A loss estimate averages eval_iters batches and wobbles
                            # by ~0.01 on shakespeare_char; three times that is a real rise.
OVERFIT_GAP_RATIO = 0.10    # val_loss more than 10% above train_loss at the last eval: the
                            # model does clearly better on text it has seen. Relative, so it
                            # means the same for char-level (loss ~1.5) and BPE (~3) data.

# Divergence
EXPLODE_RATIO = 1.2         # train_loss climbing back 20% above its own minimum is not
                            # overfitting (that needs train_loss to fall) but instability.
FLAT_FRACTION = 0.9         # best val_loss still above 90% of ln(vocab), the loss of a uniform
                            # guess: the model learned (almost) nothing. Any working run on
                            # shakespeare_char is below 3.0 = 0.72*ln(65) within a few hundred
                            # iterations, so 0.9 leaves room for short runs and flags only the stuck.

# Slowness
SLOW_FRACTION = 0.5         # MFU (or tokens/s) below half the search's median: twice slower
                            # than its peers for its size, more than noise between trials.
EVAL_SHARE_MAX = 0.25       # a quarter of wall time spent evaluating. Evaluation costs about
                            # 2*eval_iters forward passes (train and val split) per eval_interval
                            # steps, a forward being ~1/3 of a step: nanoGPT's shakespeare_char
                            # recipe (200 every 250) spends ~35%, which is why the guide raises
                            # eval_interval to 500; above 25%, doing so gains >= 1.14x.
EVAL_SHARE_TARGET = 0.10    # what the "fewer evaluations" remedy aims for.
SMALL_BATCH_MAX = 8         # the guide's table: batch_size 1-8 is "慢" (slow), for debugging.
QUIET_LOG_INTERVAL = 100    # the guide's remedy value: log_interval = 100.
COMPILE_SPEEDUP = (1.5, 2.0)  # the guide's "提速1.5-2x" for compile=True on a GPU.

# Memory
MEMORY_HEADROOM = 0.9       # an estimate "fits" only under 90% of the limit: the CUDA context,
                            # allocator fragmentation and estimate error take the rest.
MAX_OOM_LADDERS = 3         # remedies are spelled out for the three biggest OOM configs.

# Effects and narrowing
EFFECT_MIN_RHO = 0.3        # |Spearman rho| below this is "no clear effect": with ~10 trials
                            # a weaker correlation is well within chance.
EFFECT_MIN_N = 4            # fewer trials than this: too few to say anything.
EFFECT_MIN_LOSS = 0.01      # nats: a val_loss or gap difference smaller than the eval noise
                            # (~0.01 on shakespeare_char) is shown as "no clear effect"...
EFFECT_MIN_RATIO = 0.05     # ...and so is a speed or memory ratio within 5% of 1 (throughput
                            # of the same config varies by a few % from run to run).
REMEDY_MIN_GAP = 0.02       # nats. A remedy "works" (or "made it worse") only if the val-train
                            # gap moves by at least this much too: smaller moves are within the
                            # evaluation noise, however consistent their ranks.
TOP_FRACTION = 0.25         # the next search centres on the best quarter of the trials...
TOP_MIN = 3                 # ...but on at least three, so one lucky trial cannot decide it.
NARROW_PAD = 0.25           # widen the top trials' span by 25% on each side (log scale for
                            # loguniform) so the optimum can still lie just outside it.

# ----------------------------------------------------------------------------- remedy ladders

OOM_REMEDIES = ("smaller_batch", "smaller_block", "grad_accum", "smaller_model", "mixed_precision")
SLOW_REMEDIES = ("compile", "larger_batch", "fewer_evals", "less_logging")
OVERFIT_REMEDIES = ("dropout", "weight_decay", "smaller_model", "more_data")

# Knobs that set speed per token; trials equal on all but one of them "differ mainly" in it.
SPEED_KEYS = ("batch_size", "block_size", "gradient_accumulation_steps", "n_layer", "n_head",
              "n_embd", "bias", "dtype", "compile", "device")


def top_ids(res: Results) -> tuple[list[str], float | None]:
    """The best quarter (at least TOP_MIN) of comparable trials by val_loss at equal budget."""
    ids = comparable_ids(res)
    budget = common_budget(res, ids)
    table = at_budget(res, ids, budget).sort_values("val_loss", kind="stable")
    k = max(TOP_MIN, math.ceil(TOP_FRACTION * len(table)))
    return list(table.index[:k]), budget


# ----------------------------------------------------------------------------- OOM

def diagnose_oom(res: Results) -> OomFinding:
    """Trials that ran out of memory or were predicted to, each with the guide's ladder."""
    limit = res.meta.get("memory_limit_bytes")
    t = res.trials
    ids = [i for i in t.index if t.at[i, "outcome"] in (OOM, PREDICTED_OOM)]
    est = {i: t.at[i, "est_mem_bytes"] if np.isfinite(t.at[i, "est_mem_bytes"])
           else (memory.need_bytes(res.knobs(i), res.vocab_size) or np.nan) for i in ids}
    ids.sort(key=lambda i: -np.nan_to_num(np.fmax(est[i], t.at[i, "peak_mem_bytes"]), nan=0.0))
    cases, seen = [], []
    for i in ids:
        knobs = res.knobs(i)
        shape = tuple(knobs.get(k) for k in SPEED_KEYS)
        ladder = []
        complete = all(k in knobs for k in SPEED_KEYS)  # a ladder needs the whole config
        if complete and shape not in seen and len(seen) < MAX_OOM_LADDERS:
            seen.append(shape)
            ladder = oom_ladder(knobs, res.vocab_size, limit)
        case = OomCase(i, t.at[i, "outcome"], knobs, float(t.at[i, "tokens_per_iter"]),
                       float(t.at[i, "peak_mem_bytes"]), float(est[i]), ladder)
        if ladder:
            case.combined = oom_combined(knobs, res.vocab_size, limit, ladder)
        if np.isnan(case.tokens_per_iter) and complete:
            case.tokens_per_iter = float(knobs["batch_size"] * knobs["block_size"]
                                         * knobs["gradient_accumulation_steps"])
        rescue = t.index[t["rescue_of"] == i]
        if len(rescue):
            r = rescue[0]
            case.rescued_by, case.rescue_outcome = r, t.at[r, "outcome"]
            case.rescue_val_loss = float(t.at[r, "best_val_loss"])
        cases.append(case)
    return OomFinding(cases, float(limit) if limit else None, memory.estimator_name())


def oom_ladder(knobs: dict[str, Any], vocab: int | None, limit: float | None) -> list[Remedy]:
    """The guide's five OOM remedies, each applied alone to `knobs`, with the memory it needs."""
    bs, bt = knobs["batch_size"], knobs["block_size"]
    ga = knobs["gradient_accumulation_steps"]
    layers, width = memory.smaller_model(knobs["n_layer"], knobs["n_head"], knobs["n_embd"])
    low_precision = "bfloat16"  # runs on CPU and recent GPUs; the text names float16 for older GPUs
    steps = {
        "smaller_batch": {"batch_size": max(1, bs // 2)},
        "smaller_block": {"block_size": max(1, bt // 2)},
        "grad_accum": {"batch_size": max(1, bs // 2),
                       "gradient_accumulation_steps": ga * (2 if bs > 1 else 1)},
        "smaller_model": {"n_layer": layers, "n_embd": width},
        "mixed_precision": {"dtype": low_precision if knobs["dtype"] == "float32" else knobs["dtype"]},
    }
    out = []
    for key in OOM_REMEDIES:
        new = {**knobs, **steps[key]}
        changes = {k: (knobs[k], v) for k, v in steps[key].items() if knobs[k] != v}
        mem = memory.need_bytes(new, vocab)
        out.append(Remedy(key, changes,
                          tokens_per_iter=new["batch_size"] * new["block_size"]
                          * new["gradient_accumulation_steps"],
                          mem_bytes=mem,
                          fits=None if (limit is None or mem is None) else mem <= MEMORY_HEADROOM * limit,
                          applicable=bool(changes)))
    return out


def oom_combined(knobs: dict[str, Any], vocab: int | None, limit: float | None,
                 ladder: list[Remedy]) -> Remedy | None:
    """When no single remedy fits: the ladder's steps applied on top of each other, in the
    guide's order, until the estimate fits. The batch is halved through accumulation (step
    3 instead of step 1) so tokens/iter stays what the search chose."""
    if limit is None or any(r.fits for r in ladder) or not any(r.fits is False for r in ladder):
        return None
    cur, changes = dict(knobs), {}
    for r in ladder:
        if not r.applicable or r.key == "smaller_batch":
            continue
        for k, (_, new) in r.changes.items():
            cur[k] = new
            changes[k] = (knobs[k], new)
        mem = memory.need_bytes(cur, vocab)
        if mem is not None and mem <= MEMORY_HEADROOM * limit:
            return Remedy("combined", changes, cur["batch_size"] * cur["block_size"]
                          * cur["gradient_accumulation_steps"], mem, True)
    return Remedy("combined", changes, None, memory.need_bytes(cur, vocab), False)


# ----------------------------------------------------------------------------- slowness

def _eval_share(row: pd.Series) -> float:
    wall, ev = row["wall_s"], row["eval_s"]
    return float(ev / wall) if np.isfinite(wall) and np.isfinite(ev) and wall > 0 else float("nan")


def paired_speedups(res: Results, knob: str) -> list[Pair]:
    """Measured tokens/s ratios between trials equal in every SPEED_KEYS knob but `knob`
    (other knobs, like learning_rate, barely change speed): one Pair per such group."""
    t = res.trials[np.isfinite(res.trials["tokens_per_s"]) & (res.trials["tokens_per_s"] > 0)]
    if knob not in t.columns or t.empty:
        return []
    keys = [k for k in SPEED_KEYS if k != knob and k in t.columns]
    group = t[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", index=t.index)
    out = []
    for _, g in t.groupby(group, sort=False):
        x = pd.to_numeric(g[knob].astype(str).str.lower().replace({"true": 1, "false": 0}),
                          errors="coerce")
        if x.nunique() < 2:
            continue
        med = g["tokens_per_s"].groupby(x).median().sort_index()
        lo, hi = med.index[0], med.index[-1]
        out.append(Pair(knob, _plain(knob, lo), _plain(knob, hi), float(med[hi] / med[lo]),
                        list(g.index[x == lo]), list(g.index[x == hi])))
    return out


def _plain(knob: str, v: float) -> Any:
    return bool(v) if knob == "compile" else (int(v) if float(v).is_integer() else float(v))


def _best_pair(pairs: list[Pair]) -> Pair | None:
    """The comparison backed by the most trials (the median ratio is reported with it)."""
    return max(pairs, key=lambda p: len(p.low_ids) + len(p.high_ids)) if pairs else None


def diagnose_slowness(res: Results) -> SlowFinding:
    t = res.trials
    have = t[np.isfinite(t["tokens_per_s"])]
    use_mfu = np.isfinite(have["mfu"]).sum() >= max(2, len(have) / 2)
    speed = have["mfu"] if use_mfu else have["tokens_per_s"]
    median = float(speed.median()) if len(speed) else float("nan")
    gpu = res.on_gpu()
    rows = []
    for i, row in have.iterrows():
        flags = []
        if len(have) >= 3 and np.isfinite(speed[i]) and speed[i] < SLOW_FRACTION * median:
            flags.append("slow")
        share = _eval_share(row)
        if share > EVAL_SHARE_MAX:
            flags.append("eval_heavy")
        comp = None if pd.isna(row["compile"]) else str(row["compile"]).lower() in ("true", "1")
        if gpu and comp is False:
            flags.append("compile_off")
        if pd.notna(row["batch_size"]) and float(row["batch_size"]) <= SMALL_BATCH_MAX:
            flags.append("small_batch")
        rows.append(SpeedRow(i, float(row["tokens_per_s"]), float(row["mfu"]), share, comp,
                             row["batch_size"], flags))
    rows.sort(key=lambda r: -r.tokens_per_s)
    slow = [r.trial_id for r in rows if r.flags]
    return SlowFinding(rows, slow, _slow_remedies(res, rows), "cuda" if gpu else "cpu")


def _slow_remedies(res: Results, rows: list[SpeedRow]) -> list[Remedy]:
    """The guide's order: compile, larger batch, fewer evaluations, less logging."""
    t = res.trials
    limit = res.meta.get("memory_limit_bytes")
    # 1. compile
    off = [r.trial_id for r in rows if r.compile is False]
    pairs = paired_speedups(res, "compile")
    compile_ = Remedy("compile", {"compile": (False, True)} if off else {}, applicable=bool(off),
                      trials=off, pair=_best_pair(pairs))
    if pairs:
        compile_.speedup = float(np.median([p.ratio for p in pairs]))
    # 2. larger batch: double the smallest batch in the search
    larger = Remedy("larger_batch", applicable=False)
    small = sorted((r for r in rows if pd.notna(r.batch_size)),
                   key=lambda r: (float(r.batch_size), r.tokens_per_s))
    if small:
        r0 = small[0]
        bs = int(float(r0.batch_size))
        larger.changes = {"batch_size": (bs, bs * 2)}
        larger.applicable = "small_batch" in r0.flags or "slow" in r0.flags
        larger.trials = [r0.trial_id]
        knobs = res.knobs(r0.trial_id)
        if knobs:
            larger.mem_bytes = memory.need_bytes({**knobs, "batch_size": bs * 2}, res.vocab_size)
            if limit and larger.mem_bytes:
                larger.fits = larger.mem_bytes <= MEMORY_HEADROOM * limit
    pairs = paired_speedups(res, "batch_size")
    if pairs:
        larger.pair = _best_pair(pairs)
        larger.speedup = float(np.median([p.ratio for p in pairs]))
    # 3. fewer evaluations: the trial with the largest eval share
    fewer = Remedy("fewer_evals", applicable=False)
    shares = [r for r in rows if np.isfinite(r.eval_share)]
    if shares:
        worst = max(shares, key=lambda r: r.eval_share)
        s = min(worst.eval_share, 0.99)
        ratio = s / (1 - s)  # evaluation time per unit of training time
        k = max(2.0, float(math.ceil(ratio / (EVAL_SHARE_TARGET / (1 - EVAL_SHARE_TARGET)))))
        ei = t.at[worst.trial_id, "eval_interval"]
        if pd.notna(ei) and int(ei) > 0:
            ei = int(ei)
            new = int(ei * k)
            cap = _grace_iters(res, worst.trial_id)
            if cap and new > cap:
                new = max(ei, int(cap))
                k = new / ei
            fewer.changes = {"eval_interval": (ei, new)}
        fewer.speedup = 1.0 / (1.0 - s + s / k)
        fewer.applicable = s > EVAL_SHARE_MAX and k > 1
        fewer.trials, fewer.eval_share = [worst.trial_id], s
    # 4. less logging
    li = pd.to_numeric(t["log_interval"], errors="coerce") if "log_interval" in t else pd.Series(dtype=float)
    chatty = li[li < QUIET_LOG_INTERVAL]
    logging = Remedy("less_logging", applicable=len(chatty) > 0, trials=list(chatty.index))
    if len(chatty):
        logging.changes = {"log_interval": (int(chatty.min()), QUIET_LOG_INTERVAL)}
    return [compile_, larger, fewer, logging]


def _grace_iters(res: Results, trial_id: str) -> float | None:
    """ASHA's first rung in iterations, so 'fewer evals' never skips the first decision."""
    s = res.meta.get("scheduler") or {}
    if s.get("type") != "asha":
        return None
    g = parse_amount(s.get("grace_period") or 0) or parse_amount(s.get("max_t") or 0) / 10
    if not g:
        return None
    if s.get("time_attr") == "iter":
        return g
    tpi = res.trials.at[trial_id, "tokens_per_iter"]
    return g / tpi if s.get("time_attr") == "tokens" and tpi > 0 else None


# ----------------------------------------------------------------------------- overfitting

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


# ----------------------------------------------------------------------------- divergence

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
    ok = [lr[i] for i in comparable_ids(res) if i not in bad and np.isfinite(lr[i])]
    unstable = [c.learning_rate for c in cases
                if c.reason != "flat" and np.isfinite(c.learning_rate)]
    safe = None
    if ok:
        below = [v for v in ok if not unstable or v < min(unstable)]
        safe = (min(ok), max(below or ok))
    top, _ = top_ids(res)
    good_lrs = [lr[i] for i in top if i not in bad and np.isfinite(lr[i])]
    good = (min(good_lrs), max(good_lrs)) if good_lrs else None
    return DivergeFinding(cases, safe, good, len(ok), ln_vocab)
