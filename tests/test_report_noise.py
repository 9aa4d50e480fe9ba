"""On hand-made searches: is a difference real? The noise comes from the confirm runs'
re-runs, else from the reference seed spread measured once (never below the curves' wobble
between evaluations, nor judge.FLOOR), judged with Student's t; every comparison the report makes (the leaderboard's gaps, knob
effects, remedies, speed pairs, the learning-rate margin, the loss references, a changed
confirm winner) says whether it exceeds it, ≈ where it does not, in both languages."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from test_report_convergence import high_lr_search
from test_report_data import assemble, report_of, section, trial

from tune_gpt.report import build_report
from tune_gpt.report.diagnose import diagnose_divergence
from tune_gpt.report.effects import knob_effects
from tune_gpt.report.noise import curve_wobble, loss_noise, pseudo_residuals
from tune_gpt.report.results import prepare
from tune_gpt.judge import REFERENCE_SEED_NOISE, t_quantile


def wobbled(tables, sigma: float, seed: int = 0, keep_last: bool = True):
    """The search with independent noise of `sigma` nats added to every evaluation's val_loss
    and train_loss after the first (and, with `keep_last`, before each trial's last, so the
    values read at the end stay exactly as planted while the curves wobble)."""
    trials, curves, meta = tables
    curves = curves.copy()
    rng = np.random.default_rng(seed)
    last = curves.groupby("trial_id")["iter"].transform("max")
    hit = (curves["iter"] > 0) & ~((curves["iter"] == last) & keep_last)
    for col in ("val_loss", "train_loss"):
        curves.loc[hit, col] += sigma * rng.standard_normal(int(hit.sum()))
    trials = trials.copy()
    for col in ("best_val_loss", "final_val_loss", "final_train_loss"):
        trials[col] = np.nan  # filled again from the curves
    return trials, curves, meta


def build(tables, lang: str = "en"):
    with mock.patch("tune_gpt.report.build.make_figures", lambda *a: {}):
        return build_report(*tables, lang=lang)


def pair_search(gap: float):
    """Four completed trials; the best two `gap` apart in val_loss."""
    items = [trial("a", learning_rate=1e-3, floor=1.47), trial("b", learning_rate=2e-3, floor=1.47 + gap),
             trial("c", learning_rate=4e-3, floor=1.70), trial("d", learning_rate=3e-4, floor=1.80)]
    return assemble(items, name="pair", params={"learning_rate": {"loguniform": [1e-4, 1e-2]}},
                    importances={}, memory_limit_bytes=None)


# ----------------------------------------------------------------------------- the estimate

def test_pseudo_residuals_ignore_a_straight_line_and_scale_noise_to_its_sigma():
    x = np.array([0.0, 1.0, 3.0, 4.0, 8.0])  # uneven spacing (a trial's last eval is off-grid)
    assert np.allclose(pseudo_residuals(x, 2.0 - 0.1 * x), 0.0)
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0, 100, 20_000))
    r = pseudo_residuals(x, 0.3 * rng.standard_normal(len(x)))
    assert np.std(r) == pytest.approx(0.3, rel=0.03)


def test_the_curves_wobble_recovers_the_planted_noise():
    trials, curves, meta = wobbled(pair_search(0.1), 0.04, keep_last=False)
    res = prepare(trials, curves, meta)
    sigma, n, k = curve_wobble(res.curve(i) for i in res.trials.index)
    assert k == 4 and n >= 30
    assert sigma == pytest.approx(0.04, rel=0.3)
    noise = res.noise
    assert noise.source == "curves" and noise.per_run == pytest.approx(sigma)
    # Student's t at the reference's degrees of freedom: the wobble says nothing of the seed
    assert noise.dof == REFERENCE_SEED_NOISE.dof
    assert noise.pair == pytest.approx(t_quantile(REFERENCE_SEED_NOISE.dof) * math.sqrt(2) * sigma)


def test_smooth_curves_keep_the_floor_and_confirm_runs_take_precedence():
    res = prepare(*pair_search(0.1))
    n = res.noise  # smooth curves: the measured reference seed spread, said so
    assert n.source == "reference" and n.per_run == REFERENCE_SEED_NOISE.sd
    assert n.eval < REFERENCE_SEED_NOISE.sd  # within one run, only the (small) wobble counts
    seed = loss_noise([res.curve("a")], {"noise": 0.05, "dof": 4,
                                         "configs": [{"n": 3}, {"n": 3}]})
    assert (seed.source, seed.per_run, seed.n, seed.dof) == ("confirm", 0.05, 6, 4)
    assert seed.pair == pytest.approx(2.776 * math.sqrt(2) * 0.05, rel=1e-3)
    few = loss_noise([res.curve("a").iloc[:3]], None)  # too few points to measure
    assert few.source == "reference" and few.per_run == REFERENCE_SEED_NOISE.sd


# ----------------------------------------------------------------------------- leaderboard

def test_a_gap_within_the_noise_is_marked_and_said_in_both_languages():
    r = build(pair_search(0.01))
    lb = r.findings.leaderboard
    assert list(lb.table["trial_id"][:2]) == ["a", "b"] and bool(lb.table.at[1, "within"])
    text = section(r.markdown, 2)
    assert "| best val_loss: Δ vs #1 |" in text and "| ≈ +0.010 |" in text
    assert "| +0.230 |" in text  # c: far beyond the noise, no ≈
    assert (f"**Is a difference real?** One run's val_loss moves by about "
            f"±{REFERENCE_SEED_NOISE.sd:.3f} by chance: this search measured no seed noise of its "
            f"own, so this is the seed spread measured once on shakespeare_char") in text
    assert ("The best trial `a` leads the runner-up `b` by 0.010 in best val_loss: ≈, within "
            "the noise.") in text
    assert "Treat the two as equally good" in text
    zh = section(build(pair_search(0.01), "zh").markdown, 2)
    assert "**差别是真的吗？**" in zh and "| ≈ +0.010 |" in zh
    assert "最佳试验 `a` 的最佳 val_loss 比第二名 `b` 低 0.010：≈，在噪声以内。" in zh


def test_a_gap_beyond_the_noise_is_said_to_be_real():
    text = section(build(pair_search(0.1)).markdown, 2)
    assert "leads the runner-up `b` by 0.100 in best val_loss: beyond the noise." in text
    assert "(-0.100, beyond the noise)" in text and "Treat the two" not in text
    zh = section(build(pair_search(0.1), "zh").markdown, 2)
    assert "低 0.100：超出噪声。" in zh


def test_noisy_curves_raise_the_noise_so_the_same_gap_is_no_longer_real():
    """0.1 nats is real when a run's loss moves by 0.01, not when it moves by 0.06."""
    r = build(wobbled(pair_search(0.1), 0.06))
    n = r.findings.noise
    assert n.source == "curves" and n.per_run > 0.04 and n.pair > 0.1
    gap = r.findings.leaderboard.table.at[1, "delta"]
    assert gap < n.pair
    text = section(r.markdown, 2)
    assert f"by {gap:.3f} in best val_loss: ≈, within the noise." in text
    assert "the curves of 4 trials wobble by this much between evaluations" in text
    assert "(-0.100, ≈, within the noise)" in text  # the ends were left exact: still 0.1 apart


