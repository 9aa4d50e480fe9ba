"""The final run's length refitted while it trains (tune_gpt/retime.py): to its time, and cut
to a cool-down when it overfits; the trainable's side of it, and the reasons it gives."""

from __future__ import annotations

import json

import pytest

from tune_gpt import horizon
from tune_gpt.retime import (OVERFIT_MARGIN, OVERFIT_WINDOW, Retimer, overfit_margin,
                              overfit_rise)


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _final_cfg(**kw):
    from tune_gpt.config import TrainConfig

    base = dict(max_iters=1000, lr_decay_iters=1000, learning_rate=1e-3, min_lr=1e-4,
                batch_size=4, block_size=8)
    return TrainConfig(**{**base, **kw})


def test_the_retimer_fits_the_run_to_its_time_and_moves_the_lr_with_it() -> None:
    clock = _Clock()
    cfg = _final_cfg()
    retime = Retimer(until=clock.t + 300, clock=clock)
    assert retime(100, cfg) is None          # the first evaluation: only where it starts
    clock.t += 50                            # 100 iterations in 50 s: 2 a second
    new = retime(200, cfg)                   # 250 s left: 500 more iterations
    assert new is not None and new.max_iters == 700 and new.lr_decay_iters == 700
    assert new.learning_rate == pytest.approx(
        horizon.lr_for_tokens(1e-3, 1000 * 32, 700 * 32))
    assert new.learning_rate > 1e-3          # a shorter run: a higher lr (tokens^-0.32)
    assert new.min_lr / new.learning_rate == pytest.approx(0.1)
    assert retime.changes[-1]["max_iters"] == 700
    clock.t += 1                             # the same pace: within tolerance, no change
    assert retime(202, new) is None
    clock.t = 1000 + 60                      # faster since: 200 iterations in 60 s
    longer = retime(300, new)
    assert longer is not None and longer.max_iters > 700 and longer.learning_rate < \
        new.learning_rate


def test_the_retimer_keeps_budgets_and_a_cool_down_under_way() -> None:
    clock = _Clock()
    capped = Retimer(until=clock.t + 10_000, max_iters=1200, clock=clock)
    capped(100, _final_cfg())
    clock.t += 10
    assert capped(200, _final_cfg()).max_iters == 1200   # the token budget's end, not later
    late = Retimer(until=clock.t + 10_000, clock=clock)
    late(500, _final_cfg())
    clock.t += 10
    assert late(600, _final_cfg()) is None              # past half: its cool-down stands
    decay = Retimer(until=clock.t + 200, clock=clock)
    decay(10, _final_cfg(lr_decay_iters=800))
    clock.t += 10                                        # 10 iterations a second, 190 s left
    longer = decay(110, _final_cfg(lr_decay_iters=800))  # decay ends where it did, in share
    assert longer.max_iters == 110 + 1900 and longer.lr_decay_iters == round(800 * 2010 / 1000)


def test_a_final_run_keeps_its_length_beside_its_checkpoint_for_a_resume(tmp_path) -> None:
    """The trainable side (trainables/gpt.py): a final run with a deadline gets a retimer and
    writes its length beside its checkpoint at once; a resumed or retried final run reads
    it back and is not retimed again (its deadline has passed); other trials get nothing."""
    import json
    import time
    from dataclasses import replace

    from trainables.gpt import final_retimer
    from tune_gpt.trial import TrialPlan

    ckpt = str(tmp_path / "final.pt")
    plan = TrialPlan(final_of="abc", final_until=time.time() + 100, final_max_iters=5000)
    cfg = _final_cfg()
    retime, same = final_retimer(plan, cfg, ckpt, in_child=False)
    assert retime is not None and same is cfg
    assert retime.retimer.cap == 5000
    assert json.loads((tmp_path / "final.pt.retimed.json").read_text())["max_iters"] == 1000
    retime.write(replace(cfg, max_iters=1500, lr_decay_iters=1500, learning_rate=8e-4))
    again, resumed = final_retimer(plan, cfg, ckpt, in_child=False)
    assert (resumed.max_iters, resumed.lr_decay_iters, resumed.learning_rate) == \
        (1500, 1500, 8e-4)
    # resumed: the time rule is off (its deadline has passed), the overfit watch is on
    assert again is not None and again.retimer.until is None
    assert final_retimer(plan, cfg, ckpt, in_child=True)[0] is None
    assert final_retimer(TrialPlan(), cfg, str(tmp_path / "t.pt"), in_child=False) == \
        (None, cfg)
    assert final_retimer(TrialPlan(final_of="abc"), cfg, str(tmp_path / "u.pt"),
                         in_child=False) == (None, cfg)  # no time budget: its plan stands


