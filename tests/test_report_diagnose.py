"""The report's diagnoses on hand-made searches: each planted problem lands in its section,
with the guide's remedies in the guide's order and the right numbers; a clean search raises
no false alarm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_report_data import RUNG0, planted_search, report_of, section, trial

from tune_gpt.judge import REFERENCE_SEED_NOISE, t_quantile
from tune_gpt.report import memory
from tune_gpt.report.diagnose import diverge_case, overfit_case
from tune_gpt.report.rules import (EVAL_SHARE_MAX, OOM_REMEDIES, OVERFIT_MIN_RISE, OVERFIT_REMEDIES,
                                   SLOW_REMEDIES)


def in_order(text: str, *parts: str) -> bool:
    positions = [text.find(p) for p in parts]
    return all(p >= 0 for p in positions) and positions == sorted(positions)


# ----------------------------------------------------------------------------- OOM

def test_oom_section_lists_the_oom_and_the_predicted_oom_with_their_memory():
    f = report_of("planted").findings.oom
    cases = {c.trial_id: c for c in f.cases}
    assert set(cases) == {"t_oom", "t_pred"}
    assert cases["t_oom"].outcome == "oom" and cases["t_pred"].outcome == "predicted_oom"
    assert all(np.isfinite(c.est_mem_bytes) for c in cases.values())
    assert cases["t_oom"].tokens_per_iter == 64 * 512
    assert f.limit_bytes == 12e9
    assert cases["t_oom"].rescued_by == "t_rescue"
    assert cases["t_oom"].rescue_outcome == "stopped_early"


def test_oom_ladder_follows_the_guide_and_keeps_tokens_with_accumulation():
    case = next(c for c in report_of("planted").findings.oom.cases if c.trial_id == "t_oom")
    assert [r.key for r in case.ladder] == list(OOM_REMEDIES) == [
        "smaller_batch", "smaller_block", "grad_accum", "smaller_model", "mixed_precision"]
    batch, block, accum, model, precision = case.ladder
    assert batch.changes == {"batch_size": (64, 32)} and batch.tokens_per_iter == 16_384
    assert block.changes == {"block_size": (512, 256)} and block.tokens_per_iter == 16_384
    assert accum.changes == {"batch_size": (64, 32), "gradient_accumulation_steps": (1, 2)}
    assert accum.tokens_per_iter == 32_768  # the same tokens/iter as the trial
    want = memory.need_bytes({**case.knobs, "batch_size": 32, "gradient_accumulation_steps": 2}, 65)
    assert accum.mem_bytes == pytest.approx(want)
    assert accum.fits is (want <= 0.9 * 12e9)
    assert model.changes["n_embd"][1] % case.knobs["n_head"] == 0  # still a legal model
    assert not precision.applicable  # already bfloat16


def test_oom_markdown_spells_out_the_ladder_in_order():
    text = section(report_of("planted").markdown, 3)
    assert in_order(text, "Smaller batch_size", "Smaller block_size", "Gradient accumulation",
                    "Smaller model", "Mixed precision")
    assert "batch_size 64→32, gradient_accumulation_steps 1→2 keeps 32,768 tokens/iter" in text
    assert "`t_pred`" in text and "predicted_oom" in text and "`t_rescue`" in text


def test_a_config_too_big_for_every_single_step_gets_the_steps_combined():
    case = next(c for c in report_of("planted").findings.oom.cases if c.trial_id == "t_pred")
    assert not any(r.fits for r in case.ladder)
    assert case.combined is not None and case.combined.fits
    assert "batch_size" in case.combined.changes and "n_layer" in case.combined.changes


# ----------------------------------------------------------------------------- slowness

def test_the_slow_trial_is_flagged_for_every_reason_and_only_it():
    s = report_of("planted").findings.slow
    rows = {r.trial_id: r for r in s.rows}
    assert set(rows["t_slow"].flags) == {"slow", "eval_heavy", "compile_off", "small_batch"}
    assert s.slow == ["t_slow"]
    trials = planted_search()[0].set_index("trial_id")
    want = trials.at["t_slow", "eval_s"] / trials.at["t_slow", "wall_s"]
    assert rows["t_slow"].eval_share == pytest.approx(want) and want > EVAL_SHARE_MAX


def test_slowness_remedies_follow_the_guide_with_measured_numbers():
    s = report_of("planted").findings.slow
    assert [r.key for r in s.remedies] == list(SLOW_REMEDIES) == [
        "compile", "larger_batch", "fewer_evals", "less_logging"]
    compile_, batch, evals, logging = s.remedies
    assert compile_.trials == ["t_slow"] and compile_.pair is None  # no on/off pair to measure
    # t01/t03 (batch 32) and t02 (batch 64) differ only in batch_size among the speed knobs
    trials = planted_search()[0].set_index("trial_id")
    assert batch.pair.low == 32 and batch.pair.high == 64
    assert batch.pair.ratio == pytest.approx(trials.at["t02", "tokens_per_s"]
                                             / trials.at["t01", "tokens_per_s"])
    assert batch.changes == {"batch_size": (8, 16)} and batch.trials == ["t_slow"]
    old, new = evals.changes["eval_interval"]
    assert old == 50 and new > old and evals.trials == ["t_slow"]
    s_ = evals.eval_share
    assert evals.speedup == pytest.approx(1 / (1 - s_ + s_ * old / new))
    assert logging.changes == {"log_interval": (10, 100)}
    text = section(report_of("planted").markdown, 4)
    assert in_order(text, "compile=True", "Larger batch_size", "Fewer evaluations", "Less logging")
    assert "batch_size 32→64 gave 1.32× tokens/s" in text


# ----------------------------------------------------------------------------- overfitting

def test_planted_overfitting_is_found_with_its_start_iteration():
    o = report_of("planted").findings.overfit
    assert [c.trial_id for c in o.cases] == ["t_over"]
    c = o.cases[0]
    assert c.kind == "rising" and c.start_iter == 1500 and c.start_tokens == 1500 * 8192
    assert c.val_last - c.val_min >= OVERFIT_MIN_RISE and c.train_last < c.train_at_min
    assert "overfitting started at iteration 1,500" in section(report_of("planted").markdown, 5)


def test_overfitting_remedies_follow_the_guide_and_point_at_trials():
    o = report_of("planted").findings.overfit
    assert [e.key for e in o.remedies] == list(OVERFIT_REMEDIES) == [
        "dropout", "weight_decay", "smaller_model", "more_data"]
    dropout, wd, model, _ = o.remedies
    assert dropout.status == "works" and "t_over" in dropout.others
    assert wd.status == "not_tried"  # weight_decay was fixed in this search
    assert model.status == "works" and model.others == ["t_over"]
    text = section(report_of("planted").markdown, 5)
    assert in_order(text, "More dropout", "More weight_decay", "Smaller model", "More data")


def test_overfit_rule_boundaries():
    def curve(vals, trains):
        return pd.DataFrame({"iter": range(0, 100 * len(vals), 100), "tokens": range(0, 1000 * len(vals), 1000),
                             "val_loss": vals, "train_loss": trains})
    # a rise below the threshold is noise
    small = OVERFIT_MIN_RISE / 2
    assert overfit_case("a", curve([2.0, 1.6, 1.5, 1.5 + small], [2.0, 1.58, 1.47, 1.45])) is None
    # val and train both rising is instability, not overfitting
    assert overfit_case("b", curve([2.0, 1.5, 1.7], [2.0, 1.48, 1.68])) is None
    # a large gap without a rise is still reported, as a gap
    gap = overfit_case("c", curve([2.0, 1.7, 1.6], [2.0, 1.5, 1.3]))
    assert gap is not None and gap.kind == "gap"


# ----------------------------------------------------------------------------- divergence

def test_divergence_and_the_safe_learning_rate_range():
    d = report_of("planted").findings.diverge
    assert [(c.trial_id, c.reason, c.learning_rate) for c in d.cases] == [("t_div", "diverged", 0.1)]
    assert d.cases[0].iter == 500
    trials = planted_search()[0].set_index("trial_id")
    ok = trials[trials["outcome"].isin(["completed", "stopped_early"])]["learning_rate"]
    # safe: stable, trained at least a third of the longest (12.3M of 24.6M tokens), and within
    # the noise's two-run threshold of the best there. t04, t05, t08 stopped at the first rung
    # (too early to tell); t06 (5e-3) and t07 are 0.06-0.08 behind at 12.3M, beyond it
    ref = REFERENCE_SEED_NOISE
    assert d.safe_budget == 12_288_000
    assert d.safe_margin == pytest.approx(t_quantile(ref.dof) * math.sqrt(2) * ref.sd)
    assert d.safe_lr == (1.2e-3, 2e-3) and ok.max() == 5e-3  # t_rescue (6e-4) also behind
    assert not d.too_high  # t06: behind, but within the 10% that other knobs move
    assert "**1.2e-03 – 2.0e-03**" in section(report_of("planted").markdown, 6)


def test_exploding_and_flat_losses_count_as_not_converging():
    row = pd.Series({"learning_rate": 0.05, "outcome": "completed", "iters": 300})
    explode = pd.DataFrame({"iter": [0, 100, 200, 300], "tokens": [0, 1, 2, 3],
                            "train_loss": [4.1, 2.0, 2.6, 3.5], "val_loss": [4.1, 2.0, 2.6, 3.5]})
    assert diverge_case("e", row, explode, math.log(65)).reason == "exploding"
    flat = pd.DataFrame({"iter": [0, 100, 200], "tokens": [0, 1, 2],
                         "train_loss": [4.17, 4.15, 4.12], "val_loss": [4.17, 4.15, 4.12]})
    assert diverge_case("f", row, flat, math.log(65)).reason == "flat"
    fine = pd.DataFrame({"iter": [0, 100, 200], "tokens": [0, 1, 2],
                         "train_loss": [4.17, 2.5, 2.0], "val_loss": [4.17, 2.5, 2.1]})
    assert diverge_case("g", row, fine, math.log(65)) is None


def test_a_diverged_trial_is_never_the_recommended_one():
    trials, curves, meta = planted_search()
    # make t_div's best loss (before the NaN) the lowest of all
    curves.loc[(curves.trial_id == "t_div") & (curves.iter == 250), "val_loss"] = 1.0
    trials.loc[trials.trial_id == "t_div", "best_val_loss"] = 1.0
    from tune_gpt.report.results import best_id, prepare

    assert best_id(prepare(trials, curves, meta)) == "t_over"


# ----------------------------------------------------------------------------- no false alarms

def test_a_clean_search_raises_no_alarm():
    r = report_of("clean")
    f = r.findings
    assert not f.oom.cases and not f.overfit.cases and not f.diverge.cases
    assert not f.slow.slow
    for n in (3, 5, 6):
        assert "None found" in section(r.markdown, n)
    zh = report_of("clean", "zh").markdown
    assert zh.count("未发现") == 3


# ----------------------------------------------------------------------------- robustness

def degenerate(case):
    trials, curves, meta = planted_search()
    if case == "all_failed":
        trials["outcome"] = "failed"
        trials["error"] = "RuntimeError: boom"
        for c in ("best_val_loss", "final_val_loss", "final_train_loss", "tokens_per_s", "mfu"):
            trials[c] = np.nan
        curves = curves.iloc[0:0]
    elif case == "one_trial":
        trials, curves = trials[trials.trial_id == "t01"], curves[curves.trial_id == "t01"]
    elif case == "no_curves":
        curves = curves[curves.trial_id != "t01"]
    elif case == "nan_losses":
        curves.loc[curves.index % 3 == 0, ["val_loss", "train_loss"]] = np.nan
    elif case == "bare_meta":
        meta = {}
    elif case == "empty":
        trials, curves = trials.iloc[0:0], curves.iloc[0:0]
    return trials, curves, meta


@pytest.mark.parametrize("case", ["all_failed", "one_trial", "no_curves", "nan_losses", "bare_meta",
                                  "empty"])
def test_report_survives_degenerate_searches(case, monkeypatch):
    from tune_gpt.report import build, build_report

    monkeypatch.setattr(build, "make_figures", lambda *a: {})  # figures: see the next test
    r = build_report(*degenerate(case))
    assert r.markdown.startswith("# ")
    assert all(f"## {n}. " in r.markdown for n in range(1, 9))
    assert set(r.files) == {"best_config.yaml", "best_config_nanogpt.py", "next_space.yaml"}
    if case in ("all_failed", "empty"):
        assert r.findings.summary.best_trial is None
        assert "No trial finished with a finite val_loss" in r.markdown


@pytest.mark.parametrize("case", ["all_failed", "one_trial", "nan_losses"])
def test_figures_survive_degenerate_searches(case):
    from unittest import mock

    from tune_gpt.report.build import make_figures

    captured = {}
    with mock.patch("tune_gpt.report.build.make_figures",
                    lambda res, f, lang: captured.update(res=res, f=f) or {}):
        from tune_gpt.report import build_report

        build_report(*degenerate(case))
    figs = make_figures(captured["res"], captured["f"], "en")
    assert all(data[:4] == b"\x89PNG" for data in figs.values())
    if case == "all_failed":
        assert set(figs) <= {"importances.png"}  # no curves to draw: no empty figures
    else:
        assert "curves.png" in figs


def test_stopped_trials_are_compared_at_the_first_rung():
    f = report_of("clean").findings
    assert f.effects.budget == RUNG0
    assert trial("x")[0]["tokens_per_iter"] == 8192
