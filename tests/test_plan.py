"""`tune-gpt plan`: a search's measurements brought to a longer run, with its evidence, and
refused past what the search measured (a results folder written here, no search run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from tune_gpt.config import TrainConfig
from tune_gpt.errors import UserError
from tune_gpt.report.folder import plan_run as make_plan


def _law(E: float, A: float, alpha: float, t: float) -> float:
    return E + A * t ** -alpha


def _results(folder: Path, tpi: int = 768) -> Path:
    """A finished search of two configs: evaluations every 250k tokens up to 2M."""
    res = folder / "runs" / "s" / "results"
    res.mkdir(parents=True)
    trials, curves = [], []
    for tid, (E, lr, emb) in {"a": (1.30, 1e-3, 192), "b": (1.45, 2e-3, 128)}.items():
        knobs = {**TrainConfig(n_embd=emb, batch_size=12, block_size=64, learning_rate=lr,
                               min_lr=lr / 10, max_iters=2604, lr_decay_iters=2604,
                               warmup_iters=100).to_dict(), "dataset": "shakespeare_char"}
        pts = [(k * 250_000, _law(E, 30.0, 0.3, k * 250_000)) for k in range(1, 9)]
        trials.append({"trial_id": tid, "outcome": "completed", **knobs,
                       "best_val_loss": pts[-1][1], "final_val_loss": pts[-1][1],
                       "tokens": 2_000_000, "tokens_per_iter": tpi, "wall_s": 300})
        curves += [{"trial_id": tid, "iter": t // tpi, "tokens": t, "val_loss": v,
                    "train_loss": v} for t, v in pts]
    pd.DataFrame(trials).to_csv(res / "trials.csv", index=False)
    pd.DataFrame(curves).to_csv(res / "curves.csv", index=False)
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss"}))
    return res


def test_a_plan_brings_the_best_config_to_the_horizon(tmp_path: Path) -> None:
    _results(tmp_path)
    p = make_plan("s", 16_000_000, storage_path=str(tmp_path / "runs"))
    assert p.trial_id == "a" and p.requested == 16_000_000
    assert p.tokens == p.config["max_iters"] * 768 and abs(p.tokens - 16e6) < 768
    assert p.config["lr_decay_iters"] == p.config["max_iters"]
    # 8x the trial's planned tokens: lr x 8^-0.32
    assert p.learning_rate == pytest.approx(1e-3 * (p.tokens / (2604 * 768)) ** -0.32)
    end = _law(1.30, 30.0, 0.3, 2_000_000)
    assert p.predicted == pytest.approx(end * (2e6 / p.tokens) ** 0.10, rel=1e-3)
    lo, hi = p.interval
    assert lo < p.predicted < hi
    assert any("Bjorck" in e for e in p.evidence) and "seed noise 0.0129" in p.noise


def test_the_interval_widens_with_how_far_the_plan_goes_by_the_measured_spread(
        tmp_path: Path) -> None:
    """The horizon rule's doubt is not one fixed figure: it is the loss x ln(D / D_end) x the
    spread of the exponent that the measured runs on the development corpora took (their RMS
    distance from the rule's 0.10), so a plan 8x out gets a wider interval than one 2x out."""
    from tune_gpt import horizon

    _results(tmp_path)
    near = make_plan("s", 4_000_000, storage_path=str(tmp_path / "runs"))
    far = make_plan("s", 16_000_000, storage_path=str(tmp_path / "runs"))
    half = {k: (p.interval[1] - p.interval[0]) / 2 for k, p in (("near", near), ("far", far))}
    assert half["near"] < half["far"]
    taken = [horizon.exponent_taken(r) for r in horizon.EXPONENT_RUNS]
    # one degree of freedom went into DATA_EXPONENT, read off the first run
    sd = math.sqrt(sum((a - horizon.DATA_EXPONENT) ** 2 for a in taken) / (len(taken) - 1))
    assert horizon.EXPONENT_SD == pytest.approx(sd) and len(taken) >= 4
    assert min(taken) < 0.05 < 0.08 < max(taken)  # licenses' overfitting run is counted
    for k, p in (("near", near), ("far", far)):
        law = p.predicted * math.log(p.tokens / 2_000_000) * sd  # from its last evaluation
        assert law == pytest.approx(horizon.law_sd(p.predicted, 2_000_000, p.tokens))
        assert 1.96 * law < half[k] < 4.5 * math.hypot(law, 0.0129)
        # exactly: Student's t at Welch-Satterthwaite's dof (the seed noise's 5, the
        # exponent's len(runs) - 1) times the root of the two variances
        ws = (0.0129 ** 2 + law ** 2) ** 2 / (0.0129 ** 4 / 5 + law ** 4 / (len(taken) - 1))
        assert half[k] == pytest.approx(stats.t.ppf(0.975, ws) * math.hypot(law, 0.0129),
                                        rel=1e-6)
    # within the evidence the rule adds no doubt: the seed noise alone, t at its 5 dof
    from tune_gpt.plan import half_interval
    assert half_interval(1.5, 2e6, 2e6, 0.0129, 5)[0] == pytest.approx(2.5706 * 0.0129,
                                                                       rel=1e-4)
    # python_stdlib's plan (a report corpus) missed by 0.19 at 8x: inside an 8x interval now
    assert half["far"] > 0.19
    assert f"(they took {min(taken):.3f}-{max(taken):.3f})" in far.noise


def test_on_a_small_corpus_the_plan_predicts_where_its_model_starts_to_overfit(
        tmp_path: Path) -> None:
    """The search's meta says how big the training split was (the data doctor's n_train):
    a model that reads 300k tokens dozens of times is predicted where it starts to overfit
    (tune_gpt.horizon.overfit_onset), not as if every token still helped, and says so."""
    res = _results(tmp_path)
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss",
                                               "data_doctor": {"n_train": 300_000}}))
    p = make_plan("s", 16_000_000, storage_path=str(tmp_path / "runs"))
    from tune_gpt.horizon import overfit_onset
    layers = TrainConfig().n_layer  # 4
    onset = {"a": overfit_onset(300_000, layers, 192), "b": overfit_onset(300_000, layers, 128)}
    assert 2e6 < onset["a"] < onset["b"] < 16e6  # 3.05M and 6.9M tokens
    end = {k: _law(E, 30.0, 0.3, 2_000_000) for k, E in (("a", 1.30), ("b", 1.45))}
    pred = {k: end[k] * (2e6 / onset[k]) ** 0.10 for k in end}
    assert p.trial_id == min(pred, key=pred.get) == "a"
    assert p.predicted == pytest.approx(pred["a"], rel=1e-6)
    assert p.predicted > end["a"] * (2e6 / p.tokens) ** 0.10 + 0.05  # the old, hopeful one
    assert p.tokens == p.config["max_iters"] * 768 and abs(p.tokens - 16e6) < 768
    assert any("starts to overfit this training split" in e for e in p.evidence)
    assert any(f"brought to {int(onset['a']):,} as L_end" in e for e in p.evidence)


