"""The typed shape of a search space: what `load` builds from a YAML file and every later
stage (resolve, the search, the report) reads. No parsing here; see load.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tune_gpt.config import FIELD_TYPES, knob
from tune_gpt.trial import METRICS  # noqa: F401  (the metrics a space may name)

SECTIONS = ("name", "description", "base", "data", "metric", "mode", "params", "fixed",
            "sampler", "scheduler", "budget", "resources", "memory", "confirm", "profiles")
# sampler.type -> the Optuna sampler class (optuna.samplers.<name>)
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler",
            "gp": "GPSampler", "grid": "GridSampler", "nsga2": "NSGAIISampler"}
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
            if self.prior is not None:
                out_c.update(prior=self.prior, confidence=self.confidence)
            return out_c
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step:
            out["step"] = self.step
        if self.kind == "int" and self.log:
            out["log"] = True
        if self.prior is not None:
            out.update(prior=self.prior, confidence=self.confidence)
        return out


@dataclass
class SchedulerSettings:
    """`scheduler:` — early stopping (Ray Tune's ASHA), in Ray's own words."""

    type: str = knob("asha", "asha | none (none: every trial runs to its end).")
    time_attr: str = knob("", "What ASHA's rungs measure: tokens | flops | iter | time_s "
                              "(default: tokens when the budget is in tokens, else iter). "
                              "flops counts 6N + 12*L*C*T per token, so a big model's "
                              "rung costs what a small model's does.")
    grace_period: float = knob(0, "The first rung, in time_attr units (0: a tenth of max_t).")
    reduction_factor: float = knob(3, "Each rung keeps the best 1/reduction_factor of trials.")
    max_t: float = knob(0, "The last rung (0: the trial budget, budget.tokens_per_trial).")
    brackets: int = knob(1, "ASHA brackets (1 is what the ASHA paper recommends).")


@dataclass
class Budget:
    """`budget:` — how much the search may spend, per trial and in all."""

    num_samples: int = knob(10, "Trials to run (a grid: its size unless given).")
    max_concurrent_trials: int | None = knob(None, "Trials at once (default: CPUs / cpu per "
                                                   "trial).")
    time_budget_s: float | None = knob(None, "Stop the search after this many seconds.")
    tokens_per_trial: int | None = knob(None, "Each trial's length in tokens: max_iters = this "
                                              "/ tokens per iteration.")
    tokens_per_eval: int | None = knob(None, "Evaluate every this many tokens, so evaluations "
                                             "(and ASHA's rungs) fall at equal tokens.")
    total_tokens: int | None = knob(None, "Compute budget: stop the search once its trials "
                                          "together have trained this many tokens.")
    total_flops: float | None = knob(None, "Compute budget in training FLOPs (e.g. 2e15 or "
                                           "2P): stop once the trials together spent it.")


@dataclass
class ConfirmSettings:
    """`confirm:` — is the winner real? After the search, the top configs train again at
    their full budget on new seeds, and the report compares them against the seed noise."""

    top_k: int = knob(0, "Configs to re-run, best first (0: no confirm runs).")
    seeds: int = knob(2, "New seeds per config (the seed of model init and batches).")


@dataclass
class SearchSpace:
    """A loaded, validated search space (one profile applied)."""

    name: str = knob("", "Search name prefix (letters, digits, '_', '-', '.').")
    source: str = knob("", "The file it was read from (named in every error).")
    profile: str = knob("base", "The profile applied: cpu | gpu | base (none).")
    description: str = knob("", "One line saying what the search is for.")
    data: str = knob("shakespeare_char", "Data set name, or a UTF-8 text file.")
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
    sampler: dict[str, Any] = field(default_factory=lambda: {"type": "tpe"}, metadata={
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
    raw: dict[str, Any] = field(default_factory=dict, metadata={
        "doc": "The merged mapping, kept as the search's artifact."})
    profiles: tuple[str, ...] = knob((), "Profiles the file offers.")

    def group_params(self) -> dict[str, Dist]:
        return {k: d for k, d in self.params.items() if k not in FIELD_TYPES}
