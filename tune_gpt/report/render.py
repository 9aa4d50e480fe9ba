"""Findings -> markdown, section by section, every sentence from the catalogue (i18n)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tune_gpt.report import fmt
from tune_gpt.report.effects import disagreements
from tune_gpt.report.export import flow, py
from tune_gpt.report.findings import Effect, Findings, Leaderboard, Noise
from tune_gpt.report.i18n import catalogue, translator
from tune_gpt.report.md import Tr, table
from tune_gpt.report.render_resources import oom_section, slow_section
from tune_gpt.report.render_samples import loss_references, samples_section
from tune_gpt.report.render_training import data_line, diverge_section, overfit_section
from tune_gpt.report.results import Results
from tune_gpt.judge import REFERENCE_SEED_NOISE
from tune_gpt.report.rules import EFFECT_MIN_LOSS, EFFECT_MIN_N, EFFECT_MIN_RATIO, EFFECT_MIN_RHO


def render(res: Results, f: Findings, lang: str, figures: list[str],
           figures_lang: str | None = None) -> str:
    T = translator(lang)
    parts = [f"# {T('title', name=res.name)}"]
    if figures and figures_lang not in (None, lang):  # zh without a CJK font: say why
        parts.append(f"> {T('fig.nofont')}")
    parts += [_intro(res, T), data_line(res, T)]
    parts += _final(res.meta.final, res.meta.metric, T)
    parts += _summary(f, T, loss_references(res, f, T), explored=bool(res.meta.final))
    parts += _leaderboard(f, T, figures)
    parts += samples_section(f, T)
    parts += oom_section(f, T)
    parts += slow_section(f, T, figures)
    parts += overfit_section(f, T, res.meta.data_doctor)
    parts += diverge_section(f, T)
    parts += _effects(f, T, figures, catalogue(lang))
    parts += _next(res, f, T)
    return "\n\n".join(p for p in parts if p) + "\n"


def _intro(res: Results, T: Tr) -> str:
    m = res.meta
    s = m.scheduler
    if s.type == "asha":
        sched = T("sched.asha", time_attr=s.time_attr or "?", grace=fmt.tokens(s.first_rung()),
                  rf=s.reduction_factor, max_t=fmt.tokens(s.max_t))
    else:
        sched = T("sched.none")
    samp = str(m.sampler)
    return T("intro", name=res.name, data=m.data or "?", profile=m.profile or "?",
             device=m.device or "?", started=m.started_at or "?", mode=m.mode, metric=m.metric,
             sampler=samp or "?", scheduler=sched)


def _final(fin: dict[str, Any] | None, metric: str, T: Tr) -> list[str]:
    """The final phase first (`final:`): the model handed back, what each phase cost, and
    the first trial (the prior) at the same compute."""
    if not fin or fin.get("best_val_loss") is None:
        return []
    units = tuple(T("units.time").split("|"))
    ex = fin["explore"]
    pred = fin.get("predicted")
    at = fin.get("best_tokens") or fin["tokens"]
    out = [f"## {T('final.head')}",
           T("final.lead.nothing" if fin.get("trained_nothing") else "final.lead",
             loss=fmt.loss(fin["best_val_loss"]), metric=metric,
             tokens=fmt.tokens(at), of=fin["of"],
             pred=fmt.loss(pred) if pred is not None else T("final.pred.none"))]
    if fin.get("checkpoint"):
        out[-1] += " " + T("final.use", ckpt=fin["checkpoint"])
    out += [T("final.cost", ew=fmt.seconds(ex["wall_s"], units), et=fmt.tokens(ex["tokens"]),
             ef=f"{ex['flops']:.3g}", n=ex["trials"], fw=fmt.seconds(fin["wall_s"], units),
             ft=fmt.tokens(fin["tokens"] - (fin.get("start_tokens") or 0)),
             ff=f"{fin['flops']:.3g}",
             share=fmt.pct(ex["flops"] / fin["flops_total"]) if fin.get("flops_total")
             else fmt.DASH)]
    c = fin.get("confirm") or {}
    if c.get("runs"):
        out[-1] += " " + T("final.cost.confirm", n=c["runs"], t=fmt.tokens(c["tokens"]),
                           f=f"{c['flops']:.3g}")
    p = fin.get("prior")
    if p:
        args = dict(trial=p["trial_id"], measured=fmt.loss(p["measured"]),
                    mtokens=fmt.tokens(p["measured_tokens"]),
                    tokens=fmt.tokens(p["tokens_at_budget"]))
        if p.get("predicted") is not None:
            out.append(T("final.prior", pred=fmt.loss(p["predicted"]),
                         diff=fmt.signed(fin["best_val_loss"] - p["predicted"]), **args))
            if pred is not None:  # how far this very fit missed, measured
                out[-1] += " " + T("final.prior.bias", fpred=fmt.loss(pred),
                                   floss=fmt.loss(fin["best_val_loss"]))
        else:
            out.append(T("final.prior.none", why=p.get("why") or "?", **args))
    if fin.get("lines"):
        out.append(T("final.why") + "\n" + "\n".join(f"- {x}" for x in fin["lines"]))
    return out


def _summary(f: Findings, T: Tr, references: list[str], explored: bool = False) -> list[str]:
    """The trials' summary; after a final phase (`explored`) its best is the best explored
    trial, named so: the model to use is the final one, above."""
    s = f.summary
    out = [f"## {T('s1')}"]
    if s.best_trial:
        out.append(T("best.explored" if explored else "best", metric=s.metric,
                     loss=fmt.loss(s.best_value), trial=s.best_trial,
                     outcome=s.best_outcome, tokens=fmt.tokens(s.best_tokens),
                     iters=fmt.count(s.best_iters)))
        out += references  # is that loss good?
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
               T("lb.at", budget=b, metric=lb.metric), T("lb.delta", metric=lb.metric),
               T("lb.tokens"), T("lb.speed")]
    rows = [[i + 1, f"`{r['trial_id']}`", r["outcome"], *[fmt.value(k, r[k]) for k in lb.knobs],
             fmt.loss(r["best"]), fmt.loss(r["at_budget"]), _delta(r["delta"], r["within"], i),
             fmt.tokens(r["tokens"]), fmt.speed(r["tokens_per_s"])]
            for i, (_, r) in enumerate(lb.table.iterrows())]
    out.append(table(headers, rows))
    if lb.noise is not None:
        out += _noise(lb.noise, lb.metric, T)
        out += _lead(lb, f.confirm, T)
    stopped = int((lb.table["outcome"] == "stopped_early").sum())
    if stopped:  # ASHA read them mid-schedule: a rung is a biased proxy of the finished run
        out.append(T("lb.midschedule", n=stopped))
    if "curves.png" in figures:
        out.append(f"![val_loss curves](curves.png)\n\n*{T('fig.curves.caption')}*")
    return out + _confirm(f.confirm, T)


def _delta(d: float, within: bool, i: int) -> str:
    """A trial's best value against the first's: "+0.052", or "≈ +0.012" within the noise."""
    if i == 0 or not fmt.ok(d):
        return fmt.DASH
    return f"≈ {fmt.signed(d)}" if within else fmt.signed(d)


def _noise(n: Noise, metric: str, T: Tr) -> list[str]:
    """One paragraph: how much a run's loss moves by chance, where that figure comes from, and
    what gap between two runs is therefore real."""
    ref = REFERENCE_SEED_NOISE
    if n.source == "confirm":
        source = T("noise.src.confirm", n=n.n)
    elif n.source == "curves":
        source = T("noise.src.curves", trials=n.curves, n=n.n, data=ref.data)
    else:
        source = T("noise.src.reference", data=ref.data, recipe=ref.recipe, file=ref.source)
    seed = "" if n.source == "confirm" else T("noise.seed")
    return [T("noise.line", metric=metric, noise=f"{n.per_run:.3f}", source=source,
              pair=f"{n.pair:.3f}", z=f"{n.z:.2f}", dof=n.dof, seed=seed)]


def _lead(lb: Leaderboard, confirm: dict[str, Any] | None, T: Tr) -> list[str]:
    """The best trial against the runner-up, at their best and at the equal budget, each
    difference marked beyond the noise or ≈."""
    t, n = lb.table, lb.noise
    if len(t) < 2 or not fmt.ok(t.at[1, "delta"]):
        return []
    a, b = t.iloc[0], t.iloc[1]
    verdict = (lambda d: T("noise.within") if not n.real(d) else T("noise.real"))
    at = ""
    if fmt.ok(a["at_budget"]) and fmt.ok(b["at_budget"]):
        diff = a["at_budget"] - b["at_budget"]
        at = T("lb.lead.at", budget=fmt.tokens(lb.budget), a_at=fmt.loss(a["at_budget"]),
               b_at=fmt.loss(b["at_budget"]), diff=fmt.signed(diff), verdict=verdict(diff))
    # the confirm runs below give the verdict on new seeds: no advice here then
    same = T("lb.lead.same") if not n.real(b["delta"]) and not (confirm or {}).get("configs") else ""
    return [T("lb.lead", a=a["trial_id"], b=b["trial_id"], gap=fmt.loss(b["delta"]),
              metric=lb.metric, verdict=verdict(b["delta"]), at=at, same=same)]


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
                     noise=f"{c['noise']:.3f}", z=f"{c.get('t', float('nan')):.2f}",
                     dof=c.get("dof", "?")))
    first = c["configs"][0]["trial_id"]
    if c.get("winner") and c["winner"] != first:  # within the noise, the change is no verdict
        key = "confirm.changed.noise" if real is False else "confirm.changed"
        out.append(T(key, winner=c["winner"], best=first))
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
        noise = f.noise.per_run if f.noise is not None else EFFECT_MIN_LOSS
        out.append(T("fx.intro", budget=fmt.tokens(fx.budget), n=len(fx.ids), rho=EFFECT_MIN_RHO,
                     minn=EFFECT_MIN_N, loss=f"{noise:.3f}", ratio=fmt.pct(EFFECT_MIN_RATIO)))
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
    return out + _full_run(res, T) + _transfer(res, n.trial_id, T)


FULL_RUN_FACTOR = 8  # "your full run": this many times the longest run the search measured


def _full_run(res: Results, T: Tr) -> list[str]:
    """For your full run: `tune-gpt plan` at FULL_RUN_FACTOR times the longest run measured
    (a trial, or the final run, which `plan` takes as evidence too)."""
    from tune_gpt.errors import UserError
    from tune_gpt.horizon import MAX_EXTRAPOLATION
    from tune_gpt.plan import plan_from

    longest = float(res.trials["tokens"].max()) if len(res.trials) else 0.0
    fin = res.meta.final or {}
    ran = float(fin.get("tokens") or 0.0) if fin.get("curve") and \
        not fin.get("trained_nothing") else 0.0
    what = T("full.what.final") if ran > longest else T("full.what.trial")
    longest = max(longest, ran)
    if not longest or not len(res.curves):
        return []
    tokens = int(longest * FULL_RUN_FACTOR)
    try:
        p = plan_from(res.trials, res.curves, res.meta, tokens)
    except (UserError, KeyError, ValueError):
        return []
    return [T("full.lead", name=res.name, n=tokens, factor=FULL_RUN_FACTOR,
              trial=p.trial_id, lr=f"{p.learning_rate:.3g}", lr_from=f"{p.lr_from:.3g}",
              iters=fmt.count(p.config["max_iters"]), pred=fmt.loss(p.predicted),
              lo=fmt.loss(p.interval[0]), hi=fmt.loss(p.interval[1]),
              reach=fmt.tokens(longest * MAX_EXTRAPOLATION), longest=fmt.tokens(longest),
              what=what)]


def _transfer(res: Results, trial_id: str | None, T: Tr) -> list[str]:
    """How to take the best trial to a wider model (`tune-gpt transfer`); a µP search says
    that this is what it was for."""
    t = res.trials
    if not trial_id or trial_id not in t.index:
        return []
    from pandas import notna

    row = t.loc[trial_id]
    known = lambda k: k in t.columns and bool(notna(row[k]))  # noqa: E731
    if not (known("n_embd") and known("n_head")):
        return []  # a table without the model's shape (hand-made, or from an old search)
    width, heads = int(row["n_embd"]), int(row["n_head"])
    mup = known("parametrization") and row["parametrization"] == "mup"
    base = int(row["mup_base_width"]) if mup and known("mup_base_width") else width
    target = 4 * width
    cmd = f"tune-gpt transfer reports/{res.name} --n_embd={target} --n_head={heads}"
    return [T("nx.transfer.mup" if mup else "nx.transfer.sp", base=base, width=width, cmd=cmd)]
