"""How tune-gpt judges runs: one rule each, used by the trainable, the search and the report.

    EXPLODED_LOSS_FACTOR, PREDICTED_OOM_MARGIN   what ends a trial as diverged / skips it as
                                                 predicted_oom (trainables/gpt.py), and what
                                                 the report then says of it
    t_quantile(dof)                              Student's t for a two-sided 95% test
    pooled_sd(groups)                            seed noise pooled over groups of runs
    Noise                                        one run's loss noise, its degrees of freedom
                                                 and where it was measured
    noise.threshold(n1, n2), noise.real(gap, ...)  is a gap between two means beyond chance?
    REFERENCE_SEED_NOISE                         the seed spread measured once, used when a
                                                 search measured none of its own

"Real" means: beyond the two-sided 95% quantile of Student's t for the degrees of freedom the
noise was estimated with, times the standard error of the difference. A search's confirm runs
(search/confirm.py) estimate the noise from re-runs on new seeds only: the search's own run of
a config was selected for being good, so counting it would bias the winner's mean down (the
winner's curse). With few seeds the t quantile is much wider than the normal's 1.96 (3.18 at
3 degrees of freedom, 2.57 at 5).

This module imports nothing heavy at import time (scipy only inside t_quantile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

# ----------------------------------------------------------------------------- a trial's end

# A loss this many times that of uniform guessing (ln vocab) has exploded: Adam with an
# absurd learning rate sends it to the thousands while staying finite, and it never comes
# back. Treated like NaN/inf: the trial stops at once as `diverged`.
EXPLODED_LOSS_FACTOR = 3.0
# A config is skipped as predicted_oom only when its estimate exceeds the memory limit by
# more than the estimator's error (it aims at +-20%): a borderline config is tried for real,
# and if it does run out of memory it is recorded as oom (and may be rescued).
PREDICTED_OOM_MARGIN = 1.2

# ----------------------------------------------------------------------------- is it real

CONFIDENCE = 0.95   # two-sided: a difference is called real when chance alone would give one
                    # as large in either direction less than 5% of the time
FLOOR = 0.01        # nats: no noise is taken below this. A loss estimate averages eval_iters
                    # batches and wobbles by ~0.01 on shakespeare_char even without a new seed.


def t_quantile(dof: float) -> float:
    """The two-sided CONFIDENCE quantile of Student's t with `dof` degrees of freedom
    (12.7 at 1, 3.18 at 3, 2.57 at 5, 1.96 for many). NaN below one degree of freedom."""
    if dof == math.inf:  # the normal quantile, t's limit
        from statistics import NormalDist
        return NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)
    if not dof or dof < 1 or not math.isfinite(dof):
        return math.nan
    from scipy.stats import t

    return float(t.ppf(1 - (1 - CONFIDENCE) / 2, dof))


def pooled_sd(groups: Iterable[Sequence[float]]) -> tuple[float, int]:
    """(sd, dof): the within-group standard deviation pooled over groups of runs (each group
    one config on several seeds); groups of one run add nothing. NaN, 0 without any pair."""
    ss, dof = 0.0, 0
    for g in groups:
        v = [float(x) for x in g if math.isfinite(float(x))]
        if len(v) > 1:
            mean = sum(v) / len(v)
            ss += sum((x - mean) ** 2 for x in v)
            dof += len(v) - 1
    return (math.sqrt(ss / dof), dof) if dof else (math.nan, 0)


@dataclass(frozen=True)
class SeedSpread:
    """A seed noise measured once, with what it was measured on."""

    sd: float       # nats: the standard deviation of one run's val_loss over seeds
    dof: int        # its degrees of freedom (seeds - 1)
    data: str       # the corpus
    recipe: str     # the config and length
    source: str     # the committed file holding the runs
    mean: float = float("nan")  # nats: the runs' mean val_loss (sd / mean: the relative spread)

    @property
    def relative(self) -> float:
        """The spread as a share of the loss (sd / mean): what the horizon's explore rule
        weighs a loss increase against, at any loss level."""
        return self.sd / self.mean if self.mean > 0 else float("nan")


# nanoGPT's CPU recipe (4x128, block 64, batch 12, lr 1e-3, cosine, 2,000 iterations) on
# shakespeare_char, scored as beginner.yaml's CPU profile scores its trials (eval_iters 20):
# the final val_loss of 6 seeds. Measured by benchmarks/seed_noise.py; test_judge checks this
# constant against the committed summary, so the two cannot drift apart.
REFERENCE_SEED_NOISE = SeedSpread(
    sd=0.0129, dof=5, data="shakespeare_char", mean=1.9083,
    recipe="nanoGPT's CPU recipe, 2,000 iterations, eval_iters 20",
    source="benchmarks/results/seed_noise/shakespeare_char/summary.json")


@dataclass
class Noise:
    """How much one run's loss moves by chance, in nats, and what a gap must exceed to be real.

    per_run   one run's noise, at least FLOOR
    dof       the degrees of freedom it was estimated with (the t quantile's)
    source    confirm (this search's re-runs on new seeds) | reference (REFERENCE_SEED_NOISE,
              measured on another search) | curves (this search's curves wobble by more than
              the reference)
    measured  the figure before the floor; n: the runs (confirm) or points (curves) behind it
    eval      the curves' wobble alone (at least FLOOR): for comparisons within one run, where
              the seed plays no part
    """

    per_run: float
    source: str
    dof: int
    measured: float = float("nan")
    n: int = 0
    curves: int = 0
    eval: float = float("nan")

    def threshold(self, n1: int = 1, n2: int = 1) -> float:
        """The smallest gap between the means of n1 and n2 runs that is real."""
        return t_quantile(self.dof) * self.per_run * math.sqrt(1 / n1 + 1 / n2)

    @property
    def pair(self) -> float:
        """The smallest real gap between two single runs."""
        return self.threshold(1, 1)

    @property
    def z(self) -> float:
        """The t quantile behind every threshold (shown in the report)."""
        return t_quantile(self.dof)

    def real(self, gap: float, n1: int = 1, n2: int = 1) -> bool:
        """Is a difference between the means of n1 and n2 runs beyond the noise?"""
        return bool(math.isfinite(gap) and abs(gap) > self.threshold(n1, n2))


def seed_noise(confirm_sd: float | None = None, confirm_dof: int = 0, confirm_runs: int = 0,
               wobble: float = math.nan, wobble_points: int = 0, wobble_trials: int = 0,
               reference: SeedSpread = REFERENCE_SEED_NOISE) -> Noise:
    """The noise every comparison of a search's losses is judged against.

    The confirm runs' pooled seed noise when the search ran them (its own corpus, its own
    configs); else the reference seed spread, measured elsewhere and said so; never below
    the curves' wobble (a run's evaluations move by that much on this data whatever the seed)
    nor FLOOR."""
    wob = wobble if math.isfinite(wobble) else 0.0
    eval_sigma = max(wob, FLOOR)
    if confirm_sd is not None and math.isfinite(confirm_sd) and confirm_dof > 0:
        return Noise(max(confirm_sd, wob, FLOOR), "confirm", confirm_dof, confirm_sd,
                     confirm_runs, eval=eval_sigma)
    if wob > reference.sd:
        return Noise(max(wob, FLOOR), "curves", reference.dof, wobble, wobble_points,
                     wobble_trials, eval=eval_sigma)
    return Noise(max(reference.sd, FLOOR), "reference", reference.dof, reference.sd,
                 reference.dof + 1, eval=eval_sigma)