# ----------------------------------------------------------------------------- other comparisons

def effect_search():
    """Eight completed trials: dropout raises val_loss by 0.04 per 0.1, consistently."""
    items = [trial(f"d{i}", dropout=dr, floor=1.50 + 0.4 * dr, learning_rate=1e-3 * (1 + i % 3))
             for i, dr in enumerate([0.0, 0.0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3])]
    return assemble(items, name="fx", params={"dropout": {"uniform": [0.0, 0.3]}},
                    importances={}, memory_limit_bytes=None)


def test_knob_effects_smaller_than_the_curves_wobble_are_within_noise():
    smooth = knob_effects(prepare(*effect_search())).get("dropout", "val_loss")
    assert smooth.direction == "up" and smooth.diff == pytest.approx(0.08, abs=1e-6)
    noisy = knob_effects(prepare(*wobbled(effect_search(), 0.12))).get("dropout", "val_loss")
    assert noisy.diff == pytest.approx(0.08, abs=1e-6)  # the values read are the same...
    assert noisy.direction == "noise"                   # ...but the noise is now larger
    text = section(build(wobbled(effect_search(), 0.12)).markdown, 7)
    assert "| `dropout` | ≈ (within noise) +0.080" in text
    per_run = prepare(*wobbled(effect_search(), 0.12)).noise.per_run
    assert per_run > 0.08
    assert f"exceeds the noise ({per_run:.3f} nats per run, see *Is a difference real?*" in text
    zh = section(build(wobbled(effect_search(), 0.12), "zh").markdown, 7)
    assert "≈（在噪声内） +0.080" in zh and f"每次运行 {per_run:.3f} nats" in zh


def remedy_search(gaps: list[float]):
    items = [trial(f"r{i}", dropout=dr, gap_end=g, floor=1.5, learning_rate=1e-3)
             for i, (dr, g) in enumerate(zip([0.0, 0.0, 0.1, 0.2, 0.3, 0.3], gaps))]
    return assemble(items, name="rem", params={"dropout": {"uniform": [0.0, 0.3]}},
                    importances={}, memory_limit_bytes=None)


def test_a_remedys_evidence_says_whether_the_gap_moved_beyond_the_noise():
    small = section(build(remedy_search([0.050, 0.048, 0.045, 0.040, 0.036, 0.035])).markdown, 5)
    assert "no clear effect here: gap 0.036 with dropout 0.2–0.3 vs 0.048 with 0–0.1" in small
    floor = f"{2 * REFERENCE_SEED_NOISE.sd:.3f}"  # REMEDY_GAP_NOISES x the per-run noise
    assert f"— ≈, a difference within the noise ({floor})." in small
    big = section(build(remedy_search([0.12, 0.11, 0.09, 0.05, 0.03, 0.03])).markdown, 5)
    assert "works here: trials with dropout 0.2–0.3" in big and f"beyond the noise ({floor})" in big
    zh = section(build(remedy_search([0.050, 0.048, 0.045, 0.040, 0.036, 0.035]), "zh").markdown, 5)
    assert f"——≈，差别在噪声以内（{floor}）。" in zh