def test_a_plan_past_its_evidence_is_refused_with_how_far_it_can_go(tmp_path: Path) -> None:
    _results(tmp_path)
    with pytest.raises(UserError, match="plan at most --tokens 20,000,000") as e:
        make_plan("s", 25_000_000, storage_path=str(tmp_path / "runs"))
    assert "\n" not in str(e.value)


def test_a_report_folder_is_planned_from_its_searchs_tables_or_says_where_they_are(
        tmp_path: Path) -> None:
    """`tune-gpt plan reports/NAME`: the search NAME's tables under the runs folder; a report
    whose search ran elsewhere (the committed example) says so in one line."""
    from tune_gpt.report.folder import results_of

    res = _results(tmp_path)
    report = tmp_path / "reports" / "s"
    report.mkdir(parents=True)
    (report / "report.md").write_text("# s\n")
    assert results_of(str(report), str(tmp_path / "runs")) == res
    with pytest.raises(UserError, match=r"is a report; its search's tables .*other.*--storage-path"
                       ) as e:
        results_of(str(tmp_path / "reports" / "s"), str(tmp_path / "other"))
    assert "\n" not in str(e.value)


def test_a_plan_past_its_evidence_is_refused_even_where_the_model_would_overfit(
        tmp_path: Path) -> None:
    """On a small corpus the loss is predicted at the overfit onset, within the evidence; the
    run's length (and the lr moved to it) is not, so 10x the curves is still the limit."""
    res = _results(tmp_path)
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss",
                                               "data_doctor": {"n_train": 300_000}}))
    with pytest.raises(UserError, match="plan at most --tokens 20,000,000"):
        make_plan("s", 10 ** 12, storage_path=str(tmp_path / "runs"))
    # and too short to train one step: said, not a traceback (0 tokens ** -alpha)
    with pytest.raises(UserError, match="less than one iteration .*768 tokens"):
        make_plan("s", 500, storage_path=str(tmp_path / "runs"))


