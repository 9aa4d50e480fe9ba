"""build_report: the pure core. Tables in, a Report (markdown, PNGs, files, findings) out."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from tune_gpt.report import figures as fig
from tune_gpt.report import fmt
from tune_gpt.report.diagnose import (diagnose_divergence, diagnose_oom, diagnose_overfitting,
                                      diagnose_slowness, top_ids)
from tune_gpt.report.effects import knob_effects
from tune_gpt.report.export import best_config_yaml, nanogpt_config, next_space
from tune_gpt.report.findings import EffectsFinding, Findings, NextStep, Report
from tune_gpt.report.i18n import translator
from tune_gpt.report.render import render
from tune_gpt.report.results import Results, at_budget, prepare, ranked
from tune_gpt.report.rules import CURVES_TOP
from tune_gpt.report.stats import pareto_front
from tune_gpt.report.summary import leaderboard, summarize
from tune_gpt.trial import DIVERGED, STOPPED_EARLY, SearchMeta


def build_report(trials: pd.DataFrame, curves: pd.DataFrame,
                 meta: SearchMeta | Mapping[str, Any] | None, lang: str = "en",
                 samples: Mapping[str, Any] | None = None) -> Report:
    """Diagnose a finished search and render its report. No file I/O.

    trials: one row per trial; curves: one row per evaluation; meta: the search's settings,
    a SearchMeta or the dict of a meta.json (see README "Report inputs"); trials are ranked
    by its metric. lang: "en" or "zh". samples: the content of results/samples.json (the best
    trials' text, search/samples.py), or None when the search recorded none."""
    translator(lang)  # an unknown language fails before any work
    res = prepare(trials, curves, meta)
    summary = summarize(res)
    effects = knob_effects(res)
    diverge = diagnose_divergence(res)
    unstable = {c.trial_id for c in diverge.cases if c.reason != "flat"}
    overfit = diagnose_overfitting(res, unstable)
    slow = diagnose_slowness(res)
    top, budget = top_ids(res)
    space, space_yaml = next_space(res, top, budget)
    found = Findings(summary=summary, leaderboard=leaderboard(res, effects.budget),
                     oom=diagnose_oom(res), slow=slow, overfit=overfit, diverge=diverge,
                     effects=effects, next=NextStep(summary.best_config, summary.best_trial, [],
                                                    space, top),
                     confirm=res.meta.confirm, noise=res.noise,
                     samples=dict(samples) if isinstance(samples, Mapping) else None)
    found.next.notes = _notes(found)
    fig_lang = fig.figure_language(lang)
    figures = make_figures(res, found, fig_lang)
    md = render(res, found, lang, list(figures), figures_lang=fig_lang)
    files = {
        "best_config.yaml": best_config_yaml(res, summary.best_trial, summary.best_config),
        "best_config_nanogpt.py": nanogpt_config(res, summary.best_trial, summary.best_config),
        "next_space.yaml": space_yaml,
    }
    return Report(md, figures, files, found, res.name)


def _notes(f: Findings) -> list[tuple[str, dict[str, Any]]]:
    """Advice lines under the recommended config, from what the sections found."""
    best = f.summary.best_trial
    notes: list[tuple[str, dict[str, Any]]] = []
    if best is None:
        return notes
    for c in f.overfit.cases:
        if c.trial_id == best and c.kind == "rising":
            notes.append(("nx.overfit", {"iter": fmt.count(c.start_iter)}))
    lr = f.diverge.good_lr or f.diverge.safe_lr
    if lr:
        notes.append(("nx.lr", {"lo": fmt.lr(lr[0]), "hi": fmt.lr(lr[1])}))
    if f.effects.importances:
        knob, imp = next(iter(f.effects.importances.items()))
        key = "nx.top" if f.effects.importance_source == "meta" else "nx.top.rho"
        notes.append((key, {"knob": knob, "imp": f"{imp:.2f}"}))
    T = translator("en")
    for r in f.slow.rows:
        if r.trial_id == best and r.flags:
            notes.append(("nx.slow", {"flags": ", ".join(T(f"slow.flag.{x}") for x in r.flags)}))
    return notes


def make_figures(res: Results, f: Findings, lang: str) -> dict[str, bytes]:
    """Only figures with something to show are made."""
    out: dict[str, bytes] = {}
    order = [i for i in ranked(res) if res.trials.at[i, "outcome"] != DIVERGED]
    stopped = {i for i in res.trials.index if res.trials.at[i, "outcome"] == STOPPED_EARLY}
    shown = [i for i in order if i not in stopped][:CURVES_TOP] + [i for i in order if i in stopped][:10]
    curves = {i: res.curve(i) for i in shown if np.isfinite(res.curve(i)["val_loss"]).any()}
    if curves:
        out["curves.png"] = fig.curves_png(curves, stopped, res.meta.scheduler, lang)
    fx: EffectsFinding = f.effects
    if fx.importances:
        out["importances.png"] = fig.importances_png(fx.importances, fx.importance_source != "meta", lang)
    at = at_budget(res, fx.ids, fx.budget)
    if len(at):
        points = pd.DataFrame({"tokens_per_s": res.trials.loc[at.index, "tokens_per_s"],
                               "val_loss": at["val_loss"]})
        out["pareto.png"] = fig.pareto_png(points, pareto_front(points["tokens_per_s"], points["val_loss"]),
                                           fx.budget, lang)
    knobs = res.tuned_knobs()
    if len(at) >= 2 and knobs:
        logs = {"learning_rate", "min_lr"} | {k for k, s in res.params.items()
                                             if isinstance(s, dict) and ("loguniform" in s or s.get("log"))}
        out["parallel.png"] = fig.parallel_png(res.trials.loc[at.index, knobs], logs, at["val_loss"],
                                               fx.budget, lang)
    return out
