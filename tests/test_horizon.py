"""The horizon rules (tune_gpt/horizon.py): curve fit and its reach, the lr rule, the choice
of the final config, and the rule that ends exploring."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from tune_gpt import explore, horizon
from tune_gpt.settings import Budget


def _law(E: float, A: float, alpha: float, tokens: list[float]) -> list[float]:
    return [E + A * t ** -alpha for t in tokens]


def test_a_power_law_is_recovered_and_predicted() -> None:
    t = [250e3 * k for k in range(1, 9)]
    curve = horizon.fit_curve(t, _law(1.2, 40.0, 0.35, t))
    assert curve.fitted and curve.points == 8
    assert curve.alpha == pytest.approx(0.35, abs=0.02)
    # within the evidence: the fit
    assert curve.predict(1e6) == pytest.approx(_law(1.2, 40.0, 0.35, [1e6])[0], abs=0.005)
    # past it: from where the run ended, by the measured exponent (not the fit)
    end = _law(1.2, 40.0, 0.35, [2e6])[0]
    assert curve.predict(10e6) == pytest.approx(end * 5 ** -horizon.DATA_EXPONENT)


def test_the_horizon_rule_reproduces_its_measurements() -> None:
    # nanoGPT's CPU recipe: six 1.5M-token runs (mean 1.908) -> 1.522 measured at 13.8M
    curve = horizon.fit_curve([0.768e6, 1.536e6], [2.05, 1.908])
    assert curve.predict(13.8e6) == pytest.approx(1.522, abs=0.012)  # 1.532: 0.10, not 0.103
    # the beginner search's prior, 1.711 at 2.0M -> 1.581 measured at 4.38M
    prior = horizon.fit_curve([1e6, 2.0e6], [1.85, 1.711])
    assert prior.predict(4.38e6) == pytest.approx(1.581, abs=0.005)


def test_a_prediction_past_its_evidence_is_refused() -> None:
    t = [1e5, 2e5, 3e5, 4e5]
    curve = horizon.fit_curve(t, _law(1.5, 20.0, 0.4, t))
    assert curve.reach() == pytest.approx(4e6)
    curve.predict(4e6)  # at the limit: fine
    with pytest.raises(ValueError, match="more than 10x"):
        curve.predict(4.1e6)


def test_too_few_points_give_a_flat_curve_that_says_so() -> None:
    curve = horizon.fit_curve([1e5, 2e5], [2.5, 2.2])
    assert not curve.fitted and curve.predict(1.5e5) == 2.2
    assert curve.predict(1e6) == pytest.approx(2.2 * 5 ** -horizon.DATA_EXPONENT)
    with pytest.raises(ValueError):
        horizon.fit_curve([1e5], [math.nan])


def test_the_lr_rule_is_bjorck_et_al() -> None:
    # 8x the tokens: 8^-0.32 = 0.514
    assert horizon.lr_for_tokens(1e-3, 2e6, 16e6) == pytest.approx(1e-3 * 8 ** -0.32)
    assert horizon.lr_for_tokens(1e-3, 2e6, 16e6) == pytest.approx(5.14e-4, rel=1e-3)
    assert horizon.lr_for_tokens(1e-3, 2e6, 2e6) == pytest.approx(1e-3)
    assert horizon.lr_for_tokens(1e-3, 0, 2e6) == 1e-3  # nothing to move it from


def _search(rows: list[dict], laws: dict[str, tuple[float, float, float]]) -> tuple:
    curves = []
    for r in rows:
        t = [250e3 * k for k in range(1, 9)]
        curves += [{"trial_id": r["trial_id"], "tokens": x, "val_loss": v}
                   for x, v in zip(t, _law(*laws[r["trial_id"]], t))]
    return pd.DataFrame(curves)


def _row(tid: str, tokens_per_s: float, loss: float) -> dict:
    return {"trial_id": tid, "outcome": "completed", "best_val_loss": loss, "tokens": 2e6,
            "wall_s": 2e6 / tokens_per_s, "tokens_per_iter": 768}


def _knobs(lr: float) -> dict:
    return {"batch_size": 12, "block_size": 64, "max_iters": 2604, "learning_rate": lr,
            "min_lr": lr / 10, "warmup_iters": 100, "lr_decay_iters": 2604}


def test_the_final_config_is_the_best_at_the_horizon_not_at_the_trials_length() -> None:
    # "big" is better at the trials' 2M tokens (1.686 against 1.705), but "small" runs 3x
    # as fast: in the same seconds it sees 3x the tokens, and brought that far it wins
    laws = {"big": (1.30, 30.0, 0.30), "small": (1.319, 30.0, 0.30)}
    end = {k: _law(*v, [2e6])[0] for k, v in laws.items()}
    rows = [_row("big", 5000, end["big"]), _row("small", 15000, end["small"])]
    curves = _search(rows, laws)
    configs = {"big": _knobs(1e-3), "small": _knobs(2e-3)}

    def seconds(s: float):
        return lambda row, rate: s * rate

    short = horizon.plan_final(rows, curves, configs, tokens_for=seconds(1000), seconds=1000)
    assert short is not None
    by = {c.trial_id: c for c in short.candidates}
    assert by["small"].tokens == pytest.approx(3 * by["big"].tokens, rel=0.01)
    assert end["big"] < end["small"] and short.trial_id == "small"
    for tid, c in by.items():
        assert c.predicted == pytest.approx(end[tid] * (2e6 / c.tokens) ** horizon.DATA_EXPONENT,
                                            rel=1e-3)
    # the final run's schedule and lr are for its own length
    assert short.config["max_iters"] == short.tokens // 768
    assert short.config["lr_decay_iters"] == short.config["max_iters"]
    assert short.lr == pytest.approx(2e-3 * (short.tokens / (2604 * 768)) ** -0.32)
    assert short.config["min_lr"] == pytest.approx(short.lr / 10)
    assert short.predicted == pytest.approx(by["small"].predicted)
    assert any("Bjorck" in line for line in short.lines())


def test_the_overfitting_onset_is_sixty_epochs_per_tokens_per_parameter() -> None:
    # licenses: 226,312 training tokens; 4x192 has N = 12 * 4 * 192^2 = 1,769,472, so D/N
    # 0.128 and the onset 7.7 epochs of it, 1.74M tokens; 4x128 lasts 2.25x as long
    assert horizon.non_embedding_params(4, 192) == 1_769_472
    onset = horizon.overfit_onset(226_312, 4, 192)
    assert onset == pytest.approx(60 * 226_312 / 1_769_472 * 226_312)
    assert onset == pytest.approx(1.737e6, rel=1e-3)
    assert horizon.overfit_onset(226_312, 4, 128) == pytest.approx(onset * 2.25)
    assert horizon.overfit_onset(None, 4, 192) is None
    assert horizon.overfit_onset(226_312, None, 192) is None


def test_a_prediction_stops_where_the_config_starts_to_overfit() -> None:
    """On a small training split, more tokens past the onset buy nothing: the loss is
    predicted at the onset (and a horizon past a curve's reach can then be predicted); on
    a large one, or with the split's size unknown, at the horizon as before."""
    laws = {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3)}
    rows = [_row("a", 5000, 1.6), _row("b", 5000, 1.7)]
    curves = _search(rows, laws)
    knobs = {"a": {**_knobs(1e-3), "n_layer": 4, "n_embd": 192},
             "b": {**_knobs(1e-3), "n_layer": 4, "n_embd": 128}}
    end = {k: _law(*v, [2e6])[0] for k, v in laws.items()}
    small = 500_000  # 4x192 starts to overfit after 8.5M tokens of it, 4x128 after 19M
    onset = {k: horizon.overfit_onset(small, 4, knobs[k]["n_embd"]) for k in knobs}
    for horizon_tokens in (16e6, 40e6):  # 40M: past both curves' reach (20M)
        plan = horizon.plan_final(rows, curves, knobs, tokens_for=lambda r, s: horizon_tokens,
                                  train_tokens=small)
        assert plan is not None
        by = {c.trial_id: c for c in plan.candidates}
        for k, c in by.items():
            at = min(horizon_tokens, onset[k])
            assert c.onset == pytest.approx(onset[k])
            assert c.predicted == pytest.approx(end[k] * (2e6 / at) ** horizon.DATA_EXPONENT,
                                                rel=1e-5)  # the horizon in whole iterations
        assert plan.trial_id == min(by, key=lambda k: by[k].predicted)
        assert plan.predicted == pytest.approx(by[plan.trial_id].predicted)
        capped = onset[plan.trial_id] < horizon_tokens
        assert ("starts to overfit this training split" in plan.lines()[0]) == capped
    # at 16M the narrower 4x128, which lasts longer, is chosen over the 4x192 that is better
    # at the trials' length (the guide's overfitting remedy: a smaller model); at 40M both
    # stop at their onsets and the 4x128's later one still wins, which the plan says
    assert [horizon.plan_final(rows, curves, knobs, tokens_for=lambda r, s: t,
                               train_tokens=small).trial_id for t in (16e6, 40e6)] == ["b", "b"]
    # the split's size unknown, or large: predicted at the horizon, as before
    for split in (None, 50e6):
        plan = horizon.plan_final(rows, curves, knobs, tokens_for=lambda r, s: 16e6,
                                  train_tokens=split)
        assert plan is not None and plan.trial_id == "a"
        assert plan.predicted == pytest.approx(end["a"] * (2e6 / 16e6) ** horizon.DATA_EXPONENT,
                                               rel=1e-5)
        assert "overfit" not in plan.lines()[0]


