"""Markdown in both languages, the catalogue, the figures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from test_report_data import report_of, section

from tune_gpt.errors import UserError
from tune_gpt.report import build_report
from tune_gpt.report.i18n import translator

SECTIONS_EN = ["1. Summary", "2. Leaderboard", "3. Out of memory", "4. Training too slow",
               "5. Overfitting", "6. Divergence", "7. What each knob did", "8. Next step"]


def test_english_report_has_the_eight_sections_in_order():
    md = report_of("planted").markdown
    positions = [md.index(f"## {s}") for s in SECTIONS_EN]
    assert positions == sorted(positions)
    assert "**Best val_loss: 1.451** — trial `t_over`" in md
    assert "while exploring" not in md  # no final phase: the best trial is the result
    assert "Trials by outcome: completed 4 · stopped_early 7 · oom 1 · predicted_oom 1 · diverged 1" in md


def test_leaderboard_shows_only_knobs_that_differ():
    lb = report_of("planted").findings.leaderboard
    assert "batch_size" in lb.knobs and "learning_rate" in lb.knobs
    assert "weight_decay" not in lb.knobs and "beta2" not in lb.knobs  # the same everywhere
    assert "max_iters" not in lb.knobs  # derived from the token budget
    header = section(report_of("planted").markdown, 2).split("\n| #")[1].split("\n")[0]
    assert "weight_decay" not in header and "val_loss @ 4,096,000" in header


def test_chinese_report_uses_the_guides_terms():
    md = report_of("planted", "zh").markdown
    for term in ("显存", "过拟合", "梯度累积", "训练太慢", "学习率", "混合精度", "总结表格"):
        assert term in md, term
    assert "调优报告" in md and "Summary" not in md
    assert section(md, 3).count("装得下") >= 1


def test_unknown_language_is_a_user_error():
    with pytest.raises(UserError, match="--lang"):
        translator("fr")
    with pytest.raises(UserError):
        build_report(*__import__("test_report_data").clean_search(), lang="fr")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name", ["curves.png", "importances.png", "pareto.png", "parallel.png"])
def test_figures_are_real_pngs(name):
    figs = report_of("planted").figures
    w, h = png_size(figs[name])
    assert w >= 600 and h >= 300 and len(figs[name]) > 15_000  # drawn, not blank
    assert f"]({name})" in report_of("planted").markdown


def test_figure_rungs_follow_the_scheduler():
    from tune_gpt.report.figures import rungs
    from tune_gpt.settings import SchedulerSettings

    sched = SchedulerSettings(type="asha", time_attr="tokens", grace_period=100,
                              reduction_factor=3, max_t=1000)
    assert rungs(sched, 0) == ("tokens", [100, 300, 900])
    assert rungs(SchedulerSettings(**{**vars(sched), "time_attr": "iter"}), 0)[0] == "iter"
    assert rungs(SchedulerSettings(**{**vars(sched), "time_attr": "time_s"}), 0)[1] == []
    # the first rung and max_t come from the one rule (SchedulerSettings.first_rung)
    assert rungs(SchedulerSettings(**{**vars(sched), "grace_period": 0}), 0)[1] == [100, 300, 900]
    assert rungs(SchedulerSettings(type="asha", time_attr="tokens"), 1000)[1] == [100, 300, 900]
    assert rungs(SchedulerSettings(type="none"), 1000)[1] == []


def test_chinese_figures_fall_back_to_english_without_a_cjk_font(monkeypatch):
    from tune_gpt.report import figures

    monkeypatch.setattr(figures, "_cjk_font", lambda: None)
    assert figures.figure_language("zh") == "en"
    monkeypatch.setattr(figures, "_cjk_font", lambda: "Noto Sans CJK SC")
    assert figures.figure_language("zh") == "zh" and figures.figure_language("en") == "en"


def test_stopped_trials_in_the_leaderboard_are_said_to_be_read_mid_schedule():
    """ASHA reads a stopped trial before its learning rate has decayed: the leaderboard says
    so when it lists one, and says nothing when every listed trial finished."""
    res = report_of("planted")
    lb = res.findings.leaderboard
    n = int((lb.table["outcome"] == "stopped_early").sum())
    assert n >= 1
    board = section(res.markdown, 2)
    assert f"{n} of these trials were stopped early by ASHA" in board
    assert "mid-schedule" in board and "学习率调度中途" in section(report_of("planted", "zh").markdown, 2)
    from tune_gpt.report import render

    lb.table = lb.table[lb.table["outcome"] != "stopped_early"]
    from tune_gpt.report.i18n import translator as tr
    assert "mid-schedule" not in "\n".join(render._leaderboard(res.findings, tr("en"), []))


def test_the_next_step_names_an_importance_only_when_optuna_recorded_one() -> None:
    from test_report_data import planted_search

    from tune_gpt.report import build_report

    trials, curves, meta = planted_search()
    with_imp = build_report(trials, curves, meta).markdown
    assert "The knob that mattered most: `learning_rate` (importance 0.46)" in with_imp
    without = build_report(trials, curves, {**meta, "importances": {}}).markdown
    assert "The knob that mattered most" not in without
    assert "The knob most related to val_loss: `" in without
    assert "of the summed |ρ|; Optuna recorded no importances" in without


def test_the_report_opens_with_the_final_model_and_says_what_it_measured() -> None:
    from tune_gpt.report.i18n import translator
    from tune_gpt.report.render import _final

    fin = {"best_val_loss": 1.573, "best_tokens": 5_610_240, "tokens": 5_610_240,
           "start_tokens": 2_000_640, "of": "e0ca", "predicted": 1.455, "wall_s": 262.0,
           "flops": 4.08e13, "flops_total": 8.97e13, "checkpoint": None,
           "explore": {"wall_s": 431.0, "tokens": 4_004_608, "flops": 4.89e13, "trials": 4},
           "prior": {"trial_id": "e0ca", "measured": 1.711, "measured_tokens": 2_000_640,
                     "tokens_at_budget": 7_941_911, "predicted": 1.381, "why": ""},
           "lines": ["config of trial e0ca: ..."]}
    text = "\n".join(_final(fin, "val_loss", translator("en")))
    assert "**Final model: 1.573 val_loss**" in text and "predicted 1.455" in text
    assert "tune-gpt sample" not in text  # no model file: no command pointing at none
    assert "3,609,600 tokens" in text      # what the final run trained, not the continued start
    assert "measured 1.573: read the prior's prediction with that optimism" in text
    with_model = "\n".join(_final({**fin, "checkpoint": "/r/model/ckpt.pt"}, "val_loss",
                                  translator("zh")))
    assert "tune-gpt eval /r/model/ckpt.pt" in with_model
    assert _final(None, "val_loss", translator("en")) == []
    assert "confirm runs" not in text  # none ran
    confirmed = "\n".join(_final({**fin, "confirm": {"runs": 6, "tokens": 12_003_840,
                                                     "flops": 9.1e13}}, "val_loss",
                                 translator("en")))
    assert "The confirm runs (6 re-runs: 12.0M tokens, 9.1e+13 FLOPs" in confirmed
    # a final run cut before its first evaluation: said, and no "final model" claimed of it
    cut = "\n".join(_final({**fin, "trained_nothing": True, "tokens": 2_000_640,
                            "flops": 0.0, "best_tokens": 2_000_640}, "val_loss",
                           translator("en")))
    assert "**The final run trained nothing kept**" in cut and "Final model" not in cut
    assert "(0 tokens, 0 FLOPs)" in cut


def test_the_search_summary_says_when_the_final_run_trained_nothing() -> None:
    from types import SimpleNamespace

    from tune_gpt.search.live import print_summary

    lines: list[str] = []
    fin = {"trained_nothing": True, "best_val_loss": 2.4725, "tokens": 500_736.0,
           "of": "bf93f5be", "wall_s": 108.0, "explore": {"wall_s": 108.0}}
    print_summary(lines.append, "w2", None, {"completed": 2}, 108.0, Path("runs/w2"), None,
                  SimpleNamespace(metric="val_loss", params={}), final=fin)
    text = "\n".join(lines)
    assert "final model:" not in text and "after 0 tokens" not in text
    assert "ended before its first evaluation" in text and "500,736 tokens" in text
    # with a best explored trial, the summary names it as that, not as the search's result
    space = SimpleNamespace(metric="val_loss", params={}, group_params=lambda: {})
    best = {"metric": "val_loss", "value": 2.433, "trial_id": "7916def0", "config": {}}
    for final, says in ((fin, "best val_loss while exploring: 2.4330"),
                        (None, "best val_loss: 2.4330")):
        lines.clear()
        print_summary(lines.append, "w2", best, {"completed": 2}, 108.0, Path("runs/w2"),
                      None, space, final=final)
        assert says in "\n".join(lines)


def test_with_no_speed_measured_the_report_does_not_say_every_trial_compiled() -> None:
    from tune_gpt.report.findings import Remedy
    from tune_gpt.report.i18n import translator
    from tune_gpt.report.render_resources import _slow_step

    T = translator("en")
    none_off = Remedy("compile", applicable=False)
    assert "already used compile=True" in _slow_step(none_off, T)
    said = _slow_step(none_off, T, measured=False)
    assert "already used" not in said and "no trial trained far enough" in said


@pytest.mark.parametrize("lang, says", [
    ("en", "**Best val_loss while exploring: 1.451** — trial `t_over`"),
    ("zh", "**探索阶段的最佳 val_loss：1.451**")])
def test_after_a_final_phase_the_summary_names_the_explored_best_as_such(lang: str,
                                                                         says: str) -> None:
    """The final model leads the report; the summary's best is then the best explored trial
    (a user read "Best val_loss: 2.433" under "Final model: 0.935" on the Russian man pages)."""
    from test_report_data import planted_search

    trials, curves, meta = planted_search()
    fin = {"best_val_loss": 1.30, "best_tokens": 5e6, "tokens": 5e6, "start_tokens": 0,
           "of": "t_over", "predicted": None, "wall_s": 300.0, "flops": 1e13,
           "flops_total": 2e13, "checkpoint": None,
           "explore": {"wall_s": 100.0, "tokens": 1e6, "flops": 1e13, "trials": 4},
           "lines": []}
    md = build_report(trials, curves, {**meta, "final": fin}, lang=lang).markdown
    assert says in md