def test_a_retimed_final_run_says_so_in_its_reasons() -> None:
    from tune_gpt.search.final import _retimed_lines

    plan = {"config": {"max_iters": 1000}, "tokens": 768_000}
    assert _retimed_lines({}, plan, 768) == []
    assert _retimed_lines({"max_iters": 1000, "learning_rate": 1e-3}, plan, 768) == []
    [line] = _retimed_lines({"max_iters": 1300, "learning_rate": 9.2e-4}, plan, 768)
    assert "998,400 tokens in all instead of the planned 768,000" in line and "0.00092" in line


def test_a_wsd_final_run_is_retimed_until_its_cool_down_and_never_into_it() -> None:
    from tune_gpt.schedule import cooldown_start

    clock = _Clock()
    cfg = _final_cfg(lr_schedule="wsd", cooldown_frac=0.2)   # cool-down from step 800
    retime = Retimer(until=clock.t + 1000, clock=clock)
    retime(600, cfg)
    clock.t += 100                                   # 1 iteration a second, 900 s left
    longer = retime(700, cfg)                        # past half, still held: retimed
    assert longer is not None and longer.max_iters == 1600
    clock.t += 1
    assert retime(801, cfg) is None                  # in the cool-down: its schedule stands
    short = Retimer(until=clock.t + 10, clock=clock)
    short(600, cfg)
    clock.t += 100                                   # far too slow for the planned end
    cut = short(700, cfg)
    assert cut is not None and cooldown_start(cut) >= 700 and cut.max_iters == 875


# ----------------------------------------------------------------------------- overfitting

# The in-loop validation losses of budget_best's seed-2 final run on tinyshakespeare (4x192,
# WSD, 250k tokens between evaluations, 1.25M-12.9M tokens): noisy (one evaluation rose
# 0.032 above the best), still learning, and not overfitting.
SHAKESPEARE_FINAL = [
    1.8658, 1.8293, 1.8072, 1.8093, 1.767, 1.7467, 1.7463, 1.7189, 1.7122, 1.7141, 1.6928,
    1.6881, 1.6731, 1.6631, 1.6738, 1.6532, 1.652, 1.6532, 1.647, 1.6321, 1.6244, 1.6215,
    1.6024, 1.6339, 1.618, 1.609, 1.6071, 1.6294, 1.615, 1.6053, 1.6052, 1.5938, 1.6007,
    1.6042, 1.5987, 1.5917, 1.577, 1.5776, 1.5604, 1.5522, 1.5542, 1.5451, 1.5355, 1.5324]


def test_the_margin_is_the_larger_of_the_fixed_one_and_the_runs_own_noise() -> None:
    assert overfit_margin([2.0, 1.9, 1.8]) == OVERFIT_MARGIN          # too few to tell
    assert overfit_margin(SHAKESPEARE_FINAL) == pytest.approx(OVERFIT_MARGIN, abs=1e-3)
    steady = [2.0 - 0.01 * k for k in range(20)]                     # a trend, no noise
    assert overfit_margin(steady) == OVERFIT_MARGIN
    noisy = [2.0 + (0.05 if k % 2 else -0.05) for k in range(20)]    # sd 0.05 a value
    # second differences of +-0.05 alternating: 0.2 each -> sd = 0.2 / sqrt(6)
    assert overfit_margin(noisy) == pytest.approx(3 * 0.2 / 6 ** 0.5 * (2 / 3) ** 0.5)


