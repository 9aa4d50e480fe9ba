"""Report sections 3 and 4: out of memory (the remedy ladder) and training too slow. Each
opens with one sentence on the biggest measured cause and what fixing it gains; then the
guide's ladder, in the guide's order."""

from __future__ import annotations

from typing import Any

import numpy as np

from tune_gpt.report import fmt
from tune_gpt.report.findings import Findings, OomFinding, Pair, Remedy, SlowFinding
from tune_gpt.report.md import Tr, changes, ids, table
from tune_gpt.report.rules import (COMPILE_SPEEDUP, EVAL_SHARE_MAX, LEAD_MIN_GAIN,
                                   QUIET_LOG_INTERVAL, SLOW_FRACTION, SMALL_BATCH_MAX,
                                   THROUGHPUT_NOISE)


def oom_section(f: Findings, T: Tr) -> list[str]:
    o = f.oom
    out = [f"## {T('s3')}"]
    if not o.cases:
        return out + [T("oom.none")]
    factor = o.calibration.factor if o.calibration else 1.0
    if o.lead is not None:
        out.append(_oom_lead(o, T, factor))
    out.append(T("oom.intro", n=len(o.cases), limit=fmt.gb(o.limit_bytes) if o.limit_bytes
                 else T("oom.limit.unknown")))
    if o.calibration is not None:
        out.append(_calibration(o, T))
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
        scaled = _mem(mem, factor if np.isfinite(c.est_mem_bytes) else 1.0, T)
        lines = [f"### `{c.trial_id}`", T("oom.ladder", trial=c.trial_id, config=config, mem=scaled)]
        for i, r in enumerate(c.ladder, 1):
            lines.append(f"{i}. " + _oom_step(r, c.knobs, T, factor))
        if c.combined is not None:
            key = "oom.combined" if c.combined.fits else "oom.combined.nofit"
            lines.append("\n" + T(key, changes=changes(c.combined.changes),
                                  mem=_mem(c.combined.mem_bytes, factor, T),
                                  tpi=fmt.count(c.combined.tokens_per_iter)))
        out.append("\n".join(lines))
    out.append(T("oom.source", source="`tune_gpt.estimate`"))
    return out


def _mem(mem: float | None, factor: float, T: Tr) -> str:
    """An estimate as the text shows it: "604 MB", or with the measured ratio applied,
    "604 MB, ~1.0 GB at the measured ratio"."""
    if factor == 1.0 or not fmt.ok(mem):
        return fmt.gb(mem)
    return fmt.gb(mem) + T("oom.scaled", mem=fmt.gb(float(mem) * factor))  # type: ignore[arg-type]


def _oom_lead(o: OomFinding, T: Tr, factor: float) -> str:
    """The measured cause first: which trial, how much it needs against the limit, what most
    of that is, and the first remedy that fits."""
    lead = o.lead
    assert lead is not None
    c = lead.case
    k = c.knobs
    part = T(f"oom.part.{lead.part}", bs=k.get("batch_size"), bt=k.get("block_size"),
             layers=k.get("n_layer"), width=k.get("n_embd"))
    need = (_mem(c.est_mem_bytes, factor, T) if np.isfinite(c.est_mem_bytes)
            else fmt.gb(lead.need_bytes))  # a measured peak, as it is
    common = dict(trial=c.trial_id, what=T(f"oom.lead.{c.outcome}"), need=need,
                  share=fmt.pct(lead.share), part=part)
    if not o.limit_bytes:
        return T("oom.lead.nolimit", **common)
    if lead.remedy is None:
        return T("oom.lead.nofit", limit=fmt.gb(o.limit_bytes), **common)
    r = lead.remedy
    return T("oom.lead", limit=fmt.gb(o.limit_bytes), changes=changes(r.changes),
             mem=_mem(r.mem_bytes, factor, T), **common)


def _calibration(o: OomFinding, T: Tr) -> str:
    """One line: measured peaks against the estimate, and whether the verdicts use it."""
    cal = o.calibration
    assert cal is not None
    lo, hi = f"{cal.low:.2f}×", f"{cal.high:.2f}×"
    spread = T("oom.cal.spread", lo=lo, hi=hi) if lo != hi else ""
    cpu = T("oom.cal.cpu") if cal.device == "cpu" else ""
    key = "oom.cal" if cal.factor > 1.0 else "oom.cal.none"
    return T(key, ratio=f"{cal.ratio:.2f}×", factor=f"{cal.factor:.2f}", n=cal.n, spread=spread, cpu=cpu)


