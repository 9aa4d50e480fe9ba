"""Training too slow: trials well below their peers' MFU (or tokens/s), spending too much
time evaluating, with compile off on a GPU or a debugging-size batch; and the guide's four
speed remedies, with speedups measured between trials that differ only in that knob. The
section leads with the biggest measured lever (`lead`): the one rung, or the tuned eval knob,
whose measured or computed gain is largest."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tune_gpt.report import memory
from tune_gpt.report.findings import Pair, Remedy, SlowFinding, SpeedRow
from tune_gpt.report.results import Results
from tune_gpt.report.rules import (EVAL_SHARE_MAX, EVAL_SHARE_TARGET, LEAD_MIN_GAIN,
                                   QUIET_LOG_INTERVAL, SLOW_FRACTION, SMALL_BATCH_MAX, SPEED_KEYS)


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
    group = t[keys].map(str).agg("|".join, axis=1) if keys else pd.Series("", index=t.index)
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
    device = "cuda" if gpu else "cpu"
    cal = memory.calibration(t, device)
    remedies = _slow_remedies(res, rows, cal.factor if cal else 1.0)
    return SlowFinding(rows, slow, remedies, device, _lead(res, remedies))


def _lead(res: Results, remedies: list[Remedy]) -> Remedy | None:
    """The biggest measured lever: a rung whose gain was measured (a compile or batch_size
    pair) or computed from measured time (fewer evaluations, or the tuned eval knob behind
    them) and that applies here; None when none promises LEAD_MIN_GAIN."""
    compile_, larger, fewer, _ = remedies
    levers = [r for r in (compile_, larger) if r.applicable and r.pair and r.speedup]
    if fewer.applicable and fewer.speedup:  # without an eval_interval there is no change to name
        levers += [r for r in (_tuned_eval(res, fewer) or fewer,) if r.changes]
    best = max(levers, key=lambda r: r.speedup or 0.0, default=None)
    return best if best is not None and (best.speedup or 0.0) >= LEAD_MIN_GAIN else None


def _tuned_eval(res: Results, fewer: Remedy) -> Remedy | None:
    """When the search itself tuned eval_iters or eval_interval, the trial that evaluates most
    is slow because of that knob: set it to the cheapest value the search tried. Evaluation
    time goes as eval_iters / eval_interval, so the gain follows from the measured share."""
    worst, s = fewer.trials[0], fewer.eval_share or 0.0
    t = res.trials
    tuned = res.tuned_knobs()
    out = None
    for knob, cheapest in (("eval_iters", min), ("eval_interval", max)):
        values = pd.to_numeric(t[knob], errors="coerce") if knob in tuned else pd.Series(dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        if values.nunique() < 2 or not np.isfinite(values.get(worst, np.nan)):
            continue
        cur, best = int(values[worst]), int(cheapest(values))
        k = cur / best if knob == "eval_iters" else best / cur
        if k > 1:
            r = Remedy("tuned_eval", {knob: (cur, best)}, speedup=1.0 / (1.0 - s + s / k),
                       trials=[worst], eval_share=s)
            if out is None or (r.speedup or 0) > (out.speedup or 0):
                out = r
    return out


def _slow_remedies(res: Results, rows: list[SpeedRow], factor: float = 1.0) -> list[Remedy]:
    """The guide's order: compile, larger batch, fewer evaluations, less logging. `factor`
    scales memory estimates as measured (memory.calibration) for the larger batch's verdict."""
    t = res.trials
    limit = res.meta.memory_limit_bytes
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
                larger.fits = memory.fits(larger.mem_bytes, limit, factor)
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
    s = res.meta.scheduler
    if s.type != "asha":
        return None
    g = s.first_rung()
    if not g:
        return None
    if s.time_attr == "iter":
        return g
    tpi = res.trials.at[trial_id, "tokens_per_iter"]
    return g / tpi if s.time_attr == "tokens" and tpi > 0 else None
