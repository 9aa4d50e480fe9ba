"""The learning-rate schedule (tune_gpt.schedule.lr_at), point by point: nanoGPT's warmup and
cosine unchanged bit for bit, and warmup-stable-decay's plateau and 1-sqrt cool-down."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from tune_gpt.config import TrainConfig
from tune_gpt.schedule import cooldown_start, lr_at
from tune_gpt.train import get_lr

COSINE = TrainConfig(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000)
WSD = TrainConfig(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000,
                  lr_schedule="wsd", cooldown_frac=0.2)


def nanogpt_get_lr(it: int, cfg: TrainConfig) -> float:
    """tune-gpt's get_lr as it was before WSD existed, verbatim: the reference that cosine
    must still match to the last bit."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it >= cfg.lr_decay_iters:
        return cfg.min_lr
    progress = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def test_the_loop_steps_with_lr_at() -> None:
    assert get_lr is lr_at  # train.py keeps nanoGPT's name for the one schedule function


# ----------------------------------------------------------------------------- cosine

def test_cosine_is_the_default_and_unchanged_bit_for_bit() -> None:
    assert TrainConfig().lr_schedule == "cosine"
    rng = random.Random(0)
    for _ in range(60):
        warmup = rng.randint(0, 200)
        lr = 10 ** rng.uniform(-5, -1)
        cfg = TrainConfig(learning_rate=lr, min_lr=lr * rng.random(), warmup_iters=warmup,
                          lr_decay_iters=rng.randint(warmup, 3000),
                          decay_lr=rng.random() < 0.9, cooldown_frac=rng.uniform(0.01, 1))
        for it in range(cfg.lr_decay_iters + 5):
            assert lr_at(it, cfg) == nanogpt_get_lr(it, cfg), (it, cfg)  # ==, not approx


def test_cosine_warmup_midpoint_and_floor() -> None:
    assert lr_at(0, COSINE) == pytest.approx(1e-3 * 1 / 101)
    assert lr_at(49, COSINE) == pytest.approx(1e-3 * 50 / 101)
    assert lr_at(100, COSINE) == 1e-3  # warmup end = decay start
    assert lr_at(1050, COSINE) == pytest.approx((1e-3 + 1e-4) / 2)  # halfway: cos = 0
    assert lr_at(2000, COSINE) == 1e-4 and lr_at(10_000, COSINE) == 1e-4
    values = [lr_at(i, COSINE) for i in range(100, 2001)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # monotone decay


def test_constant_without_decay_whatever_the_schedule() -> None:
    for schedule in ("cosine", "wsd"):
        cfg = TrainConfig(learning_rate=3e-4, decay_lr=False, warmup_iters=100,
                          lr_schedule=schedule)
        assert {lr_at(i, cfg) for i in (0, 50, 100, 1999, 5000)} == {3e-4}


# ----------------------------------------------------------------------------- WSD

def test_wsd_warmup_is_nanogpts() -> None:
    for it in range(100):
        assert lr_at(it, WSD) == lr_at(it, COSINE) == 1e-3 * (it + 1) / 101


def test_wsd_plateau_is_exactly_learning_rate() -> None:
    assert cooldown_start(WSD) == 1600  # the last 20% of lr_decay_iters = 2000
    assert {lr_at(it, WSD) for it in range(100, 1601)} == {1e-3}
    assert lr_at(1601, WSD) < 1e-3


def test_wsd_cooldown_is_one_minus_sqrt_to_min_lr_exactly_at_the_end() -> None:
    for it, progress in ((1601, 1 / 400), (1700, 0.25), (1800, 0.5), (1999, 399 / 400)):
        want = 1e-4 + (1 - math.sqrt(progress)) * 9e-4
        assert lr_at(it, WSD) == pytest.approx(want, rel=1e-12), it
    assert lr_at(1700, WSD) == pytest.approx(1e-4 + 0.5 * 9e-4)  # sqrt(1/4) = 1/2
    assert lr_at(2000, WSD) == 1e-4 and lr_at(5000, WSD) == 1e-4  # exactly min_lr
    values = [lr_at(i, WSD) for i in range(1600, 2001)]
    assert all(a > b for a, b in itertools.pairwise(values))  # strictly down to the floor
    # 1-sqrt falls fastest at first: a quarter of the cool-down removes half the range
    assert lr_at(1700, WSD) - 1e-4 == pytest.approx((1e-3 - 1e-4) / 2)


def test_wsd_stays_above_cosine_until_late_and_reaches_the_same_floor() -> None:
    """What WSD is for: a higher learning rate for most of the run, the same end point."""
    assert all(lr_at(it, WSD) >= lr_at(it, COSINE) for it in range(1700))
    assert lr_at(2000, WSD) == lr_at(2000, COSINE) == 1e-4


@pytest.mark.parametrize(("frac", "decay", "warmup", "start"), [
    (0.2, 2000, 100, 1600),
    (0.1, 1000, 0, 900),
    (0.25, 10, 0, 8),          # 2.5 steps rounds to 2 (round half to even)
    (1.0, 2000, 100, 100),     # all cool-down: it starts when warmup ends
    (0.99, 2000, 100, 100),    # never before warmup ends
    (0.2, 2, 0, 2),            # under one step: no cool-down at all, min_lr at lr_decay_iters
])
def test_cooldown_start(frac: float, decay: int, warmup: int, start: int) -> None:
    cfg = TrainConfig(lr_schedule="wsd", cooldown_frac=frac, lr_decay_iters=decay,
                      warmup_iters=warmup)
    assert cooldown_start(cfg) == start
    assert lr_at(start, cfg) == (cfg.learning_rate if start < decay else cfg.min_lr)
    assert lr_at(decay, cfg) == cfg.min_lr
    assert all(math.isfinite(lr_at(i, cfg)) for i in range(decay + 2))


def test_wsd_with_min_lr_zero_is_the_papers_cooldown_to_zero() -> None:
    cfg = TrainConfig(learning_rate=1e-3, min_lr=0.0, warmup_iters=0, lr_decay_iters=100,
                      lr_schedule="wsd", cooldown_frac=0.2)
    assert lr_at(80, cfg) == 1e-3 and lr_at(100, cfg) == 0.0
    assert lr_at(95, cfg) == pytest.approx(1e-3 * (1 - math.sqrt(0.75)))


def test_lr_at_is_pure() -> None:
    before = WSD.to_dict()
    assert [lr_at(it, WSD) for it in range(0, 2001, 7)] == \
        [lr_at(it, WSD) for it in range(0, 2001, 7)]
    assert WSD.to_dict() == before