def test_beyond_every_curve_the_best_measured_is_trained_and_nothing_predicted() -> None:
    laws = {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3)}
    rows = [_row("a", 5000, 1.6), _row("b", 5000, 1.7)]
    plan = horizon.plan_final(rows, _search(rows, laws), {"a": _knobs(1e-3), "b": _knobs(1e-3)},
                              tokens_for=lambda row, rate: 100e6)  # 50x a trial
    assert plan is not None and plan.trial_id == "a" and plan.predicted is None
    assert "nothing is predicted" in plan.lines()[0]


def test_no_usable_trial_no_plan() -> None:
    rows = [{**_row("a", 5000, 1.6), "outcome": "oom"}]
    laws = {"a": (1.3, 30.0, 0.3)}
    assert horizon.plan_final(rows, _search(rows, laws), {"a": _knobs(1e-3)},
                              tokens_for=lambda row, rate: 4e6) is None


def test_exploring_gets_its_share_of_every_budget() -> None:
    b = Budget(time_budget_s=840, total_tokens=10_000_000, total_flops=None)
    assert explore.explore_budget(b, 0.5) == {"time_budget_s": 420, "total_tokens": 5e6,
                                              "total_flops": None}
    assert explore.default_patience(3, 5) == 5 and explore.default_patience(3, 1) == 3
    assert explore.default_patience(1, 0) == 2


