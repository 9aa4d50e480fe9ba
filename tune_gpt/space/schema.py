"""The typed shape of a search space: what `load` builds from a YAML file and every later
stage (resolve, the search, the report) reads. No parsing here; see load.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tune_gpt.config import FIELD_TYPES, knob
# the typed sections live beside the trial contract, which records them (SearchMeta)
from tune_gpt.settings import (SAMPLERS, Budget, ConfirmSettings,  # noqa: F401
                               FinalSettings, SamplerSettings, SchedulerSettings)
from tune_gpt.trial import METRICS  # noqa: F401  (the metrics a space may name)

SECTIONS = ("name", "description", "base", "data", "trainable", "metric", "mode", "params",
            "fixed", "sampler", "scheduler", "budget", "resources", "memory", "confirm",
            "final", "profiles")
# The Ray Tune trainable a space's trials run, as `module:function`. tune_gpt names it and
# never imports it: the search imports it by this name when it builds the Tuner, so the
# top-level `trainables` package (or a user's own) plugs in from outside.
DEFAULT_TRAINABLE = "trainables.gpt:gpt_trainable"
TIME_ATTRS = ("tokens", "flops", "iter", "time_s")
DIST_KINDS = ("choice", "uniform", "loguniform", "int")
CONFIDENCES = ("low", "medium", "high")  # how tightly the sampler trusts a prior


@dataclass
class Dist:
    """One tuned parameter. `kind` is choice | uniform | loguniform | int."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    step: int | None = None
    log: bool = False
    values: list[Any] = field(default_factory=list)  # choice values (for groups: dicts)
    prior: Any = None             # where good values probably are (None: no prior)
    confidence: str = "medium"    # low | medium | high: how tightly to sample around it
    auto: bool = False            # `prior: auto`: set by a cited rule (space/auto_priors.py)

    def candidates(self) -> list[Any] | None:
        """Every value it can take, when that is a finite list (choice, int)."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        return None

    def to_yaml(self) -> dict[str, Any]:
        if self.kind == "choice":
            out_c: dict[str, Any] = {"choice": list(self.values)}
            if self.prior is not None or self.auto:
                out_c.update(prior="auto" if self.auto else self.prior,
                             confidence=self.confidence)
            return out_c
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step:
            out["step"] = self.step
        if self.kind == "int" and self.log:
            out["log"] = True
        if self.prior is not None or self.auto:
            out.update(prior="auto" if self.auto else self.prior, confidence=self.confidence)
        return out


@dataclass
class SearchSpace:
    """A loaded, validated search space (one profile applied)."""

    name: str = knob("", "Search name prefix (letters, digits, '_', '-', '.').")
    source: str = knob("", "The file it was read from (named in every error).")
    profile: str = knob("base", "The profile applied: cpu | gpu | base (none).")
    description: str = knob("", "One line saying what the search is for.")
    data: str = knob("shakespeare_char", "Data set name, or a UTF-8 text file.")
    trainable: str = knob(DEFAULT_TRAINABLE, "The Ray Tune function trainable its trials run, "
                                             "as module:function (importable on every node).")
    metric: str = knob("val_loss", "What ASHA and the sampler compare: val_loss | "
                                   "best_val_loss | train_loss.")
    mode: str = knob("min", "min (every metric is a loss).")
    base: str = knob("", "The config file (a nanoGPT config/*.py, read never run, or a YAML of "
                         "knobs) whose knobs are fixed underneath `fixed:`; '' for none.")
    base_notes: list[str] = field(default_factory=list, metadata={
        "doc": "What the base file's knobs did not do as written (ignored nanoGPT keys, knobs "
               "the space derives)."})
    params: dict[str, Dist] = field(default_factory=dict, metadata={
        "doc": "Tuned knobs (or groups of knobs set together) -> their distribution."})
    fixed: dict[str, Any] = field(default_factory=dict, metadata={
        "doc": "Knobs the same for every trial."})
    sampler: SamplerSettings = field(default_factory=SamplerSettings, metadata={
        "doc": "Optuna sampler: type (tpe | random | cmaes | gp | grid | nsga2), seed and the "
               "sampler's own options."})
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings, metadata={
        "doc": "Early stopping (ASHA)."})
    budget: Budget = field(default_factory=Budget, metadata={"doc": "What the search may spend."})
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0},
                                        metadata={"doc": "CPUs and GPUs (fractions allowed) "
                                                         "per trial."})
    memory_limit: int | None = knob(None, "Bytes per trial (GPU: memory fraction; CPU: a "
                                          "capped child process).")
    rescue: int = knob(0, "OOM rescues per config: batch/2, accumulation x2 (0 = off).")
    confirm: ConfirmSettings = field(default_factory=ConfirmSettings, metadata={
        "doc": "Re-runs of the top configs on new seeds after the search."})
    final: FinalSettings | None = field(default=None, metadata={
        "doc": "Explore, then train the best config found to the budget's horizon (None: "
               "the search only explores)."})
    raw: dict[str, Any] = field(default_factory=dict, metadata={
        "doc": "The merged mapping, kept as the search's artifact."})
    profiles: tuple[str, ...] = knob((), "Profiles the file offers.")

    def group_params(self) -> dict[str, Dist]:
        return {k: d for k, d in self.params.items() if k not in FIELD_TYPES}

    def priors(self) -> dict[str, Any]:
        """Each param's prior as the sampler uses it (its first trial): params without one,
        and `prior: auto` not yet resolved (space/auto_priors.py), are left out."""
        return {k: d.prior for k, d in self.params.items()
                if d.prior is not None and not (d.auto and d.prior == "auto")}
