"""The trial contract: what every stage of a search says about one trial, in one place.

    outcome vocabulary   running, completed, stopped_early, oom, predicted_oom, diverged, failed
    outcome_of(...)      a finished trial's outcome, decided once from its last report
    columns              what a trial reports at every evaluation, what the tables hold
    trial_row(...)       one row of the trials table (from Ray's results or from MLflow)
    TrialSettings        the search's settings every trial needs (given to the trainable
                         with tune.with_parameters, not smuggled in its config)
    TrialPlan            what the searcher decided for one trial beyond its knobs
    SearchMeta           what a search was (space, budget, counts, best): meta.json

The trainable, the Ray callbacks, the results tables, MLflow and the report all import
this module; it imports nothing heavy (no torch, ray, mlflow or pandas): only the typed
settings sections it records (tune_gpt.settings).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from tune_gpt.settings import (Budget, SamplerSettings, SchedulerSettings,
                               known_fields, section_from)

# ----------------------------------------------------------------------------- outcomes

RUNNING = "running"              # reported by a trial between evaluations; not an end
COMPLETED = "completed"          # trained to max_iters
STOPPED_EARLY = "stopped_early"  # stopped from outside: ASHA at a rung, or a search budget
OOM = "oom"                      # ran out of memory at run time
PREDICTED_OOM = "predicted_oom"  # the estimator said it would not fit; never launched
DIVERGED = "diverged"            # loss became NaN/inf or exploded
FAILED = "failed"                # any other error (the message is recorded)

# How a trial can end (every count, every table uses this order).
ENDED = (COMPLETED, STOPPED_EARLY, OOM, PREDICTED_OOM, DIVERGED, FAILED)
ALL = (RUNNING, *ENDED)
# Outcomes the trainable itself reports as its last word.
DECIDED_BY_TRIAL = (COMPLETED, OOM, PREDICTED_OOM, DIVERGED, FAILED)
# Reports whose losses are real evaluations of a model (curves are made of these).
EVALUATED = (RUNNING, COMPLETED)
# Outcomes whose losses say how good the config is (the others carry a penalty).
USABLE = (COMPLETED, STOPPED_EARLY)


def outcome_of(last: Mapping[str, Any] | None, errored: bool = False) -> str:
    """A finished trial's outcome from its last report.

    The trainable reports completed / oom / predicted_oom / diverged / failed itself. A trial
    whose process raised (`errored`) failed, unless its last report already said why
    (out of memory, diverged). A trial that ended without an error while its last report
    still said "running", or before its first report, was stopped from outside: by ASHA or
    by the search's time or token budget."""
    got = (last or {}).get("outcome")
    if errored:
        return got if got in (OOM, PREDICTED_OOM, DIVERGED) else FAILED
    return got if got in DECIDED_BY_TRIAL else STOPPED_EARLY


def recorded_outcome(tag: Any) -> str:
    """An outcome read back from a store (an MLflow tag): kept if it is one of ours
    ("running" too: the search was interrupted), else failed."""
    return tag if tag in ALL else FAILED


# ----------------------------------------------------------------------------- columns

# One evaluation, as the training loop measures it (tune_gpt.train.EvalRecord).
EVAL_KEYS = ("iter", "tokens", "train_loss", "val_loss", "lr", "tokens_per_s", "ms_per_iter",
             "mfu", "peak_mem_bytes", "elapsed_s", "eval_s")
# The curves table: one row per evaluation of a trial.
CURVE_COLUMNS = ("trial_id", *EVAL_KEYS)
# Constants of a trial, reported with every evaluation.
TRIAL_CONSTANTS = ("tokens_per_iter", "n_params", "vocab_size", "est_mem_bytes",
                   "flops_per_token")
# What a report adds to an evaluation (running best, wall time, training FLOPs so far).
REPORT_KEYS = ("best_val_loss", "wall_s", "flops")
# A rung read after a cool-down branch (tune_gpt.rung_read): the plateau's val loss, the
# branch's steps, and the tokens such branches have cost the trial so far.
READ_KEYS = ("stable_val_loss", "read_after", "read_tokens")
# Numeric metrics logged to MLflow at every evaluation (iter is the step).
METRIC_KEYS = tuple(k for k in EVAL_KEYS if k != "iter") + REPORT_KEYS + TRIAL_CONSTANTS \
    + READ_KEYS

