"""Report sections 5 and 6: overfitting and divergence (and the data doctor's line)."""

from __future__ import annotations

import math

from typing import Any

import numpy as np

from tune_gpt.data.doctor import MIN_VAL_BATCHES, DataReport
from tune_gpt.report import fmt
from tune_gpt.report.findings import Evidence, Findings, OverfitCase
from tune_gpt.report.md import Tr, ids, table
from tune_gpt.report.results import Results
from tune_gpt.report.rules import (CONVERGE_RATIO, DATA_GAP_FACTOR, EXPLODE_RATIO, FLAT_FRACTION,
                                   OVERFIT_GAP_RATIO, OVERFIT_MIN_RISE, OVERFIT_RISE_NOISES)


def _epochs(e: float) -> str:
    return f"{e:.2f}" if e < 1 else f"{e:.1f}" if e < 10 else f"{e:,.0f}"


def data_line(res: Results, T: Tr) -> str:
    """The data doctor's figures (meta.data_doctor): what the trials trained on."""
    if not res.meta.data_doctor:
        return ""
    d = DataReport.from_dict(res.meta.data_doctor)
    lines = [T("data.line", tokenizer=d.tokenizer, vocab=fmt.count(d.vocab_size),
               train=fmt.tokens(d.n_train), val=fmt.tokens(d.n_val),
               ln=fmt.loss(d.ln_vocab), uni=fmt.loss(d.unigram_entropy))]
    if d.epochs is not None:
        lines.append(T("data.epochs", tokens=fmt.tokens(d.tokens_per_trial),
                       epochs=_epochs(d.epochs)))
    if d.small_val:
        lines.append(T("data.small_val", windows=fmt.count(d.val_windows),
                       block=d.block_size, n=MIN_VAL_BATCHES, batch=d.batch_size))
    return " ".join(lines)


def overfit_section(f: Findings, T: Tr, data: dict[str, Any] | None = None) -> list[str]:
    o = f.overfit
    out = [f"## {T('s5')}"]
    d = DataReport.from_dict(data) if data else None
    if d is not None and d.many_epochs:
        out.append(T("of.epochs", tokens=fmt.tokens(d.tokens_per_trial),
                     epochs=_epochs(d.epochs), corpus=fmt.tokens(d.n_train)))
    limit = fmt.pct(OVERFIT_GAP_RATIO)
    wobble = f.noise.eval if f.noise is not None else 0.0
    rise = max(OVERFIT_MIN_RISE, OVERFIT_RISE_NOISES * wobble)  # the rule overfit_case applies
    if not o.cases:
        out.append(T("of.none", rise=f"{rise:.3g}", factor=f"{DATA_GAP_FACTOR:g}", gap=limit))
    else:
        out.append(table([T("lb.trial"), T("of.col.kind"), T("of.col.start"), T("lb.tokens"),
                          T("of.col.valmin"), T("of.col.vallast"), T("of.col.train"), T("of.col.gap")],
                         [[f"`{c.trial_id}`", T(f"of.kind.{c.kind}"), fmt.count(c.start_iter),
                           fmt.tokens(c.start_tokens), fmt.loss(c.val_min), fmt.loss(c.val_last),
                           f"{fmt.loss(c.train_at_min)}→{fmt.loss(c.train_last)}", fmt.loss(c.gap)]
                          for c in o.cases]))
        for c in o.cases[:5]:
            if c.kind == "rising":
                out.append(T("of.rising", trial=c.trial_id, vmin=fmt.loss(c.val_min),
                             iter=fmt.count(c.start_iter),
                             tokens=fmt.tokens(c.start_tokens), vlast=fmt.loss(c.val_last),
                             up=fmt.loss(c.val_last - c.val_min), min=fmt.loss(c.rise),
                             t0=fmt.loss(c.train_at_min), t1=fmt.loss(c.train_last)))
            else:
                out.append(T("of.gap", trial=c.trial_id, vlast=fmt.loss(c.val_last),
                             t1=fmt.loss(c.train_last), iter=fmt.count(c.start_iter),
                             ratio=fmt.pct(c.gap / c.train_last), factor=f"{DATA_GAP_FACTOR:g}",
                             base=fmt.pct(c.data_gap, 1), seen=_seen(c, o.corpus_tokens, T)))
    if o.cases or o.healthy or o.data_gap_n:
        src = T("of.data_gap.trials", n=o.data_gap_n) if o.data_gap_n else T("of.data_gap.rule")
        out.append(T("of.data_gap", base=fmt.pct(o.data_gap, 1), src=src, factor=f"{DATA_GAP_FACTOR:g}",
                     floor=limit))
    for c in o.healthy[:5]:
        out.append(T("of.healthy.falling" if c.falling else "of.healthy.flat", trial=c.trial_id,
                     vlast=fmt.loss(c.val_last), t1=fmt.loss(c.train_last),
                     ratio=fmt.pct(c.gap / c.train_last), base=fmt.pct(o.data_gap, 1),
                     seen=_seen(c, o.corpus_tokens, T)))
    n = max((e.n for e in o.remedies), default=0)
    head = T("of.remedies", budget=fmt.tokens(o.budget), n=n) if o.budget else T("of.remedies.nobudget")
    lines = [head] + [f"{i}. " + T(f"of.{e.key}", evidence=_evidence(e, T)) if e.key != "more_data"
                      else f"{i}. " + T("of.more_data") for i, e in enumerate(o.remedies, 1)]
    out.append("\n".join(lines))
    return out


