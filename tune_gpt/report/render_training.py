"""Report sections 5 and 6: overfitting and divergence (and the data doctor's line)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tune_gpt.data.doctor import MIN_VAL_BATCHES, DataReport
from tune_gpt.report import fmt
from tune_gpt.report.findings import Evidence, Findings
from tune_gpt.report.md import Tr, ids, table
from tune_gpt.report.results import Results
from tune_gpt.report.rules import EXPLODE_RATIO, FLAT_FRACTION, OVERFIT_GAP_RATIO, OVERFIT_MIN_RISE


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
    if not o.cases:
        out.append(T("of.none", rise=f"{OVERFIT_MIN_RISE:g}", gap=fmt.pct(OVERFIT_GAP_RATIO)))
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
                             t0=fmt.loss(c.train_at_min), t1=fmt.loss(c.train_last)))
            else:
                out.append(T("of.gap", trial=c.trial_id, vlast=fmt.loss(c.val_last),
                             t1=fmt.loss(c.train_last),
                             iter=fmt.count(c.start_iter), ratio=fmt.pct(c.gap / c.train_last)))
    n = max((e.n for e in o.remedies), default=0)
    head = T("of.remedies", budget=fmt.tokens(o.budget), n=n) if o.budget else T("of.remedies.nobudget")
    lines = [head] + [f"{i}. " + T(f"of.{e.key}", evidence=_evidence(e, T)) if e.key != "more_data"
                      else f"{i}. " + T("of.more_data") for i, e in enumerate(o.remedies, 1)]
    out.append("\n".join(lines))
    return out


def _evidence(e: Evidence, T: Tr) -> str:
    if e.status in ("not_tried", "too_few"):
        return T(f"ev.{e.status}", knob=e.knob, n=e.n)
    return T(f"ev.{e.status}", knob=e.knob, hv=e.helped_value, ov=e.others_value, hids=ids(e.helped),
             oids=ids(e.others), hgap=fmt.loss(e.helped_gap), ogap=fmt.loss(e.others_gap),
             rho=f"{e.rho:+.2f}", n=e.n)


def diverge_section(f: Findings, T: Tr) -> list[str]:
    d = f.diverge
    out = [f"## {T('s6')}"]
    if not d.cases:
        out.append(T("dv.none"))
    else:
        what = {"diverged": T("dv.diverged"), "nan": T("dv.nan"),
                "exploding": T("dv.exploding", ratio=fmt.pct(EXPLODE_RATIO - 1)),
                "flat": T("dv.flat", frac=fmt.pct(FLAT_FRACTION), lnv=fmt.loss(d.ln_vocab))}
        cases = sorted(d.cases, key=lambda c: -np.nan_to_num(c.learning_rate))
        out.append(table([T("lb.trial"), T("dv.col.lr"), T("dv.col.what"), T("dv.col.iter"),
                          T("dv.col.loss")],
                         [[f"`{c.trial_id}`", fmt.lr(c.learning_rate), what[c.reason], fmt.count(c.iter),
                           fmt.loss(c.loss)] for c in cases]))
    if d.safe_lr:
        out.append(T("dv.safe", lo=fmt.lr(d.safe_lr[0]), hi=fmt.lr(d.safe_lr[1]), n=d.n_safe))
    else:
        out.append(T("dv.safe.none"))
    if d.good_lr:
        out.append(T("dv.good", lo=fmt.lr(d.good_lr[0]), hi=fmt.lr(d.good_lr[1])))
    out.append(T("dv.guide"))
    return out