# The trials table: the knobs (tune_gpt.config.KNOBS) plus these.
TRIAL_TEXT = ("trial_id", "outcome", "error", "rescue_of", "device", "node")
TRIAL_NUMBERS = ("tokens_per_iter", "iters", "tokens", "read_tokens", "best_val_loss",
                 "final_val_loss", "best_train_loss", "final_train_loss", "tokens_per_s",
                 "ms_per_iter", "mfu", "peak_mem_bytes", "est_mem_bytes", "wall_s", "eval_s",
                 "n_params", "vocab_size")
# ... of which a table from before they existed may lack these without a word (read as NaN)
LATER_NUMBERS = ("read_tokens",)

# The search metric (space.metric) -> the trials-table column that ranks trials by it.
# val_loss is the last evaluation's loss, which ASHA and the sampler compare; a trial is
# ranked by the best value it reached (the checkpoint a user keeps).
METRICS = ("val_loss", "best_val_loss", "train_loss")
SCORE_COLUMN = {"val_loss": "best_val_loss", "best_val_loss": "best_val_loss",
                "train_loss": "best_train_loss"}


# ... and the column holding what the sampler was told (the metric of the last report).
TOLD_COLUMN = {"val_loss": "final_val_loss", "best_val_loss": "best_val_loss",
               "train_loss": "final_train_loss"}


def curve_point(trial_id: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the curves table from one evaluation's report: the run itself, so a rung
    read after a cool-down branch (tune_gpt.rung_read) gives its plateau's val_loss here
    (the trials table and the sampler keep the read, what the search compared)."""
    point = {"trial_id": trial_id, **{c: report.get(c) for c in EVAL_KEYS}}
    if _finite(report.get("stable_val_loss")):
        point["val_loss"] = report["stable_val_loss"]
    return point


def told_column(metric: str) -> str:
    """The trials-table column holding the value the sampler received for `metric`."""
    return TOLD_COLUMN.get(metric, "final_val_loss")


def score_column(metric: str) -> str:
    """The trials-table column that ranks trials for `metric`."""
    return SCORE_COLUMN.get(metric, "best_val_loss")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def trial_row(trial_id: str, outcome: str, error: str, config: Mapping[str, Any],
              evals: list[Mapping[str, Any]], last: Mapping[str, Any],
              knobs: tuple[str, ...]) -> dict[str, Any]:
    """One row of the trials table from a trial's config, its evaluations (reports whose
    outcome is in EVALUATED) and its last report. Shared by the Ray and the MLflow readers,
    so both give the same table."""
    val = [float(r["val_loss"]) for r in evals if _finite(r.get("val_loss"))]
    train = [float(r["train_loss"]) for r in evals if _finite(r.get("train_loss"))]
    end = evals[-1] if evals else {}
    row: dict[str, Any] = {"trial_id": trial_id, "outcome": outcome, "error": error[:500]}
    row.update({k: config.get(k) for k in knobs})
    row.update({
        "tokens_per_iter": last.get("tokens_per_iter"),
        "iters": last.get("iter", end.get("iter", 0)),
        "tokens": last.get("tokens", end.get("tokens", 0)),
        # tokens of throwaway cool-down branches (rung reads): compute spent, not in curves
        "read_tokens": last.get("read_tokens", end.get("read_tokens", 0)) or 0,
        "best_val_loss": min(val) if val else math.nan,
        "final_val_loss": val[-1] if val else math.nan,
        "best_train_loss": min(train) if train else math.nan,
        "final_train_loss": train[-1] if train else math.nan,
        **{k: end.get(k, math.nan) for k in ("tokens_per_s", "ms_per_iter", "mfu")},
        **{k: last.get(k, math.nan) for k in ("peak_mem_bytes", "est_mem_bytes", "eval_s",
                                               "n_params", "vocab_size")},
        "wall_s": last.get("wall_s", last.get("elapsed_s", math.nan)),
        "rescue_of": last.get("rescue_of", ""),
        "device": last.get("device", config.get("device")),
        "node": last.get("node", ""),
    })
    return row


def best_of(rows: list[Mapping[str, Any]], metric: str, mode: str = "min"
            ) -> Mapping[str, Any] | None:
    """The best row for the search's metric (None when no row has a finite score)."""
    col = score_column(metric)
    scored = [r for r in rows if _finite(r.get(col))]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda r: float(r[col]))


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one search needs besides its knobs. Built once by the search and
    handed to the trainable with `tune.with_parameters` (so it is typed, and a restored
    search rebuilds it from the same space)."""

    metric: str = "val_loss"
    """The metric ASHA and the sampler compare (every report must carry it)."""
    checkpoint_dir: str | None = None
    """Folder of the trials' checkpoints (<search>/checkpoints); None: no checkpoints."""
    memory_limit_bytes: int | None = None
    """Per-trial memory limit (CUDA memory fraction; CPU: a capped child process)."""
    rung_cooldown: float = 0.0
    """scheduler.rung_cooldown: a WSD trial's rungs read after a cool-down branch this long."""
    rungs: tuple[float, ...] = ()
    """ASHA's rungs in tokens, for those reads (empty when there are none)."""