def test_settled_counts_challengers_beaten_at_the_same_rung() -> None:
    rule = explore.Settled(patience=3, rungs=[100, 300, 900])
    assert not rule.observe("lead", {"tokens": 100, "val_loss": 2.0})
    assert not rule.observe("lead", {"tokens": 300, "val_loss": 1.8})
    # a challenger worse at rung 100: one; a second report at the same rung is not counted
    assert not rule.observe("c1", {"tokens": 100, "val_loss": 2.1})
    assert not rule.observe("c1", {"tokens": 150, "val_loss": 1.0})
    assert rule.beaten == 1
    # a challenger at a rung the leader has not reached is not compared
    rule.observe("c1", {"tokens": 900, "val_loss": 1.5})
    assert rule.beaten == 1
    # a better challenger takes the lead and the count starts again
    rule.observe("c2", {"tokens": 100, "val_loss": 1.9})
    assert rule.leader == "c2" and rule.beaten == 0
    for i, loss in enumerate([2.0, 2.2, 2.5]):
        done = rule.observe(f"d{i}", {"tokens": 100, "val_loss": loss})
    assert done and rule.settled()
    # NaN or missing values never count
    fresh = explore.Settled(patience=1, rungs=[100])
    fresh.observe("a", {"tokens": 100, "val_loss": 1.0})
    assert not fresh.observe("b", {"tokens": 100, "val_loss": math.nan})
    assert not explore.Settled(patience=0, rungs=[100]).settled()


