"""Findings -> markdown, section by section, every sentence from the catalogue (i18n)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tune_gpt.report import fmt
from tune_gpt.report.effects import disagreements
from tune_gpt.report.export import flow, py
from tune_gpt.report.findings import Effect, Evidence, Findings, Pair, Remedy
from tune_gpt.report.rules import REAL_Z
from tune_gpt.report.i18n import catalogue, translator
from tune_gpt.report.results import Results
from tune_gpt.report.rules import (COMPILE_SPEEDUP, EFFECT_MIN_LOSS, EFFECT_MIN_N, EFFECT_MIN_RATIO,
                                   EFFECT_MIN_RHO, EVAL_SHARE_MAX, EXPLODE_RATIO, FLAT_FRACTION,
                                   OVERFIT_GAP_RATIO, OVERFIT_MIN_RISE, QUIET_LOG_INTERVAL,
                                   SLOW_FRACTION, SMALL_BATCH_MAX)

from tune_gpt.data.doctor import MIN_VAL_BATCHES, DataReport

Tr = Callable[..., str]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def changes(ch: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {fmt.value(k, a)}→{fmt.value(k, b)}" for k, (a, b) in ch.items())


def ids(xs: list[str], n: int = 3) -> str:
    shown = ", ".join(f"`{x}`" for x in xs[:n])
    return shown + (f" +{len(xs) - n}" if len(xs) > n else "")


def render(res: Results, f: Findings, lang: str, figures: list[str]) -> str:
    T = translator(lang)
    parts = [f"# {T('title', name=res.name)}", _intro(res, T), _data(res, T)]
    parts += _summary(f, T)
    parts += _leaderboard(f, T, figures)
    parts += _oom(f, T)
    parts += _slow(f, T, figures)
    parts += _overfit(f, T, res.meta.data_doctor)
    parts += _diverge(f, T)
    parts += _effects(f, T, figures, catalogue(lang))
    parts += _next(res, f, T)
    return "\n\n".join(p for p in parts if p) + "\n"


def _intro(res: Results, T: Tr) -> str:
    m = res.meta
    s = m.scheduler if isinstance(m.scheduler, dict) else {}
    if s.get("type") == "asha":
        sched = T("sched.asha", time_attr=s.get("time_attr", "?"), grace=fmt.tokens(s.get("grace_period")),
                  rf=s.get("reduction_factor", "?"), max_t=fmt.tokens(s.get("max_t")))
    else:
        sched = T("sched.none")
    sampler = m.sampler
    samp = ", ".join(f"{k}={v}" for k, v in sampler.items()) if isinstance(sampler, dict) else str(sampler)
    return T("intro", name=res.name, data=m.data or "?", profile=m.profile or "?",
             device=m.device or "?", started=m.started_at or "?", mode=m.mode, metric=m.metric,
             sampler=samp or "?", scheduler=sched)


def _summary(f: Findings, T: Tr) -> list[str]:
    s = f.summary
    out = [f"## {T('s1')}"]
    if s.best_trial:
        out.append(T("best", metric=s.metric, loss=fmt.loss(s.best_value), trial=s.best_trial,
                     outcome=s.best_outcome, tokens=fmt.tokens(s.best_tokens),
                     iters=fmt.count(s.best_iters)))
    else:
        out.append(T("best.none", metric=s.metric))
    out.append(T("budget", trials=s.n_trials, iters=fmt.count(s.iters), tokens=fmt.tokens(s.tokens),
                 wall=fmt.seconds(s.wall_s, tuple(T("units.time").split("|")))))
    out.append(T("outcomes", list=" · ".join(f"{k} {v}" for k, v in s.by_outcome.items()) or "—"))
    if s.errors:
        out.append(T("errors") + "\n" + "\n".join(f"- `{i}`: {e}" for i, e in s.errors[:10]))
    if s.best_config:
        body = "\n".join(f"{k}: {flow(py(v))}" for k, v in s.best_config.items())
        out.append(T("best.config") + "\n\n```yaml\n" + body + "\n```")
    return out


def _leaderboard(f: Findings, T: Tr, figures: list[str]) -> list[str]:
    lb = f.leaderboard
    out = [f"## {T('s2')}"]
    if lb.table.empty:
        return out + [T("lb.none", metric=lb.metric)]
    b = fmt.tokens(lb.budget)
    out.append(T("lb.intro", n=len(lb.table), budget=b, metric=lb.metric))
    headers = ["#", T("lb.trial"), T("lb.outcome"), *lb.knobs, T("lb.best", metric=lb.metric),
               T("lb.at", budget=b, metric=lb.metric), T("lb.tokens"), T("lb.speed")]
    rows = [[i + 1, f"`{r['trial_id']}`", r["outcome"], *[fmt.value(k, r[k]) for k in lb.knobs],
             fmt.loss(r["best"]), fmt.loss(r["at_budget"]), fmt.tokens(r["tokens"]),
             fmt.speed(r["tokens_per_s"])] for i, (_, r) in enumerate(lb.table.iterrows())]
    out.append(table(headers, rows))
    stopped = int((lb.table["outcome"] == "stopped_early").sum())
    if stopped:  # ASHA read them mid-schedule: a rung is a biased proxy of the finished run
        out.append(T("lb.midschedule", n=stopped))
    if "curves.png" in figures:
        out.append(f"![val_loss curves](curves.png)\n\n*{T('fig.curves.caption')}*")
    return out + _confirm(f.confirm, T)


def _confirm(c: dict[str, Any] | None, T: Tr) -> list[str]:
    """The confirm runs: each config's mean ± std on new seeds, and the verdict."""
    if not c or not c.get("configs"):
        return []
    m = c["metric"]
    out = [T("confirm.head", k=c["top_k"], seeds=c["seeds"])]
    rows = [[f"`{x['trial_id']}`", fmt.loss(x["search_value"]),
             fmt.loss(x["mean"]) + (f" ± {x['std']:.3f}" if fmt.ok(x["std"]) else ""), x["n"]]
            for x in c["configs"]]
    out.append(table([T("confirm.trial"), T("confirm.search", metric=m),
                      T("confirm.mean", metric=m), T("confirm.n")], rows))
    real = c.get("winner_is_real")
    if real is None:
        out.append(T("confirm.unknown"))
    else:
        out.append(T("confirm.real" if real else "confirm.noise", winner=c["winner"],
                     runner=c["runner_up"], gap=f"{c['gap']:.3f}", se=f"{c['gap_se']:.3f}",
                     noise=f"{c['noise']:.3f}", z=f"{REAL_Z:g}"))
    first = c["configs"][0]["trial_id"]
    if c.get("winner") and c["winner"] != first:
        out.append(T("confirm.changed", winner=c["winner"], best=first))
    return out