def test_the_plan_keeps_the_searched_schedule_shape_and_says_what_it_trains(
        tmp_path: Path) -> None:
    """One rule for the decay's end (schedule.stretched_decay): a space whose decay ends at
    80% of the run keeps that share in the plan, as in a transfer and a retimed run; a WSD
    cool-down is counted as the schedule counts it; a constant rate says it has no warmup."""
    from tune_gpt.schedule import cooldown_start, stretched_decay
    from tune_gpt.transfer import to_target

    res = _results(tmp_path)
    t = pd.read_csv(res / "trials.csv")
    t["lr_decay_iters"] = 2083
    t["lr_schedule"], t["warmup_iters"] = "wsd", 100
    t.to_csv(res / "trials.csv", index=False)
    p = make_plan("s", 16_000_000, storage_path=str(tmp_path / "runs"))
    iters = p.config["max_iters"]
    assert p.config["lr_decay_iters"] == round(2083 * iters / 2604) == \
        stretched_decay(2083, 2604, iters)
    cfg = TrainConfig(**{k: p.config[k] for k in ("max_iters", "lr_decay_iters",
                                                  "warmup_iters", "cooldown_frac")})
    assert p.cooldown_iters == cfg.lr_decay_iters - cooldown_start(cfg)
    assert f"cool-down over the last {p.cooldown_iters:,} iterations" in p.text()
    proxy = TrainConfig(max_iters=1000, lr_decay_iters=800).to_dict()
    assert to_target(proxy, {"max_iters": 5000})[0].lr_decay_iters == 4000
    t["decay_lr"] = False
    t.to_csv(res / "trials.csv", index=False)
    const = make_plan("s", 16_000_000, storage_path=str(tmp_path / "runs"))
    assert "constant: learning_rate from the first step" in const.text()
    assert "warmup iterations" not in const.text()


def test_the_plan_judges_noise_as_the_report_does(tmp_path: Path) -> None:
    """A confirm spread below judge.FLOOR is taken at the floor, as the report takes it."""
    from tune_gpt.judge import FLOOR

    res = _results(tmp_path)
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss",
                                               "confirm": {"noise": 0.002, "dof": 3}}))
    p = make_plan("s", 4_000_000, storage_path=str(tmp_path / "runs"))
    assert f"seed noise {FLOOR:.4f} from this search's confirm runs, 3 dof" in p.noise