def test_a_continued_trial_counts_what_it_already_trained() -> None:
    laws = {"big": (1.30, 30.0, 0.30), "small": (1.40, 30.0, 0.30)}
    rows = [_row("big", 5000, 1.30 + 30 * 2e6 ** -0.3), _row("small", 15000, 1.40 + 30 * 2e6 ** -0.3)]
    curves = _search(rows, laws)
    configs = {"big": _knobs(1e-3), "small": _knobs(2e-3)}
    fresh = horizon.plan_final(rows, curves, configs, tokens_for=lambda row, rate: 100 * rate)
    kept = horizon.plan_final(rows, curves, configs, tokens_for=lambda row, rate: 100 * rate,
                              continues=lambda tid: True)
    assert fresh is not None and kept is not None
    # 100 s buys big 0.5M tokens: fresh, small's 1.5M win; continued, big has 2M + 0.5M
    assert fresh.trial_id == "small" and fresh.start_tokens == 0
    assert kept.trial_id == "big" and kept.start_tokens == 2_000_000 // 768 * 768
    new = 100 * 5000 // 768 * 768
    assert kept.tokens == kept.start_tokens + new
    assert kept.config["max_iters"] == kept.tokens // 768
    end = _law(1.30, 30.0, 0.30, [2e6])[0]
    assert kept.predicted == pytest.approx(end * (2e6 / kept.tokens) ** horizon.DATA_EXPONENT,
                                           rel=1e-3)
    assert kept.lr == pytest.approx(1e-3 * (kept.tokens / (2604 * 768)) ** -0.32)
    lines = kept.lines()
    assert any("continues trial big's own state" in x for x in lines)
    assert any(f"{new:,} tokens to train ({kept.tokens:,} in all)" in x for x in lines)


def test_a_trial_without_a_measured_speed_or_with_a_restarted_clock() -> None:
    laws = {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3)}
    rows = [_row("a", 5000, 1.6), _row("b", 5000, 1.7)]
    rows[0].update(wall_s=math.nan, tokens_per_s=math.nan)   # no speed: left out, no crash
    rows[1].update(wall_s=20.0, tokens_per_s=5000.0)         # a resumed clock: 100k tokens/s
    plan = horizon.plan_final(rows, _search(rows, laws), {"a": _knobs(1e-3), "b": _knobs(1e-3)},
                              tokens_for=lambda row, rate: 100 * rate)
    assert plan is not None and plan.trial_id == "b"
    by = {c.trial_id: c for c in plan.candidates}
    assert by["a"].note == "no measured speed" and by["b"].tokens_per_s == 5000.0


def test_no_tokens_left_leaves_a_trial_out_instead_of_crashing() -> None:
    """A budget spent before the final phase (confirm runs can use up a time budget) leaves
    every trial 0 tokens to train: no curve is evaluated at 0 tokens (0 ** -alpha), each
    trial says why it was left out, and there is no plan; a trial without a measured speed
    still gets a plan where its tokens do not depend on speed (`tune-gpt plan`)."""
    laws = {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3)}
    rows = [_row("a", 5000, 1.6), _row("b", 5000, 1.7)]
    knobs = {"a": _knobs(1e-3), "b": _knobs(1e-3)}
    assert horizon.plan_final(rows, _search(rows, laws), knobs,
                              tokens_for=lambda row, rate: 0.0, seconds=-30) is None
    cands = horizon.candidates(rows, _search(rows, laws), lambda row, rate: 0.0,
                               ("completed",), "best_val_loss")
    assert [c.note for c in cands] == ["no tokens left to train"] * 2
    with pytest.raises(ValueError, match="nothing trained"):
        horizon.fit_curve([1e5, 2e5, 3e5, 4e5], [2.0, 1.9, 1.85, 1.8]).predict(0)
    rows[0].update(wall_s=math.nan, tokens_per_s=math.nan)
    plan = horizon.plan_final(rows, _search(rows, laws), knobs,
                              tokens_for=lambda row, rate: 8e6)
    assert plan is not None and plan.trial_id == "a" and plan.predicted is not None