TRIAL_PLAN_KEY = "tune_gpt"  # the one entry of a trial's config that is not a knob


@dataclass(frozen=True)
class TrialPlan:
    """What the searcher decided for one trial beyond its knobs, carried in its config under
    TRIAL_PLAN_KEY (the only non-knob entry): the raw sampled values (an OOM rescue enqueues
    them again) and, for a rescue, which trial it re-runs."""

    sampled: dict[str, Any] = field(default_factory=dict)
    rescue_of: str = ""
    rescue_depth: int = 0
    confirm_of: str = ""  # a confirm run: the search trial whose config it trains again
    final_of: str = ""    # the final run: the search trial whose config it trains for longer
    final_until: float = 0.0  # the final run: fit its length to end by then (a time.time())
    final_max_iters: int = 0  # ... but train no more than this (a token or FLOP budget)

    def to_config(self) -> dict[str, Any]:
        return {TRIAL_PLAN_KEY: asdict(self)}

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> TrialPlan:
        return cls(**known_fields(cls, config.get(TRIAL_PLAN_KEY) or {}))


def knobs_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's config without its plan: the knobs it trains with."""
    return {k: v for k, v in config.items() if k != TRIAL_PLAN_KEY}


# ----------------------------------------------------------------------------- the search

@dataclass
class SearchMeta:
    """What one search was and what it found: written as results/meta.json, read by the
    report (from the folder or from MLflow)."""

    name: str = "search"
    space_file: str | None = None
    metric: str = "val_loss"
    mode: str = "min"
    profile: str | None = None
    device: str = "cpu"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)  # max_t, grace resolved
    params: dict[str, Any] = field(default_factory=dict)    # knob or group -> YAML dist
    fixed: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    resources: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    wall_s: float | None = None
    started_at: str | None = None
    memory_limit_bytes: int | None = None
    rescue: int = 0
    importances: dict[str, float] = field(default_factory=dict)
    tracking_uri: str | None = None
    mlflow_parent_run_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] | None = None  # trial_id, metric, value, best_val_loss, config
    vocab_size: int | None = None
    confirm: dict[str, Any] | None = None  # the confirm runs' summary (search/confirm.py)
    final: dict[str, Any] | None = None    # the final phase's summary (search/final.py)
    data_doctor: dict[str, Any] | None = None  # data.doctor.DataReport: tokens, epochs, warnings
    priors: list[str] = field(default_factory=list)  # each prior with its reason

    def __post_init__(self) -> None:
        # typed whatever the caller handed in (meta.json and MLflow give plain mappings)
        self.sampler = section_from("sampler", self.sampler)
        self.scheduler = section_from("scheduler", self.scheduler)
        self.budget = section_from("budget", self.budget)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sampler"] = self.sampler.to_yaml()  # flat, as the space file writes it
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | SearchMeta | None) -> SearchMeta:
        """From meta.json (unknown keys of other versions are dropped, missing ones default)."""
        if isinstance(data, SearchMeta):
            return data
        return cls(**{k: v for k, v in known_fields(cls, data or {}).items() if v is not None})
