"""What the report found, as plain data: the renderer writes it out, tests inspect it.

Each section of the report has one dataclass here. Remedy and evidence lists are in the
guide's order (§6 "配置调优策略"), so their order *is* the advice's priority.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tune_gpt.judge import Noise  # noqa: F401  (the report's sections carry it)


@dataclass
class Summary:
    best_trial: str | None
    metric: str                    # what "best" is measured by: val_loss | train_loss
    best_value: float              # the best trial's best `metric`
    best_val_loss: float
    best_config: dict[str, Any]
    best_outcome: str
    best_tokens: float
    best_iters: float
    n_trials: int
    by_outcome: dict[str, int]
    iters: float
    tokens: float
    wall_s: float
    errors: list[tuple[str, str]]  # (trial_id, message) of failed trials


@dataclass
class Leaderboard:
    table: pd.DataFrame     # rank order; knob columns are only those that differ; "best" and
                            # "at_budget" are the trial's best `metric` and its `metric` at `budget`
    knobs: list[str]        # the differing knobs shown
    budget: float | None    # the equal-budget column's token count
    metric: str             # what the trials are ranked by: val_loss | train_loss
    noise: Noise | None = None  # "delta" (best - the first's) is within it where "within"


@dataclass
class Pair:
    """Trials that differ (among the speed-relevant knobs) only in `knob`: low vs high value."""

    knob: str
    low: Any
    high: Any
    ratio: float                   # tokens/s at high / tokens/s at low
    low_ids: list[str]
    high_ids: list[str]


@dataclass
class Remedy:
    """One rung of a remedy ladder, made concrete for a given config."""

    key: str                                   # e.g. "smaller_batch" (see rules.*_REMEDIES)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # knob -> (old, new)
    tokens_per_iter: float | None = None       # after the change
    mem_bytes: float | None = None             # estimated need after the change
    fits: bool | None = None                   # under the memory limit? None = unknown
    speedup: float | None = None               # measured or computed x-times faster
    applicable: bool = True                    # False: already done / not needed here
    trials: list[str] = field(default_factory=list)  # the trials it is about
    pair: Pair | None = None                   # the measured comparison behind `speedup`
    eval_share: float | None = None            # fewer_evals: the share it starts from


@dataclass
class OomCase:
    trial_id: str
    outcome: str                   # oom | predicted_oom
    knobs: dict[str, Any]
    tokens_per_iter: float
    peak_mem_bytes: float          # measured (NaN if unknown)
    est_mem_bytes: float           # estimated (NaN if unknown)
    ladder: list[Remedy]
    combined: Remedy | None = None  # the ladder applied cumulatively, when no single step fits
    rescued_by: str | None = None  # trial that re-ran it with half batch, twice accumulation
    rescue_outcome: str = ""
    rescue_val_loss: float = float("nan")


@dataclass
class MemoryCalibration:
    """Measured peak / estimated memory over the trials that ran (rules.MEMORY_CALIBRATE_ABOVE)."""

    ratio: float                   # median of peak_mem_bytes / est_mem_bytes
    low: float                     # the smallest and largest single-trial ratio
    high: float
    n: int                         # trials it is the median of
    factor: float                  # what the "fits" verdicts multiply the estimate by (>= 1)
    device: str                    # cpu | cuda: on a CPU the peak is the whole process's RSS


@dataclass
class OomLead:
    """The section's first sentence: the case it is about, what most of its memory is, and
    the first remedy that fits (a ladder rung, the combined steps, or None when nothing does)."""

    case: OomCase
    part: str                      # activations | model (weights, gradients, AdamW state)
    share: float                   # that part's share of the estimate
    need_bytes: float              # the case's need, calibrated when the verdicts are
    remedy: Remedy | None


@dataclass
class OomFinding:
    cases: list[OomCase]
    limit_bytes: float | None
    calibration: MemoryCalibration | None = None  # None: no trial has a measured peak
    lead: OomLead | None = None


@dataclass
class SpeedRow:
    trial_id: str
    tokens_per_s: float
    mfu: float
    eval_share: float
    compile: bool | None
    batch_size: Any
    flags: list[str]               # slow | eval_heavy | compile_off | small_batch


@dataclass
class SlowFinding:
    rows: list[SpeedRow]
    slow: list[str]                # trial ids with any flag
    remedies: list[Remedy]         # guide order: compile, larger batch, fewer evals, less logging
    device: str
    lead: Remedy | None = None     # the biggest measured lever (>= rules.LEAD_MIN_GAIN): a rung of
                                   # `remedies`, or "tuned_eval" when a tuned eval knob is the cause


@dataclass
class OverfitCase:
    trial_id: str
    kind: str                      # "rising" (val up while train down) or "gap"
    start_iter: float              # iteration of the val_loss minimum
    start_tokens: float
    val_min: float
    val_last: float
    train_at_min: float
    train_last: float
    gap: float                     # val - train at the last eval
    tokens: float = float("nan")   # tokens at the last eval
    falling: bool = False          # val_loss still falling at the end (rules.STILL_FALLING)
    epochs: float | None = None    # tokens / the corpus's train tokens (data doctor), if known
    data_gap: float = float("nan")  # the data's own relative gap it was judged against
    drop: float = float("nan")     # val_loss at 3/4 of the trial's tokens minus at the end
    rise: float = float("nan")     # the rise it takes to count as turned up (noise-aware)


@dataclass
class Evidence:
    """Did a remedy reduce the train/val gap in this search?"""

    key: str                       # dropout | weight_decay | smaller_model | more_data
    knob: str
    status: str                    # works | no_effect | worse | not_tried | advice
    rho: float = float("nan")
    n: int = 0
    helped: list[str] = field(default_factory=list)    # trials on the remedy's side
    others: list[str] = field(default_factory=list)    # trials on the other side
    helped_gap: float = float("nan")
    others_gap: float = float("nan")
    helped_value: str = ""
    others_value: str = ""
    min_gap: float = float("nan")  # a move of the gap smaller than this is within the noise


@dataclass
class OverfitFinding:
    cases: list[OverfitCase]       # alarms: "rising" (overfitting), "gap" (beyond the data's own)
    remedies: list[Evidence]
    budget: float | None           # tokens at which the gaps were compared
    # trials with a gap above OVERFIT_GAP_RATIO that is the data's own, val_loss never
    # turned up: not overfitting (kind "healthy")
    healthy: list[OverfitCase] = field(default_factory=list)
    data_gap: float = float("nan")  # the data's own val/train gap, relative to train_loss
    data_gap_n: int = 0             # trials it was measured on (0: rules.OVERFIT_GAP_RATIO)
    corpus_tokens: float | None = None  # the data doctor's train tokens, if known


@dataclass
class DivergeCase:
    trial_id: str
    learning_rate: float
    reason: str                    # diverged | nan | exploding | flat
    iter: float                    # where it showed
    loss: float                    # the loss that gave it away (NaN for nan)


@dataclass
class DivergeFinding:
    cases: list[DivergeCase]
    safe_lr: tuple[float, float] | None   # lr range of the trials that were stable, trained
                                          # far enough and within `safe_margin` of the best
    good_lr: tuple[float, float] | None   # lr range of the top trials at equal budget
    n_safe: int
    ln_vocab: float | None
    # stable trials at learning rates above every near-best one, all more than `margin`
    # worse than the best at equal budget: too high to converge well (reason "too_high",
    # iter and loss at the budget). too_high_lr is the lowest of their learning rates.
    too_high: list[DivergeCase] = field(default_factory=list)
    too_high_lr: float | None = None
    best_loss: float = float("nan")      # the best stable trial's metric at `budget`
    margin: float = float("nan")         # "near the best": within this many nats of it
    margin_source: str = "rule"          # rule (CONVERGE_RATIO) | a Noise source (judge):
                                         # confirm | reference | curves
    budget: float | None = None
    safe_margin: float = float("nan")    # "indistinguishable from the best": Noise.pair
    safe_budget: float | None = None     # the budget the safe range was judged at (None:
                                         # too few trials trained far enough)
    safe_min_tokens: float = float("nan")  # "far enough": SAFE_MIN_FRACTION of the longest


@dataclass
class Effect:
    knob: str
    metric: str                    # val_loss | tokens_per_s | peak_mem | gap
    rho: float
    n: int
    low_median: float = float("nan")
    high_median: float = float("nan")
    low_ids: list[str] = field(default_factory=list)
    high_ids: list[str] = field(default_factory=list)
    direction: str = "none"        # up | down | none | noise (below the confirm runs' seed
                                   # noise) | few (too few trials) | constant

    @property
    def diff(self) -> float:
        return self.high_median - self.low_median


@dataclass
class EffectsFinding:
    budget: float | None
    ids: list[str]
    effects: list[Effect]
    naive: list[Effect]            # the same on final values, to show the early-stop bias
    importances: dict[str, float]
    importance_source: str         # "meta" (Optuna) or "spearman" (fallback)
    memory_source: str             # "measured" or "estimated"

    def get(self, knob: str, metric: str, naive: bool = False) -> Effect | None:
        for e in (self.naive if naive else self.effects):
            if e.knob == knob and e.metric == metric:
                return e
        return None


@dataclass
class NextStep:
    recommended: dict[str, Any]
    trial_id: str | None
    notes: list[tuple[str, dict[str, Any]]]   # (catalogue key, values) advice lines
    next_space: dict[str, Any]                # the narrowed space as a mapping
    top_ids: list[str]


@dataclass
class Findings:
    summary: Summary
    leaderboard: Leaderboard
    oom: OomFinding
    slow: SlowFinding
    overfit: OverfitFinding
    diverge: DivergeFinding
    effects: EffectsFinding
    next: NextStep
    confirm: dict[str, Any] | None = None  # the confirm runs' summary (meta.confirm)
    noise: Noise | None = None             # what every loss comparison is judged against
    samples: dict[str, Any] | None = None  # results/samples.json (search/samples.py)


@dataclass
class Report:
    """A finished report, not yet written: `write_report` puts it on disk."""

    markdown: str
    figures: dict[str, bytes]
    files: dict[str, str]
    findings: Findings
    name: str = "search"