def test_failed_trials_are_no_challengers_beaten() -> None:
    rule = explore.Settled(patience=1, rungs=[100])
    rule.observe("lead", {"tokens": 100, "val_loss": 2.0})
    assert not rule.observe("x", {"tokens": 100, "val_loss": 5.2, "outcome": "diverged"})
    assert rule.observe("y", {"tokens": 100, "val_loss": 2.1, "outcome": "running"})


def test_the_final_run_takes_every_slot_and_its_speed_up_says_what_that_buys() -> None:
    from types import SimpleNamespace

    from tune_gpt.search.final import final_resources, has_prior, json_safe

    cpu = SimpleNamespace(resources={"cpu": 1.0, "gpu": 0.0})
    assert final_resources(cpu, 2) == ({"cpu": 2.0, "gpu": 0.0}, 2 * horizon.FINAL_EFFICIENCY)
    assert final_resources(cpu, 1) == ({"cpu": 1.0, "gpu": 0.0}, 1.0)
    # four trials sharing one GPU: the final run gets the whole GPU; two whole-GPU trials:
    # the final run still gets one GPU, so no speed-up is assumed
    quarter = SimpleNamespace(resources={"cpu": 4.0, "gpu": 0.25})
    assert final_resources(quarter, 4)[0]["gpu"] == 1.0
    assert final_resources(SimpleNamespace(resources={"cpu": 4.0, "gpu": 1.0}), 2)[1] == 1.0
    assert json_safe({"a": [math.inf, 1.0], "b": math.nan}) == {"a": [None, 1.0], "b": None}
    from tune_gpt.space import load_space
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "search_spaces"
    assert has_prior(load_space(root / "beginner.yaml", profile="cpu"))
    assert not has_prior(load_space(root / "smoke.yaml"))


def test_the_prior_trial_is_found_by_its_knobs_when_a_resume_reordered_the_table() -> None:
    """After `tune-gpt resume`, Ray's restored experiment lists trials in the order its
    state first saved them, so the recipe can come second: the prior is the row at the
    priors."""
    from pathlib import Path

    from tune_gpt.search.final import first_trial, make_plan
    from tune_gpt.space import auto_priors, load_space

    root = Path(__file__).resolve().parents[1] / "search_spaces"
    space = load_space(root / "beginner.yaml", profile="cpu")
    auto_priors.resolve(space, 1_003_854, "cpu")  # tinyshakespeare: 4x192, dropout 0
    prior = {"batch_size": 12, "learning_rate": 1e-3, "n_layer": 4, "n_embd": 192,
             "dropout": 0.0}
    beside = {"batch_size": 24, "learning_rate": 2.18e-3, "n_layer": 5, "n_embd": 128,
              "dropout": 0.0}
    near = {**prior, "learning_rate": 1.07e-3}  # drawn near the prior: not the prior
    rows = [{**_row("b", 5000, 1.7), **beside}, {**_row("n", 5000, 1.65), **near},
            {**_row("a", 5000, 1.6), **prior}]
    assert first_trial(rows, space) == "a"
    assert first_trial(rows) == "b"                       # no space: the table's order
    assert first_trial(rows[:2], space) == "b"            # no row at the priors: the same
    laws = {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3), "n": (1.35, 30.0, 0.3)}
    trials, curves = pd.DataFrame(rows), _search(rows, laws)
    configs = {t: _knobs(1e-3) for t in ("a", "b", "n")}
    saved = make_plan(space, trials, curves, configs, 65, explore_wall=200, slots=2)
    assert saved is not None and saved["prior_trial"] == "a"