def _oom(f: Findings, T: Tr) -> list[str]:
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


def _slow(f: Findings, T: Tr, figures: list[str]) -> list[str]:
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


def _epochs(e: float) -> str:
    return f"{e:.2f}" if e < 1 else f"{e:.1f}" if e < 10 else f"{e:,.0f}"


def _data(res: Results, T: Tr) -> str:
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


def _overfit(f: Findings, T: Tr, data: dict[str, Any] | None = None) -> list[str]:
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


def _diverge(f: Findings, T: Tr) -> list[str]:
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


def _cell(e: Effect | None, T: Tr, ratio: bool) -> str:
    if e is None or e.n == 0:
        return fmt.DASH
    if e.direction == "constant":
        return T("fx.constant")
    arrow = T(f"fx.dir.{e.direction}")
    if e.direction == "few":
        return f"{arrow} (n {e.n})"
    if ratio:
        size = f"×{e.high_median / e.low_median:.2f}" if fmt.ok(e.high_median) and fmt.ok(e.low_median) \
            and e.low_median > 0 else ""
    else:
        size = fmt.signed(e.diff)
    rho = f"ρ {e.rho:+.2f}" if np.isfinite(e.rho) else "ρ —"
    return f"{arrow} {size} ({rho}, n {e.n})".replace("  ", " ")


def _effects(f: Findings, T: Tr, figures: list[str], words: dict[str, str]) -> list[str]:
    fx = f.effects
    out = [f"## {T('s7')}"]
    knobs = list(dict.fromkeys(e.knob for e in fx.effects))
    if not fx.ids or not knobs:
        out.append(T("fx.none"))
    else:
        out.append(T("fx.intro", budget=fmt.tokens(fx.budget), n=len(fx.ids), rho=EFFECT_MIN_RHO,
                     minn=EFFECT_MIN_N, loss=EFFECT_MIN_LOSS, ratio=fmt.pct(EFFECT_MIN_RATIO)))
        rows = [[f"`{k}`", _cell(fx.get(k, "val_loss"), T, False), _cell(fx.get(k, "tokens_per_s"), T, True),
                 _cell(fx.get(k, "peak_mem"), T, True), _cell(fx.get(k, "gap"), T, False),
                 f"{fx.importances[k]:.2f}" if k in fx.importances else fmt.DASH,
                 T(f"guide.{k}") if f"guide.{k}" in words else ""] for k in knobs]
        out.append(table([T("fx.col.knob"), T("fx.col.val"), T("fx.col.speed"), T("fx.col.mem"),
                          T("fx.col.gap"), T("fx.col.imp"), T("fx.col.guide")], rows))
        if fx.memory_source == "estimated":
            out.append(T("fx.mem.estimated"))
        for eq, naive in disagreements(fx):
            out.append(T("fx.naive", knob=eq.knob, naive=T(f"fx.word.{naive.direction}"),
                         eq=T(f"fx.word.{eq.direction}")))
    if "parallel.png" in figures:
        out.append("![parallel coordinates](parallel.png)")
    out.append(T("fx.imp.meta") if fx.importance_source == "meta" else T("fx.imp.spearman"))
    if "importances.png" in figures:
        out.append("![importances](importances.png)")
    return out


def _next(res: Results, f: Findings, T: Tr) -> list[str]:
    n = f.next
    out = [f"## {T('s8')}"]
    out.append(T("nx.rec", trial=n.trial_id) if n.trial_id else T("nx.rec.none"))
    if n.notes:
        out.append("\n".join(f"- {T(key, **vals)}" for key, vals in n.notes))
    rows = []
    for k, new in n.next_space.get("params", {}).items():
        rows.append([f"`{k}`", f"`{flow(res.params.get(k))}`", f"`{flow(new)}`"])
    out.append(T("nx.files") + "\n\n" + "\n".join(
        ["- " + T("nx.file.best"), "- " + T("nx.file.nano"), "- " + T("nx.file.space", n=len(n.top_ids))]))
    if rows:
        out.append(table([T("nx.col.knob"), T("nx.col.was"), T("nx.col.next")], rows))
    return out