def test_the_search_s_final_run_is_the_plan_s_longest_evidence(tmp_path: Path) -> None:
    """A search with a final phase trained one config far past its trials (~15M tokens
    against ~1M on a CPU): `plan` takes that run as a measured config too, so it plans from
    the longest curve the search has, and may go 10x past it, not only past the trials."""
    res = _results(tmp_path)
    cfg = {**TrainConfig(n_embd=192, batch_size=12, block_size=64, learning_rate=5e-4,
                         min_lr=5e-5, max_iters=10_416, lr_decay_iters=10_416,
                         warmup_iters=100, lr_schedule="wsd").to_dict(),
           "dataset": "shakespeare_char"}
    pts = [(k * 1_000_000, _law(1.30, 30.0, 0.3, k * 1_000_000) - 0.02) for k in range(3, 9)]
    final = {"trial_id": "f1", "of": "a", "config": cfg, "best_val_loss": pts[-1][1],
             "final_val_loss": pts[-1][1], "tokens": 8e6, "wall_s": 900.0,
             "curve": [{"tokens": t, "val_loss": v, "train_loss": v} for t, v in pts],
             "retimed": {"max_iters": 10_500, "learning_rate": 4.8e-4}}
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss",
                                               "final": final}))
    p = make_plan("s", 40_000_000, storage_path=str(tmp_path / "runs"))  # 20x the trials
    assert p.trial_id == "f1" and "the search's final run" in p.evidence[0]
    # its lr moved from what the run trained with (retimed: 4.8e-4 over 10,500 iterations)
    assert p.learning_rate == pytest.approx(4.8e-4 * (p.tokens / (10_500 * 768)) ** -0.32)
    assert p.predicted == pytest.approx(pts[-1][1] * (8e6 / p.tokens) ** 0.10, rel=1e-3)
    with pytest.raises(UserError, match="plan at most --tokens 80,000,000"):
        make_plan("s", 90_000_000, storage_path=str(tmp_path / "runs"))
    # the report's "For your full run" starts from that run too: 8x its 8M tokens, 64M
    from tune_gpt.report.folder import load_results
    from tune_gpt.report.i18n import translator
    from tune_gpt.report.render import _full_run
    from tune_gpt.report.results import prepare

    text = "\n".join(_full_run(prepare(*load_results(res)), translator("en")))
    assert "tune-gpt plan s --tokens 64000000" in text and "its final run" in text
    assert "refuses lengths past 80.0M tokens" in text
    # a final run cut before its first evaluation adds nothing
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss", "final": {
        **final, "curve": [], "trained_nothing": True}}))
    with pytest.raises(UserError, match="plan at most --tokens 20,000,000"):
        make_plan("s", 40_000_000, storage_path=str(tmp_path / "runs"))


def test_the_command_writes_ready_configs_and_json(tmp_path: Path) -> None:
    _results(tmp_path)
    out = tmp_path / "plans"
    run = subprocess.run([sys.executable, "-m", "tune_gpt.cli", "plan", "s", "--tokens", "10M",
                          "--storage-path", str(tmp_path / "runs"), "--out", str(out), "--json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["trial_id"] == "a" and math.isfinite(got["predicted"])
    assert sorted(p.name for p in out.iterdir()) == ["plan-10M.yaml", "plan-10M_nanogpt.py"]
    import yaml

    knobs = yaml.safe_load((out / "plan-10M.yaml").read_text())
    assert knobs["learning_rate"] == pytest.approx(got["learning_rate"])
    TrainConfig(**{k: v for k, v in knobs.items() if k in TrainConfig().to_dict()})
    assert "learning_rate = " in (out / "plan-10M_nanogpt.py").read_text()
    bad = subprocess.run([sys.executable, "-m", "tune_gpt.cli", "plan", "s", "--tokens", "1B",
                          "--storage-path", str(tmp_path / "runs"), "--out", str(out)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_report_says_what_the_full_run_takes(tmp_path: Path, lang: str) -> None:
    from tune_gpt.report.folder import load_results
    from tune_gpt.report.i18n import translator
    from tune_gpt.report.render import _full_run
    from tune_gpt.report.results import prepare

    res = prepare(*load_results(_results(tmp_path)))
    text = "\n".join(_full_run(res, translator(lang)))
    assert "tune-gpt plan s --tokens 16000000" in text  # 8x the 2M-token trials
    p = make_plan("s", 16_000_000, storage_path=str(tmp_path / "runs"))
    assert f"{p.learning_rate:.3g}" in text and f"{p.predicted:.3f}" in text