def test_the_final_plan_of_a_time_budget_is_what_is_left_at_the_measured_speed(
        tmp_path) -> None:
    from pathlib import Path

    from tune_gpt.search.final import END_S, make_plan
    from tune_gpt.space import load_space

    smoke = Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml"
    space = load_space(smoke, sets=["final.explore_share=0.5", "budget.time_budget_s=600"])
    laws = {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3)}
    rows = [_row("a", 5000, 1.6), _row("b", 5000, 1.7)]
    trials, curves = pd.DataFrame(rows), _search(rows, laws)
    configs = {"a": _knobs(1e-3), "b": _knobs(1e-3)}
    saved = make_plan(space, trials, curves, configs, 65, explore_wall=200, slots=2)
    assert saved is not None and saved["left"]["seconds"] == 600 - 200 - END_S
    # the run refits its own length to the clock (retime.Retimer): until when, and no
    # token cap without a token or FLOP budget
    assert saved["retime"]["until"] == pytest.approx(time.time() + 600 - 200 - END_S, abs=5)
    assert saved["retime"]["max_iters"] == 0
    assert saved["resources"] == {"cpu": 2.0, "gpu": 0.0}
    new = (600 - 200 - END_S - horizon.STARTUP_S) * 5000 * 2 * horizon.FINAL_EFFICIENCY
    plan = saved["plan"]
    assert plan["start_tokens"] == 0  # no kept states given: it starts again
    assert abs(plan["tokens"] - new) <= 768
    assert saved["prior_trial"] is None and saved["first_trial"] == "a"  # smoke: no priors
    # with the trials' states kept, the chosen one is continued from where it stopped
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "b.pt").write_bytes(b"x")
    kept = make_plan(space, trials, curves, configs, 65, explore_wall=200, slots=2,
                     states=tmp_path)["plan"]
    assert kept["start_tokens"] == 2_000_000 // 768 * 768
    assert abs(kept["tokens"] - kept["start_tokens"] - new) <= 768
    # it evaluates (and saves) at least FINAL_EVALS times over what it trains, however
    # coarse the trials' interval: cut by its time limit, it still hands back its own model
    from tune_gpt.search.final import FINAL_EVALS

    for p, start in ((plan, 0), (kept, kept["start_tokens"] // 768)):
        trains = p["config"]["max_iters"] - start
        assert 1 <= p["config"]["eval_interval"] <= trains // FINAL_EVALS
    coarse = {t: {**c, "eval_interval": 10 ** 6} for t, c in configs.items()}
    saved = make_plan(space, trials, curves, coarse, 65, explore_wall=200, slots=2)
    assert saved["plan"]["config"]["eval_interval"] == \
        saved["plan"]["config"]["max_iters"] // FINAL_EVALS
    # a token budget as well: the clock may cut the run, the tokens left cap it
    both = load_space(smoke, sets=["final.explore_share=0.5", "budget.time_budget_s=600",
                                   "budget.total_tokens=10000000"])
    capped = make_plan(both, trials, curves, configs, 65, explore_wall=200, slots=2)
    assert capped["left"]["tokens"] == 10_000_000 - 2 * 2_000_000
    assert capped["retime"]["max_iters"] == (10_000_000 - 4_000_000) // 768


def test_a_trial_stopped_by_the_budget_or_by_exploring_s_end_says_so() -> None:
    from ray.tune.stopper import CombinedStopper

    from tune_gpt.search.budget import ExploreSettled, TokenBudget, stop_reason

    settle = ExploreSettled(1, [100], "tokens", "val_loss")
    tokens = TokenBudget(1000, "/nonexistent", "tokens")
    both = CombinedStopper(tokens, settle)
    assert stop_reason(both) is None
    settle("a", {"tokens": 100, "val_loss": 1.0})
    settle("b", {"tokens": 100, "val_loss": 2.0})
    assert stop_reason(both) == "exploring ended: the leading trial beat 1 challengers in a row"
    tokens("c", {"tokens": 2000})
    assert "budget" in stop_reason(tokens) and stop_reason(None) is None


def test_a_trial_s_speed_is_its_throughput_less_its_evaluations() -> None:
    # the beginner search's recipe trial: 6,415 tokens/s training, 13.7 of 357 s evaluating
    row = {"tokens_per_s": 6415.0, "tokens": 2_000_640, "wall_s": 357.3, "eval_s": 13.7}
    assert horizon.trial_speed(row) == pytest.approx(6415 * (1 - 13.7 / 357.3))
    assert horizon.trial_speed({"tokens": 1e6, "wall_s": 100.0}) == 10_000.0
    assert horizon.trial_speed({"tokens_per_s": math.nan}) == 0.0


def test_auto_explore_share_wastes_at_most_one_seed_spread() -> None:
    """The rule's worst case (nothing beats the first trial, which the final run continues)
    raises the final loss, by the data exponent, by exactly the reference seed spread's share
    of the loss; more slots waste more of exploring, so they get a smaller share."""
    from tune_gpt.judge import REFERENCE_SEED_NOISE as ref

    shares = {}
    for slots in (2, 3, 4, 8):
        share, why = explore.auto_explore_share(slots)
        wasted = share * (1 - 1 / slots)
        assert (1 - wasted) ** -horizon.DATA_EXPONENT - 1 == pytest.approx(ref.relative)
        assert f"{slots - 1} of {slots} trial slots" in why and ref.source in why
        shares[slots] = share
    assert shares[2] > shares[3] > shares[4] > shares[8]
    one, _ = explore.auto_explore_share(1)
    unknown, why = explore.auto_explore_share(None)
    restart, why_restart = explore.auto_explore_share(2, continues=False)
    assert one == unknown == restart == pytest.approx(shares[2] / 2)
    assert "max_concurrent_trials" in why and "starts again" in why_restart


def test_auto_explore_share_never_exceeds_half(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from tune_gpt import judge

    monkeypatch.setattr(judge, "REFERENCE_SEED_NOISE",
                        replace(judge.REFERENCE_SEED_NOISE, sd=0.5))  # a very noisy corpus
    assert explore.auto_explore_share(2)[0] == explore.MAX_EXPLORE_SHARE


def test_the_search_final_plan_sets_wsd_and_says_why() -> None:
    laws = {"a": (1.3, 30.0, 0.3)}
    rows = [_row("a", 5000, 1.6)]
    curves, configs = _search(rows, laws), {"a": _knobs(1e-3)}
    plan = horizon.plan_final(rows, curves, configs, tokens_for=lambda r, rate: 8e6,
                              continues=lambda tid: True, schedule=horizon.FINAL_SCHEDULE)
    assert plan.config["lr_schedule"] == "wsd" and plan.schedule == "wsd"
    assert any("wsd_vs_cosine" in line for line in plan.lines())
    mine = horizon.plan_final(rows, curves, configs, tokens_for=lambda r, rate: 8e6)
    assert "lr_schedule" not in mine.config and mine.schedule == ""  # the user's own run


def test_the_prior_at_the_final_models_compute_is_measured_and_brought_forward() -> None:
    """The report's "against the first trial at equal compute": the prior's own best, the
    tokens the search's whole compute would have bought it, and its curve brought there by
    the horizon rule; past 10x its evidence nothing is predicted, and the reason is kept."""
    from tune_gpt.search.final import _prior, flops_of

    rows = [_row("a", 5000, 1.6), _row("b", 5000, 1.7)]
    trials = pd.DataFrame(rows)
    curves = _search(rows, {"a": (1.3, 30.0, 0.3), "b": (1.4, 30.0, 0.3)})
    cfg = {**_knobs(1e-3), "n_layer": 4, "n_head": 4, "n_embd": 128}
    saved = {"prior_trial": "a", "prior_config": cfg}
    per_token = flops_of(cfg, 1, 65)
    last = float(curves[curves["trial_id"] == "a"]["val_loss"].iloc[-1])
    got = _prior(saved, trials, curves, {}, 6e6 * per_token, 65)
    assert got["trial_id"] == "a" and got["measured"] == 1.6 and got["measured_tokens"] == 2e6
    assert got["tokens_at_budget"] == pytest.approx(6e6)
    assert got["predicted"] == pytest.approx(last * (2e6 / 6e6) ** horizon.DATA_EXPONENT)
    far = _prior(saved, trials, curves, {}, 30e6 * per_token, 65)
    assert far["predicted"] is None and "more than 10x" in far["why"]
    assert _prior({"prior_trial": None}, trials, curves, {}, 1.0, 65) is None  # no prior