def test_a_speed_ratio_within_throughputs_noise_is_marked():
    items = [trial("s32", batch_size=32, tokens_per_s=100_000.0),
             trial("s64", batch_size=64, tokens_per_s=103_000.0),
             trial("s64b", batch_size=64, learning_rate=2e-3, tokens_per_s=103_000.0)]
    tables = assemble(items, name="speed", params={"batch_size": {"choice": [32, 64]}},
                      importances={}, memory_limit_bytes=None)
    text = section(build(tables).markdown, 4)
    assert ("batch_size 32→64 gave 1.03× tokens/s (trials `s32` vs `s64`, `s64b`, otherwise the "
            "same model and settings) — ≈, within the ~5% run-to-run variation of throughput.") in text
    assert "在吞吐量约 5% 的运行间波动以内" in section(build(tables, "zh").markdown, 4)
    # the planted search's 1.32x is beyond it
    assert "1.32× tokens/s" in section(report_of("planted").markdown, 4)
    assert "beyond the ~5% run-to-run variation of throughput" in section(report_of("planted").markdown, 4)


def test_a_wobbly_search_widens_the_learning_rate_margin_from_its_curves():
    trials, curves, meta = wobbled(high_lr_search(), 0.07)
    d = diagnose_divergence(prepare(trials, curves, meta))
    assert d.margin_source == "curves" and d.margin > 0.147
    assert d.margin == pytest.approx(prepare(trials, curves, meta).noise.pair)
    text = section(build((trials, curves, meta)).markdown, 6)
    assert "the curves' wobble for a difference of two runs" in text
    assert "曲线在评估之间的抖动" in section(build((trials, curves, meta), "zh").markdown, 6)


def test_a_changed_confirm_winner_within_the_noise_is_no_verdict():
    trials, curves, meta = pair_search(0.01)
    confirm = {"metric": "val_loss", "column": "best_val_loss", "top_k": 2, "seeds": 2,
               "noise": 0.03, "dof": 4, "winner": "b", "runner_up": "a", "gap": 0.01, "gap_se": 0.024,
               "winner_is_real": False,
               "configs": [{"trial_id": "a", "search_value": 1.47, "mean": 1.49, "std": 0.03, "n": 3},
                           {"trial_id": "b", "search_value": 1.48, "mean": 1.48, "std": 0.03, "n": 3}]}
    r = build((trials, curves, {**meta, "confirm": confirm}))
    assert r.findings.noise.source == "confirm" and r.findings.noise.per_run == 0.03
    text = section(r.markdown, 2)
    assert "the confirm runs measured this seed noise over 6 re-runs on new seeds" in text
    assert "On the re-runs `b` came out ahead of the search's best trial `a`, but within the noise (≈)" in text
    assert "its search run was partly luck" not in text
    assert "Treat the two as equally good" not in text  # the confirm runs give that verdict
    zh = section(build((trials, curves, {**meta, "confirm": confirm}), "zh").markdown, 2)
    assert "但差别在噪声以内（≈）" in zh


# ----------------------------------------------------------------------------- references

def test_loss_references_on_shakespeare_char_with_noise_verdicts():
    s1 = section(report_of("planted", figures=False).markdown, 1)
    assert "Is a val_loss of 1.451 good (the best trial, after 24.6M tokens)?" in s1
    assert "| guessing uniformly among the 65 tokens (ln 65): what an untrained model scores | 4.174 | 2.724 lower |" in s1
    assert "2,000 iterations (1.5M tokens) | ~1.88 | 0.429 lower |" in s1
    assert "5,000 iterations (82M tokens) | 1.4697 | ≈ (-0.019) |" in s1  # within the noise
    zh = section(report_of("planted", "zh").markdown, 1)
    assert "| ~1.88 | 低 0.429 |" in zh and "| 1.4697 | ≈（-0.019） |" in zh


def test_nanogpts_figures_only_for_shakespeare_char():
    trials, curves, meta = pair_search(0.1)
    other = build((trials, curves, {**meta, "data": "/data/my_novel.txt"})).markdown
    assert "ln 65" in other and "| ~1.88 |" not in other  # no nanoGPT reference rows
    bpe = trials.assign(vocab_size=50257)
    text = build((bpe, curves, meta)).markdown
    assert "ln 50,257" in text and "nanoGPT's" not in text.split("## 2.")[0]
    # a copy of tinyshakespeare under another name is recognised by its size
    doctor = dict(name="input", source="/tmp/input.txt", tokenizer="char", vocab_size=65,
                  n_train=1_003_854, n_val=111_540, ln_vocab=4.174, unigram_entropy=3.27)
    text = build((trials, curves, {**meta, "data": "/tmp/input.txt", "data_doctor": doctor})).markdown
    assert "| ~1.88 |" in text
