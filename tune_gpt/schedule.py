"""The learning-rate schedule: one pure function of the step and the config.

    lr_at(it, cfg)        # the learning rate of optimizer step `it` (0-based)

Two shapes after nanoGPT's linear warmup (`lr_schedule`, used when `decay_lr`):

- cosine (nanoGPT's, the default): from learning_rate down to min_lr at lr_decay_iters.
- wsd, warmup-stable-decay (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training
  Beyond Fixed Training Durations", arXiv:2405.18392, §3): learning_rate held constant,
  then a cool-down to min_lr over the last `cooldown_frac` of lr_decay_iters, shaped
  1 - sqrt(progress), which beat a linear cool-down there; a 20% cool-down matched cosine.
  The stable phase does not depend on the run's length, so a run that is cut short and
  cooled down is a finished shorter run: what a search reading loss at equal tokens wants.

Both reach min_lr at iteration lr_decay_iters, nanoGPT's convention, so lr_decay_iters keeps
one meaning whichever the shape (a search derives it from max_iters; `tune-gpt transfer`
moves it with max_iters). Like nanoGPT's, the last step of a run with max_iters =
lr_decay_iters is one step short of min_lr. The paper cools down to zero; min_lr = 0 does
that here. decay_lr = false keeps learning_rate from the first step, warmup included, as
nanoGPT's train.py does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tune_gpt.config import TrainConfig


def stretched_decay(lr_decay_iters: int, max_iters: int, new_max_iters: int) -> int:
    """lr_decay_iters for the same schedule made new_max_iters long (a final run, a plan, a
    transfer, a retimed run): a decay that ended where training did still does; one that
    ended earlier keeps its share of the run."""
    if lr_decay_iters >= max_iters or max_iters <= 0:
        return new_max_iters
    return max(1, round(lr_decay_iters * new_max_iters / max_iters))


def cooldown_start(cfg: TrainConfig) -> int:
    """WSD: the first step of the cool-down (the learning rate is still learning_rate there).
    The last cooldown_frac of lr_decay_iters, rounded to whole steps, but never before warmup
    ends: cooldown_frac = 1 decays straight after warmup."""
    cooldown = round(cfg.cooldown_frac * cfg.lr_decay_iters)
    return max(cfg.warmup_iters, cfg.lr_decay_iters - cooldown)


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `it` (0-based): linear warmup over warmup_iters, then
    cosine (or WSD's plateau and 1-sqrt cool-down) to min_lr at lr_decay_iters, then min_lr.
    Constant if not decay_lr. Pure: the same (it, cfg) always gives the same float."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it >= cfg.lr_decay_iters:
        return cfg.min_lr
    if cfg.lr_schedule == "wsd":
        start = cooldown_start(cfg)
        if it < start:
            return cfg.learning_rate
        # start < lr_decay_iters here (it lies between them), so no division by zero
        coeff = 1.0 - math.sqrt((it - start) / (cfg.lr_decay_iters - start))  # 1 -> 0
        return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)
    # nanoGPT's cosine, written exactly as before WSD existed (the same floats, bit for bit)
    progress = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)