def test_overfit_rise_compares_window_means() -> None:
    assert overfit_rise([2.0, 1.9, 1.8]) == 0.0                     # too few to compare
    assert overfit_rise([2.0, 1.9, 1.8, 1.7, 1.6]) == 0.0           # still learning
    assert overfit_rise([1.0, 1.0, 1.0, 1.3]) == pytest.approx(0.1)  # (1+1+1.3)/3 - 1
    assert overfit_rise([1.0, 1.0, 1.0, 1.3], window=1) == pytest.approx(0.3)


def test_a_wsd_run_that_overfits_starts_its_cool_down_at_once() -> None:
    clock = _Clock()
    cfg = _final_cfg(lr_schedule="wsd", cooldown_frac=0.2, max_iters=10_000,
                     lr_decay_iters=10_000)
    timer = Retimer(until=clock.t + 10_000, clock=clock)   # the time fits: no time change
    vals = [1.60, 1.55, 1.52, 1.50, 1.49, 1.485, 1.49, 1.50, 1.52, 1.55, 1.59, 1.64]
    got = None
    for k, v in enumerate(vals, start=1):
        clock.t += 100
        got = timer(k * 100, cfg, v) or got
        if got is not None:
            break
    # windows of 3: lowest (1.49, 1.485, 1.49); (1.50, 1.52, 1.55) lies 0.035 above, over
    # the 0.02 margin (these evaluations are less noisy than that)
    assert k == 10 and got is not None
    assert got.max_iters == 1250 and got.lr_decay_iters == 1250   # cool-down from step 1000
    from tune_gpt.schedule import cooldown_start, lr_at

    assert cooldown_start(got) == 1000 and lr_at(999, got) == cfg.learning_rate
    assert got.learning_rate == cfg.learning_rate                   # the lr it had, kept
    change = timer.changes[-1]
    assert change["reason"] == "overfitting" and change["rise"] > OVERFIT_MARGIN
    assert timer(1100, got, 1.7) is None                 # in its cool-down: nothing more


def test_a_run_still_learning_is_not_cut_and_cosine_runs_never_are() -> None:
    clock = _Clock()
    n = len(SHAKESPEARE_FINAL)
    wsd = _final_cfg(lr_schedule="wsd", max_iters=100 * n + 1000, lr_decay_iters=100 * n + 1000)
    timer = Retimer(until=clock.t + 1e9, max_iters=wsd.max_iters, clock=clock)
    for k, v in enumerate(SHAKESPEARE_FINAL, start=1):
        clock.t += 10
        assert timer(100 * k, wsd, v) is None
    assert max(overfit_rise(SHAKESPEARE_FINAL[:i]) for i in range(n)) < OVERFIT_MARGIN / 3
    cosine = _final_cfg(max_iters=100_000, lr_decay_iters=100_000)
    plain = Retimer(until=clock.t + 1e9, max_iters=100_000, clock=clock)
    for k, v in enumerate([2.0, 1.5, 1.5, 1.5, 1.9, 2.2, 2.5], start=1):
        clock.t += 10
        assert plain(100 * k, cosine, v) is None          # no cool-down to start early


def test_an_overfit_cool_down_is_kept_for_a_resume_and_said_in_the_reasons(tmp_path) -> None:
    import json
    import time

    from trainables.gpt import final_retimer
    from tune_gpt.search.final import _retimed_lines
    from tune_gpt.trial import TrialPlan

    cfg = _final_cfg(lr_schedule="wsd", max_iters=10_000, lr_decay_iters=10_000)
    plan = TrialPlan(final_of="abc", final_until=time.time() + 1e6, final_max_iters=10_000)
    hook, _ = final_retimer(plan, cfg, str(tmp_path / "final.pt"), in_child=False)
    new = None
    for k, v in enumerate([1.6, 1.5, 1.45, 1.44, 1.44, 1.46, 1.5, 1.55], start=1):
        new = hook(k * 100, cfg, v) or new
    assert new is not None and new.max_iters < 10_000
    saved = json.loads((tmp_path / "final.pt.retimed.json").read_text())
    assert saved["max_iters"] == new.max_iters and saved["overfit"]["iter"] == 800
    watch, resumed = final_retimer(plan, cfg, str(tmp_path / "final.pt"), in_child=False)
    assert resumed.max_iters == new.max_iters                      # a resume keeps it
    assert watch is None                             # its cool-down has begun: no watch
    [line] = _retimed_lines(saved, {"config": {"max_iters": 10_000}, "tokens": 320_000}, 32)
    assert "began to overfit" in line and f"{new.max_iters * 32:,} tokens" in line
    assert f"last {OVERFIT_WINDOW} validation losses" in line


