"""On hand-made searches: a learning rate that stays finite but
ends far behind the best at an equal budget is "too high to converge well" and is left out
of the safe range; a val/train gap is overfitting only when val_loss turns up, memorisation
only when it is well beyond the data's own gap, and neither while val_loss still falls."""

from __future__ import annotations

from unittest import mock

import pandas as pd
import pytest
from test_report_data import RUNG0, assemble, report_of, section, trial

from tune_gpt.report import build_report
from tune_gpt.report.diagnose import diagnose_divergence, overfit_case
from tune_gpt.report.results import prepare
from tune_gpt.report.rules import CONVERGE_RATIO, OVERFIT_GAP_RATIO

CORPUS = 1_003_854  # shakespeare_char's train split, in characters


def high_lr_search(**meta):
    """Four good learning rates (1e-3 region) and three stable ones far too high: 0.02, 0.04
    and 0.22 end 0.33-0.73 nats behind, finite throughout; 1.0 becomes NaN."""
    items = [trial(f"g{i}", learning_rate=lr, floor=fl)
             for i, (lr, fl) in enumerate([(6e-4, 1.52), (1e-3, 1.47), (1.5e-3, 1.48), (2e-3, 1.50)])]
    items += [trial(f"h{i}", learning_rate=lr, floor=fl)
              for i, (lr, fl) in enumerate([(0.02, 1.80), (0.04, 1.95), (0.22, 2.20)])]
    items.append(trial("nan", learning_rate=1.0, outcome="diverged", nan_at=400))
    return assemble(items, name="high-lr", params={"learning_rate": {"loguniform": [1e-4, 1.0]}},
                    importances={}, **meta)


def long_search(overfit: bool = True):
    """Three long healthy runs: val_loss still falling at the end, ~11% above train_loss
    (shakespeare_char's own gap); with `overfit`, also a run whose val turns up and one
    whose gap (~36%) is three times the others'."""
    items = [trial(f"long{i}", floor=fl, tau=8e6, gap_end=ge, dropout=dr)
             for i, (fl, ge, dr) in enumerate([(1.40, 0.15, 0.1), (1.42, 0.16, 0.15), (1.44, 0.155, 0.2)])]
    if overfit:
        items += [trial("over", floor=1.45, overfit_at=1500, dropout=0.0),
                  trial("memo", floor=1.50, gap_end=0.40, dropout=0.0)]
    doctor = dict(name="shakespeare_char", source="input.txt", tokenizer="char", vocab_size=65,
                  n_train=CORPUS, n_val=111_540, ln_vocab=4.174, unigram_entropy=3.27,
                  tokens_per_trial=24_576_000, epochs=24_576_000 / CORPUS)
    return assemble(items, name="long", params={"dropout": {"uniform": [0.0, 0.3]}},
                    importances={}, data_doctor=doctor, memory_limit_bytes=None)


def report(tables, lang="en"):
    with mock.patch("tune_gpt.report.build.make_figures", lambda *a: {}):
        return build_report(*tables, lang=lang)


# ----------------------------------------------------------------------------- part 2

def test_stable_but_far_behind_learning_rates_are_too_high_to_converge_well():
    r = report(high_lr_search())
    d = r.findings.diverge
    assert [c.trial_id for c in d.cases] == ["nan"]  # only the NaN one diverged
    assert [(c.trial_id, c.reason) for c in d.too_high] == [("h0", "too_high"), ("h1", "too_high"),
                                                           ("h2", "too_high")]
    assert d.too_high_lr == 0.02
    assert d.best_loss == pytest.approx(1.47, abs=1e-3)
    assert d.margin == pytest.approx(CONVERGE_RATIO * d.best_loss)
    # the safe range: stable AND within the noise of the best (6e-4 ends 0.05 behind, beyond
    # the reference noise's two-run threshold of 0.047); the too-high rates are out of it
    assert d.safe_lr == (1e-3, 2e-3) and d.n_safe == 3
    text = section(r.markdown, 6)
    assert "**Too high to converge well: learning_rate ≥ 2.0e-02.**" in text
    assert "(`h0`, `h1`, `h2`) ended 0.330–0.730 above the best val_loss (1.470)" in text
    assert "**1.0e-03 – 2.0e-03**" in text and "0.22" not in text.split("Safe")[1]
    assert "| `h2` | 2.2e-01 | too high to converge well (+0.730 vs the best at equal budget)" in text
    zh = section(report(high_lr_search(), "zh").markdown, 6)
    assert "**学习率太大、收敛不好：learning_rate ≥ 2.0e-02。**" in zh
    assert "**1.0e-03 – 2.0e-03**" in zh


def test_the_confirm_runs_noise_widens_the_margin():
    """Seed noise of 0.15 nats over 4 degrees of freedom: a difference of two runs under
    t(4)·√2·0.15 = 2.776·√2·0.15 = 0.59 is noise, so only lr 0.22 (0.73 behind) is too high,
    and the safe range (within that of the best) reaches 0.04 (0.48 behind)."""
    trials, curves, meta = high_lr_search()
    d = diagnose_divergence(prepare(trials, curves, {**meta, "confirm": {"noise": 0.15,
                                                                        "dof": 4}}))
    assert d.margin_source == "confirm" and d.margin == pytest.approx(2.776 * 2 ** 0.5 * 0.15,
                                                                      rel=1e-3)
    assert d.too_high_lr == 0.22 and d.safe_lr == (6e-4, 0.04)
    # small seed noise leaves the rule's margin in place
    d = diagnose_divergence(prepare(trials, curves, {**meta, "confirm": {"noise": 0.01,
                                                                        "dof": 4}}))
    assert d.margin_source == "rule" and d.too_high_lr == 0.02


