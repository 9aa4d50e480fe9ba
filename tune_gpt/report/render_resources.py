"""Report sections 3 and 4: out of memory (the remedy ladder) and training too slow."""

from __future__ import annotations

from typing import Any

import numpy as np

from tune_gpt.report import fmt
from tune_gpt.report.findings import Findings, Pair, Remedy
from tune_gpt.report.md import Tr, changes, ids, table
from tune_gpt.report.rules import (COMPILE_SPEEDUP, EVAL_SHARE_MAX, QUIET_LOG_INTERVAL,
                                   SLOW_FRACTION, SMALL_BATCH_MAX)


def oom_section(f: Findings, T: Tr) -> list[str]:
    o = f.oom
    out = [f"## {T('s3')}"]
    if not o.cases:
        return out + [T("oom.none")]
    out.append(T("oom.intro", n=len(o.cases), limit=fmt.gb(o.limit_bytes) if o.limit_bytes
                 else T("oom.limit.unknown")))
    keys = ("batch_size", "block_size", "gradient_accumulation_steps", "n_layer", "n_embd", "dtype")
    rows = [[f"`{c.trial_id}`", c.outcome, *[fmt.value(k, c.knobs.get(k, "—")) for k in keys],
             fmt.count(c.tokens_per_iter), fmt.gb(c.peak_mem_bytes), fmt.gb(c.est_mem_bytes)]
            for c in o.cases]
    out.append(table([T("lb.trial"), T("lb.outcome"), *keys, T("oom.col.tpi"), T("oom.col.peak"),
                      T("oom.col.est")], rows))
    for c in o.cases:
        if c.rescued_by:
            out.append(T("oom.rescue", rescue=c.rescued_by, trial=c.trial_id, outcome=c.rescue_outcome,
                         loss=fmt.loss(c.rescue_val_loss)))
    for c in o.cases:
        if not c.ladder:
            continue
        config = ", ".join(f"{k} {fmt.value(k, c.knobs[k])}" for k in keys if k in c.knobs)
        mem = c.est_mem_bytes if np.isfinite(c.est_mem_bytes) else c.peak_mem_bytes
        lines = [f"### `{c.trial_id}`", T("oom.ladder", trial=c.trial_id, config=config, mem=fmt.gb(mem))]
        for i, r in enumerate(c.ladder, 1):
            lines.append(f"{i}. " + _oom_step(r, c.knobs, T))
        if c.combined is not None:
            key = "oom.combined" if c.combined.fits else "oom.combined.nofit"
            lines.append("\n" + T(key, changes=changes(c.combined.changes), mem=fmt.gb(c.combined.mem_bytes),
                                  tpi=fmt.count(c.combined.tokens_per_iter)))
        out.append("\n".join(lines))
    out.append(T("oom.source", source="`tune_gpt.estimate`"))
    return out


def _oom_step(r: Remedy, knobs: dict[str, Any], T: Tr) -> str:
    text = T(f"oom.{r.key}", changes=changes(r.changes) or "—", mem=fmt.gb(r.mem_bytes),
             tpi=fmt.count(r.tokens_per_iter))
    if not r.applicable:
        head = text.split(" —")[0]
        knob = {"smaller_batch": "batch_size", "grad_accum": "batch_size", "smaller_block": "block_size",
                "smaller_model": "n_layer", "mixed_precision": "dtype"}[r.key]
        why = T("oom.na.dtype" if knob == "dtype" else "oom.na.min", knob=knob,
                value=fmt.value(knob, knobs.get(knob)))
        return f"{head} — " + T("oom.na", why=why)
    fit = {True: "✅ " + T("oom.fits"), False: "❌ " + T("oom.nofit"), None: T("oom.fit.unknown")}[r.fits]
    return f"{text} ({fit})"


def slow_section(f: Findings, T: Tr, figures: list[str]) -> list[str]:
    s = f.slow
    out = [f"## {T('s4')}", T("slow.intro")]
    rows = sorted(s.rows, key=lambda r: (not r.flags, -r.tokens_per_s))[:15]
    if rows:
        out.append(table([T("lb.trial"), T("lb.speed"), T("slow.col.mfu"), T("slow.col.eval"), "compile",
                          "batch_size", T("slow.col.flags")],
                         [[f"`{r.trial_id}`", fmt.speed(r.tokens_per_s), fmt.pct(r.mfu, 1),
                           fmt.pct(r.eval_share), fmt.value("compile", r.compile),
                           fmt.value("batch_size", r.batch_size),
                           ", ".join(T(f"slow.flag.{x}") for x in r.flags)] for r in rows]))
        basis = T("slow.basis.mfu") if any(np.isfinite(r.mfu) for r in s.rows) else T("slow.basis.tps")
        out.append(T("slow.legend", basis=basis, frac=fmt.pct(SLOW_FRACTION), share=fmt.pct(EVAL_SHARE_MAX),
                     small=SMALL_BATCH_MAX))
    out.append(T("slow.some", ids=ids(s.slow, 8)) if s.slow else T("slow.none"))
    lines = [T("slow.remedies")]
    for i, r in enumerate(s.remedies, 1):
        lines.append(f"{i}. " + _slow_step(r, T))
    out.append("\n".join(lines))
    if "pareto.png" in figures:
        out.append(f"![val_loss vs speed](pareto.png)\n\n*{T('fig.pareto.caption')}*")
    return out


def _pair(p: Pair) -> dict[str, str]:
    return {"lo": fmt.value(p.knob, p.low), "hi": fmt.value(p.knob, p.high), "ratio": fmt.times(p.ratio),
            "a": ids(p.low_ids, 2), "b": ids(p.high_ids, 2)}


def _slow_step(r: Remedy, T: Tr) -> str:
    if r.key == "compile":
        which = T("slow.compile.which", n=len(r.trials), ids=ids(r.trials)) if r.trials \
            else T("slow.compile.all_on")
        measured = T("slow.compile.measured", **_pair(r.pair)) if r.pair else \
            T("slow.compile.guide", lo=COMPILE_SPEEDUP[0], hi=COMPILE_SPEEDUP[1])
        return T("slow.compile", which=which, measured=measured)
    if r.key == "larger_batch":
        measured = T("slow.batch.measured", **_pair(r.pair)) if r.pair else T("slow.batch.none")
        if not r.applicable:
            return T("slow.larger_batch.no") + " " + measured
        mem = ""
        if r.mem_bytes:
            fit = {True: T("oom.fits"), False: T("oom.nofit"), None: T("oom.fit.unknown")}[r.fits]
            mem = T("slow.larger_batch.mem", mem=fmt.gb(r.mem_bytes), fit=fit)
        return T("slow.larger_batch", changes=changes(r.changes), trial=r.trials[0], mem=mem,
                 measured=measured)
    if r.key == "fewer_evals":
        if r.eval_share is None:
            return T("slow.fewer_evals.none")
        if not r.applicable:
            return T("slow.fewer_evals.ok", share=fmt.pct(r.eval_share), trial=r.trials[0])
        return T("slow.fewer_evals", trial=r.trials[0], share=fmt.pct(r.eval_share),
                 changes=changes(r.changes), speedup=fmt.times(r.speedup)) + " " + T("slow.asha_note")
    if not r.applicable:
        return T("slow.less_logging.ok", n=QUIET_LOG_INTERVAL)
    return T("slow.less_logging", changes=changes(r.changes), ids=ids(r.trials))
