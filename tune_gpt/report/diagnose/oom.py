"""Out of memory: trials that ran out of memory (oom) or were predicted not to fit
(predicted_oom), biggest first, each with the guide's five remedies made concrete for its
config and the memory each would need ("try the first one that fits"). Where trials that ran
measured their peak, the "fits" verdicts use the estimate scaled by the measured/estimated
ratio (memory.calibration), and the section leads with what most of the memory was and the
first remedy that fits."""

from __future__ import annotations

from typing import Any

import numpy as np

from tune_gpt.report import memory
from tune_gpt.report.findings import OomCase, OomFinding, OomLead, Remedy
from tune_gpt.report.results import Results
from tune_gpt.report.rules import MAX_OOM_LADDERS, OOM_REMEDIES, SPEED_KEYS
from tune_gpt.trial import OOM, PREDICTED_OOM


def diagnose_oom(res: Results) -> OomFinding:
    """Trials that ran out of memory or were predicted to, each with the guide's ladder."""
    limit = res.meta.memory_limit_bytes
    t = res.trials
    cal = memory.calibration(t, "cuda" if res.on_gpu() else "cpu")
    factor = cal.factor if cal else 1.0
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
            ladder = oom_ladder(knobs, res.vocab_size, limit, factor)
        case = OomCase(i, t.at[i, "outcome"], knobs, float(t.at[i, "tokens_per_iter"]),
                       float(t.at[i, "peak_mem_bytes"]), float(est[i]), ladder)
        if ladder:
            case.combined = oom_combined(knobs, res.vocab_size, limit, ladder, factor)
        if np.isnan(case.tokens_per_iter) and complete:
            case.tokens_per_iter = float(knobs["batch_size"] * knobs["block_size"]
                                         * knobs["gradient_accumulation_steps"])
        rescue = t.index[t["rescue_of"] == i]
        if len(rescue):
            r = rescue[0]
            case.rescued_by, case.rescue_outcome = r, t.at[r, "outcome"]
            case.rescue_val_loss = float(t.at[r, "best_val_loss"])
        cases.append(case)
    return OomFinding(cases, float(limit) if limit else None, cal,
                      oom_lead(cases, res.vocab_size, factor))


def oom_lead(cases: list[OomCase], vocab: int | None, factor: float) -> OomLead | None:
    """The case the section opens with: the first that really ran out of memory (measured),
    else the biggest predicted one; what most of its memory is; the first remedy that fits."""
    with_ladder = [c for c in cases if c.ladder]
    case = next((c for c in with_ladder if c.outcome == OOM), with_ladder[0] if with_ladder else None)
    part = memory.biggest_part(case.knobs, vocab) if case else None
    if case is None or part is None:
        return None
    need = (case.est_mem_bytes * factor if np.isfinite(case.est_mem_bytes)
            else case.peak_mem_bytes)  # a measured peak needs no scaling
    remedy = next((r for r in case.ladder if r.applicable and r.fits), None)
    if remedy is None and case.combined is not None and case.combined.fits:
        remedy = case.combined
    return OomLead(case, part[0], part[1], need, remedy)


def oom_ladder(knobs: dict[str, Any], vocab: int | None, limit: float | None,
               factor: float = 1.0) -> list[Remedy]:
    """The guide's five OOM remedies, each applied alone to `knobs`, with the memory it needs
    (the estimate) and whether that fits once scaled by the measured `factor`."""
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
                          fits=memory.fits(mem, limit, factor),
                          applicable=bool(changes)))
    return out


def oom_combined(knobs: dict[str, Any], vocab: int | None, limit: float | None,
                 ladder: list[Remedy], factor: float = 1.0) -> Remedy | None:
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
        if memory.fits(mem, limit, factor):
            return Remedy("combined", changes, cur["batch_size"] * cur["block_size"]
                          * cur["gradient_accumulation_steps"], mem, True)
    return Remedy("combined", changes, None, memory.need_bytes(cur, vocab), False)