def test_a_learning_rate_is_called_safe_only_from_trials_that_trained_far_enough():
    """A high learning rate that leads early and ends worse: judged at the first rung it
    looks as good as the best. With only one trial trained past a third of the longest, no
    range is called safe, and the report says why; the too-high verdict (at the equal budget
    of all trials) is not a safe range."""
    items = [trial("long", learning_rate=1e-3, floor=1.47),
             trial("early_hi", learning_rate=0.15, floor=1.47, outcome="stopped_early",
                   stop_tokens=RUNG0),
             trial("early_lo", learning_rate=2e-3, floor=1.50, outcome="stopped_early",
                   stop_tokens=RUNG0)]
    tables = assemble(items, name="early", params={"learning_rate": {"loguniform": [1e-4, 1]}},
                      importances={}, memory_limit_bytes=None)
    d = diagnose_divergence(prepare(*tables))
    assert d.safe_lr is None and d.safe_budget is None
    text = section(report(tables).markdown, 6)
    assert "No learning-rate range is called safe yet" in text


def test_a_slow_low_learning_rate_is_not_too_high():
    """Behind the best at the *low* end is slow training, not failing to converge."""
    trials, curves, meta = assemble([trial("slow", learning_rate=1e-5, floor=2.4),
                                     trial("good", learning_rate=1e-3, floor=1.47),
                                     trial("ok", learning_rate=3e-3, floor=1.50)])
    d = diagnose_divergence(prepare(trials, curves, meta))
    assert not d.too_high and d.too_high_lr is None
    assert d.safe_lr == (1e-3, 3e-3)


# ----------------------------------------------------------------------------- part 3

def test_a_healthy_long_run_raises_no_overfitting_alarm():
    r = report(long_search(overfit=False))
    o = r.findings.overfit
    assert not o.cases
    assert [c.trial_id for c in o.healthy] == ["long0", "long1", "long2"]
    assert all(c.falling and c.val_last - c.train_last > OVERFIT_GAP_RATIO * c.train_last
               for c in o.healthy)  # the old rule called these gaps "large"
    assert o.data_gap == pytest.approx(0.11, abs=0.01) and o.data_gap_n == 3
    text = section(r.markdown, 5)
    assert "None found" in text and "gap beyond" not in text
    assert ("`long0`: val_loss 1.529 is 11% above train_loss 1.379 at the end (24.6M tokens = 24 "
            "epochs of a 1,003,854-token corpus), within what the data's own gap (11.0%) explains, "
            "and val_loss was still falling: **not overfitting**. More training or a bigger model "
            "may help.") in text
    zh = section(report(long_search(overfit=False), "zh").markdown, 5)
    assert "**不是过拟合**。多训练一些或用更大的模型可能会更好。" in zh
    assert "（24.6M 个 token = 1,003,854 token 语料的 24 个 epoch）" in zh


def test_true_overfitting_and_memorisation_are_flagged_beside_healthy_runs():
    r = report(long_search())
    o = r.findings.overfit
    kinds = {c.trial_id: c.kind for c in o.cases}
    assert kinds == {"over": "rising", "memo": "gap"}
    assert [c.trial_id for c in o.healthy] == ["long0", "long1", "long2"]
    memo = next(c for c in o.cases if c.trial_id == "memo")
    assert memo.data_gap == pytest.approx(0.11, abs=0.01)  # the others', not its own
    text = section(r.markdown, 5)
    assert "overfitting started at iteration 1,500" in text
    assert "| `memo` | gap beyond the data's own |" in text
    assert "more than 2× the data's own gap (11.0%)" in text and "memorisation" in text
    assert "**11.0%** of train_loss (the median, at the end, of 3 trials" in text  # memo left out
    assert "`long0`" in text and "**not overfitting**" in text


def test_overfit_rule_separates_the_three_cases():
    def curve(vals, trains):
        n = len(vals)
        return pd.DataFrame({"iter": range(0, 100 * n, 100), "tokens": range(0, 1000 * n, 1000),
                             "val_loss": vals, "train_loss": trains})
    falling = curve([4.0, 2.0, 1.7, 1.6, 1.55], [4.0, 1.85, 1.55, 1.44, 1.39])  # 11.5%, falling
    c = overfit_case("a", falling, data_gap=0.11)
    assert c.kind == "healthy" and c.falling
    # the same curve where the data's own gap is 3%: 11.5% is memorisation
    assert overfit_case("a", falling, data_gap=0.03).kind == "gap"
    # under OVERFIT_GAP_RATIO: nothing to say
    assert overfit_case("b", curve([4.0, 2.0, 1.6], [4.0, 1.95, 1.55]), data_gap=0.11) is None
    # val turned up while train fell: overfitting, whatever the gap
    rising = curve([4.0, 2.0, 1.5, 1.6], [4.0, 1.9, 1.4, 1.3])
    assert overfit_case("c", rising, data_gap=0.5).kind == "rising"


# ----------------------------------------------------------------------------- no false alarms

def test_a_clean_search_still_raises_no_false_alarm():
    r = report_of("clean")
    d, o = r.findings.diverge, r.findings.overfit
    assert not d.cases and not d.too_high and not o.cases and not o.healthy
    # c7 (4e-3) was stopped at the first rung, a sixth of a trial: too early to call it safe
    assert d.safe_lr == (6e-4, 2e-3) and d.safe_budget == 24_576_000
    assert "Too high" not in section(r.markdown, 6) and "None found" in section(r.markdown, 6)
    assert "太大" not in section(report_of("clean", "zh").markdown, 6).split("学习率太大不收敛")[0]
