"""The report's input tables: the search's meta as a SearchMeta, and trials ranked by the
search's own metric."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_report_data import assemble, trial

from tune_gpt.report import build_report
from tune_gpt.report.results import best_id, prepare, ranked
from tune_gpt.trial import SearchMeta


def disagreeing_search(metric: str):
    """The two losses rank the trials in opposite orders: `val` has the lowest val_loss,
    `train` the lowest train_loss (it fits its training text closely, generalises worse)."""
    items = [trial("val", floor=1.50, gap_end=0.02),    # val 1.50, train ends 1.48
             trial("train", floor=1.60, gap_end=0.40),  # val 1.60, train ends 1.20
             trial("mid", floor=1.55, gap_end=0.10)]    # val 1.55, train ends 1.45
    return assemble(items, name="disagree", metric=metric)


def quick_report(*tables, lang="en"):
    from unittest import mock

    with mock.patch("tune_gpt.report.build.make_figures", lambda *a: {}):  # no figures: fast
        return build_report(*tables, lang=lang)


@pytest.mark.parametrize("metric, best, score", [("val_loss", "val", "best_val_loss"),
                                                 ("best_val_loss", "val", "best_val_loss"),
                                                 ("train_loss", "train", "best_train_loss")])
def test_trials_are_ranked_by_the_searchs_metric(metric, best, score):
    res = prepare(*disagreeing_search(metric))
    assert res.score == score
    assert best_id(res) == best
    assert ranked(res) == (["val", "mid", "train"] if best == "val" else ["train", "mid", "val"])


def test_a_train_loss_search_recommends_its_train_loss_winner():
    r = quick_report(*disagreeing_search("train_loss"))
    s = r.findings.summary
    assert s.best_trial == "train" and s.metric == "train_loss"
    assert s.best_value == pytest.approx(1.20, abs=1e-6)
    assert "**Best train_loss: 1.200** — trial `train`" in r.markdown
    lb = r.findings.leaderboard
    assert list(lb.table["trial_id"]) == ["train", "mid", "val"] and lb.metric == "train_loss"
    assert "| best train_loss | train_loss @ " in r.markdown
    assert r.files["best_config.yaml"].startswith("# Best trial of search 'disagree': train "
                                                  "(best train_loss 1.2000)")
    assert r.findings.next.trial_id == "train"
    zh = quick_report(*disagreeing_search("train_loss"), lang="zh").markdown
    assert "**最佳 train_loss：1.200** —— 试验 `train`" in zh


def test_a_val_loss_search_still_says_val_loss():
    r = quick_report(*disagreeing_search("val_loss"))
    assert r.findings.summary.best_trial == "val"
    assert "**Best val_loss: 1.500** — trial `val`" in r.markdown


def test_best_train_loss_comes_from_the_table_or_else_from_the_curves():
    trials, curves, meta = disagreeing_search("train_loss")
    assert "best_train_loss" not in trials  # a table from before the column existed
    res = prepare(trials, curves, meta)
    assert res.trials.at["train", "best_train_loss"] == pytest.approx(1.20)
    trials["best_train_loss"] = [1.0, 2.0, 3.0]  # the table's own value wins
    assert best_id(prepare(trials, curves, meta)) == "val"


def test_meta_may_be_a_search_meta_or_an_old_dict():
    trials, curves, meta = disagreeing_search("train_loss")
    typed = SearchMeta.from_dict(meta)
    assert prepare(trials, curves, typed).meta is typed
    old = {**meta, "written_by": "tune-gpt 0.0.1", "max_tokens": 5}  # keys this version lacks
    res = prepare(trials, curves, old)
    assert isinstance(res.meta, SearchMeta) and res.meta.metric == "train_loss"
    assert quick_report(trials, curves, typed).markdown == quick_report(trials, curves, old).markdown
    bare = prepare(trials, curves, None)
    assert bare.meta == SearchMeta() and bare.name == "search" and best_id(bare) == "val"


def test_empty_tables_rank_nothing():
    res = prepare(pd.DataFrame(), pd.DataFrame(), {"metric": "train_loss"})
    assert ranked(res) == [] and best_id(res) is None
    assert math.isnan(quick_report(pd.DataFrame(), pd.DataFrame(), {}).findings.summary.best_value)


# ----------------------------------------------------------------------------- fallbacks said

def notes(capsys) -> list[str]:
    """The `note:` lines printed to stderr since the last call."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]


def test_a_table_that_lacks_what_the_report_reads_is_said_once(capsys):
    trials, curves, meta = disagreeing_search("train_loss")  # no best_train_loss column
    notes(capsys)
    res = prepare(trials, curves, meta)
    said = notes(capsys)
    lacking = [n for n in said if n.startswith("note: the trials table has no column ")]
    assert len(lacking) == 1 and "best_train_loss" in lacking[0]
    assert lacking[0].endswith(": read as empty")
    assert "note: the trials table lacks 3 best_train_loss value(s): taken from the trials' " \
           "curves" in said
    assert res.trials.at["train", "best_train_loss"] == pytest.approx(1.20)


def test_duplicate_stray_and_unnamed_rows_are_said(capsys):
    trials, curves, meta = disagreeing_search("val_loss")
    trials = pd.concat([trials, trials.iloc[[0]]], ignore_index=True)  # "val" twice
    trials.loc[1, "trial_id"] = ""                                     # "train" unnamed
    notes(capsys)
    res = prepare(trials, curves, meta)
    said = notes(capsys)
    assert "note: trial(s) val appear more than once in the trials table: the last row of " \
           "each is kept" in said
    assert "note: 1 row(s) of the trials table have no trial_id: named trial_0 onwards" in said
    assert "note: the curves of trial(s) 'train' are left out: the trials table has no such " \
           "trial" in said
    assert sorted(res.trials.index) == ["mid", "trial_0", "val"]


def test_a_knob_value_the_config_rejects_is_left_out_and_said_once(capsys):
    trials, curves, meta = disagreeing_search("val_loss")
    trials["dropout"] = ["lots", 0.1, 0.0]
    res = prepare(trials, curves, meta)
    notes(capsys)
    for _ in range(3):  # every section of a report asks: said the first time only
        assert "dropout" not in res.knobs("val") and res.knobs("train")["dropout"] == 0.1
    said = notes(capsys)
    assert len(said) == 1 and said[0].startswith("note: trial val: ") and "'lots'" in said[0]
    assert said[0].endswith("dropout is left out of its config")


def test_a_complete_table_needs_no_note(capsys):
    trials, curves, meta = disagreeing_search("val_loss")
    full = prepare(trials, curves, meta).trials.reset_index(drop=True)  # every column filled
    notes(capsys)
    prepare(full, curves, meta)
    assert notes(capsys) == []