def _seen(c: OverfitCase, corpus: float | None, T: Tr) -> str:
    """" (1.2M tokens = 83 epochs of a 14,000-token corpus)" where the data doctor knows
    the corpus; "" otherwise."""
    if not corpus or c.epochs is None:
        return ""
    return T("of.seen", tokens=fmt.tokens(c.tokens), epochs=_epochs(c.epochs), corpus=fmt.tokens(corpus))


def _evidence(e: Evidence, T: Tr) -> str:
    if e.status in ("not_tried", "too_few"):
        return T(f"ev.{e.status}", knob=e.knob, n=e.n)
    values = dict(knob=e.knob, hv=e.helped_value, ov=e.others_value, hgap=fmt.loss(e.helped_gap),
                  ogap=fmt.loss(e.others_gap), rho=f"{e.rho:+.2f}", n=e.n)
    if e.status == "no_effect":  # too small a move, or ranks that disagree with it
        small = not abs(e.helped_gap - e.others_gap) >= e.min_gap
        why = T("ev.why.noise", min=fmt.loss(e.min_gap)) if small else T("ev.why.rho")
        return T("ev.no_effect", why=why, **values)
    return T(f"ev.{e.status}", hids=ids(e.helped), oids=ids(e.others), min=fmt.loss(e.min_gap),
             **values)


def diverge_section(f: Findings, T: Tr) -> list[str]:
    d, metric = f.diverge, f.summary.metric
    out = [f"## {T('s6')}"]
    if not d.cases and not d.too_high:
        out.append(T("dv.none"))
    else:
        what = {"diverged": T("dv.diverged"), "nan": T("dv.nan"),
                "exploding": T("dv.exploding", ratio=fmt.pct(EXPLODE_RATIO - 1)),
                "flat": T("dv.flat", frac=fmt.pct(FLAT_FRACTION), lnv=fmt.loss(d.ln_vocab))}
        rows = [(c, what[c.reason]) for c in d.cases]
        rows += [(c, T("dv.too_high.what", worse=fmt.signed(c.loss - d.best_loss))) for c in d.too_high]
        rows.sort(key=lambda r: -np.nan_to_num(r[0].learning_rate))
        out.append(table([T("lb.trial"), T("dv.col.lr"), T("dv.col.what"), T("dv.col.iter"),
                          T("dv.col.loss")],
                         [[f"`{c.trial_id}`", fmt.lr(c.learning_rate), w, fmt.count(c.iter),
                           fmt.loss(c.loss)] for c, w in rows]))
    margin = fmt.loss(d.margin)
    if d.too_high:
        worse = [c.loss - d.best_loss for c in d.too_high]
        why = (T(f"dv.margin.{d.margin_source}", z=f"{f.noise.z:.2f}") if d.margin_source != "rule"
               else T("dv.margin.rule", ratio=fmt.pct(CONVERGE_RATIO)))
        out.append(T("dv.too_high", lr=fmt.lr(d.too_high_lr), budget=fmt.tokens(d.budget),
                     ids=ids([c.trial_id for c in d.too_high]), metric=metric,
                     lo=fmt.loss(min(worse)), hi=fmt.loss(max(worse)), best=fmt.loss(d.best_loss),
                     margin=margin, why=why))
    if d.safe_lr:
        out.append(T("dv.safe", lo=fmt.lr(d.safe_lr[0]), hi=fmt.lr(d.safe_lr[1]), n=d.n_safe,
                     margin=fmt.loss(d.safe_margin), budget=fmt.tokens(d.safe_budget)))
    elif d.safe_budget is None and math.isfinite(d.safe_min_tokens) and d.safe_min_tokens > 0:
        out.append(T("dv.safe.early", tokens=fmt.tokens(d.safe_min_tokens)))
    else:
        out.append(T("dv.safe.none"))
    if d.good_lr:
        out.append(T("dv.good", lo=fmt.lr(d.good_lr[0]), hi=fmt.lr(d.good_lr[1])))
    out.append(T("dv.guide"))
    return out