def _oom_step(r: Remedy, knobs: dict[str, Any], T: Tr, factor: float = 1.0) -> str:
    text = T(f"oom.{r.key}", changes=changes(r.changes) or "—", mem=_mem(r.mem_bytes, factor, T),
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
    out = [f"## {T('s4')}", _slow_lead(s, T), T("slow.intro")]
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
    if s.slow:
        out.append(T("slow.some", ids=ids(s.slow, 8)))
    factor = f.oom.calibration.factor if f.oom.calibration else 1.0
    lines = [T("slow.remedies")]
    for i, r in enumerate(s.remedies, 1):
        tag = T("slow.tag.measured" if _measured(r) else "slow.tag.unmeasured")
        lines.append(f"{i}. {tag} · " + _slow_step(r, T, factor, measured=bool(s.rows)))
    out.append("\n".join(lines))
    if "pareto.png" in figures:
        out.append(f"![val_loss vs speed](pareto.png)\n\n*{T('fig.pareto.caption')}*")
    return out


def _slow_lead(s: SlowFinding, T: Tr) -> str:
    """The biggest measured lever and its gain, in one sentence (the ladder follows)."""
    r = s.lead
    if r is None:
        if not s.slow:
            return T("slow.none")
        return T("slow.lead.unmeasured", ids=ids(s.slow, 8), min=f"{LEAD_MIN_GAIN:.1f}×")
    gain = f"{r.speedup:.1f}×"
    if r.key in ("fewer_evals", "tuned_eval"):
        share = r.eval_share or 0.0
        heavy = sorted(x.eval_share for x in s.rows if "eval_heavy" in x.flags)
        lo, hi = fmt.pct(heavy[0]), fmt.pct(heavy[-1])
        spread = T("slow.lead.spread", n=len(heavy), total=len(s.rows), max=fmt.pct(EVAL_SHARE_MAX),
                   range=T("slow.lead.range", lo=lo, hi=hi) if lo != hi else "") if len(heavy) > 1 else ""
        if r.key == "tuned_eval":
            knob, (cur, best) = next(iter(r.changes.items()))
            return T("slow.lead.tuned_eval", share=fmt.pct(share), trial=r.trials[0], spread=spread,
                     knob=knob, cur=cur, best=best, changes=changes(r.changes), speedup=gain)
        return T("slow.lead.eval", share=fmt.pct(share), trial=r.trials[0], spread=spread,
                 changes=changes(r.changes), speedup=gain, ceiling=f"{1 / (1 - min(share, 0.99)):.1f}×")
    assert r.pair is not None
    if r.key == "compile":
        return T("slow.lead.compile", n=len(r.trials), ids=ids(r.trials), **_pair(r.pair))
    return T("slow.lead.larger_batch", trial=r.trials[0], changes=changes(r.changes), **_pair(r.pair))


def _measured(r: Remedy) -> bool:
    """Is the rung's gain measured in this search (a pair of trials, or measured eval time)?"""
    if r.key == "fewer_evals":
        return r.eval_share is not None
    return r.pair is not None


def _pair(p: Pair) -> dict[str, str]:
    return {"lo": fmt.value(p.knob, p.low), "hi": fmt.value(p.knob, p.high), "ratio": fmt.times(p.ratio),
            "a": ids(p.low_ids, 2), "b": ids(p.high_ids, 2)}


def _speed_verdict(p: Pair, T: Tr) -> str:
    """Is a measured speed ratio beyond the run-to-run variation of throughput?"""
    within = abs(p.ratio - 1) < THROUGHPUT_NOISE
    return T("noise.speed.within" if within else "noise.speed.real", pct=fmt.pct(THROUGHPUT_NOISE))


def _slow_step(r: Remedy, T: Tr, factor: float = 1.0, measured: bool = True) -> str:
    if r.key == "compile":  # `measured`: some trial's speed was measured at all
        which = T("slow.compile.which", n=len(r.trials), ids=ids(r.trials)) if r.trials \
            else T("slow.compile.all_on") if measured else T("slow.compile.none")
        measured = T("slow.compile.measured", verdict=_speed_verdict(r.pair, T), **_pair(r.pair)) \
            if r.pair else \
            T("slow.compile.guide", lo=COMPILE_SPEEDUP[0], hi=COMPILE_SPEEDUP[1])
        return T("slow.compile", which=which, measured=measured)
    if r.key == "larger_batch":
        measured = (T("slow.batch.measured", verdict=_speed_verdict(r.pair, T), **_pair(r.pair))
                    if r.pair else T("slow.batch.none"))
        if not r.applicable:
            return T("slow.larger_batch.no") + " " + measured
        mem = ""
        if r.mem_bytes:
            fit = {True: T("oom.fits"), False: T("oom.nofit"), None: T("oom.fit.unknown")}[r.fits]
            mem = T("slow.larger_batch.mem", mem=_mem(r.mem_bytes, factor, T), fit=fit)
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