def test_a_resumed_final_run_is_still_cut_when_it_overfits_but_never_refitted(tmp_path
                                                                              ) -> None:
    """A final run interrupted before it overfitted resumes with its saved length, and
    the watch (fresh, without the time rule) still starts its cool-down when it turns up."""
    import time

    from trainables.gpt import final_retimer
    from tune_gpt.trial import TrialPlan

    cfg = _final_cfg(lr_schedule="wsd", max_iters=10_000, lr_decay_iters=10_000)
    ckpt = str(tmp_path / "final.pt")
    plan = TrialPlan(final_of="abc", final_until=time.time() + 1e6, final_max_iters=10_000)
    first, _ = final_retimer(plan, cfg, ckpt, in_child=False)
    assert first(100, cfg, 1.6) is None                         # interrupted here
    plan = TrialPlan(final_of="abc", final_until=time.time() - 10, final_max_iters=10_000)
    watch, resumed = final_retimer(plan, cfg, ckpt, in_child=False)
    assert resumed.max_iters == 10_000
    got = None
    for k, v in enumerate([1.5, 1.45, 1.44, 1.44, 1.44, 1.44], start=2):
        assert watch(k * 100, resumed, v) is None   # learning, then flat: no time refit
    for k, v in enumerate([1.47, 1.5, 1.55, 1.6], start=8):
        got = watch(k * 100, resumed, v) or got
    assert got is not None and got.max_iters < 10_000
    assert json.loads((tmp_path / "final.pt.retimed.json").read_text())["overfit"]


def test_a_small_corpus_run_cools_down_when_it_overfits(shakespeare_path, tmp_path) -> None:
    """A real run on a corpus of 4,500 training characters, which a 2-layer model learns by
    heart within a few hundred steps: its validation loss turns up, the retimer starts the
    cool-down there, from the state of the best evaluation (not the overfitted one), and the
    run ends long before its planned length with a model better than any before the cut."""
    from tune_gpt.config import TrainConfig
    from tune_gpt.train import train

    data = tmp_path / "small.txt"
    data.write_text(shakespeare_path.read_text()[:5000])
    cfg = TrainConfig(dataset=str(data), out_dir=str(tmp_path / "out"), n_layer=2, n_head=2,
                      n_embd=64, block_size=32, batch_size=16, max_iters=3000,
                      lr_decay_iters=3000, eval_interval=50, eval_iters=20, log_interval=1000,
                      warmup_iters=10, learning_rate=3e-3, min_lr=3e-4, lr_schedule="wsd",
                      dropout=0.0, device="cpu", seed=0)
    timer = Retimer(until=1e12, max_iters=3000)  # all the time it wants, up to its plan
    result = train(cfg, threads=1, retime=timer)
    [change] = timer.changes
    assert change["reason"] == "overfitting" and change["rise"] > OVERFIT_MARGIN
    assert result.iters == change["max_iters"] < 1500
    vals = [r.val_loss for r in result.records]
    cut = [r.iter for r in result.records].index(change["iter"])
    before = vals[:cut + 1]
    assert before.index(min(before)) < cut - 1 and vals[cut] > min(before)  # it turned up
    # the next evaluation scores the best state again (not the overfitted model), and its
    # cool-down takes it below anything the run reached before
    assert abs(vals[cut + 1] - min(before)) < abs(vals[cut] - min(before))
    assert vals[-1] < min(before) - 0.02
    assert result.best_val_loss == pytest.approx(min(vals)) == pytest.approx(vals[-1])
