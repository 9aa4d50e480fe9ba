"""The typed sections a search runs with and records: sampler, scheduler, budget, confirm,
final.

The space loader builds them from YAML (space/load.py), the search runs on them, and
SearchMeta (trial.py) keeps them in meta.json, so the report reads the same types the search
ran with. ASHA's rungs are decided here, once (`SchedulerSettings.first_rung`, `.rungs`):
the tuner, the figures, the validate summary and the report's "fewer evaluations" remedy all
ask this class.

Imports only tune_gpt.config's `knob` (which imports nothing heavy).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from tune_gpt.config import knob


def known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `cls` (files written by other
    versions may hold more, or fewer)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


# sampler.type -> the Optuna sampler class (optuna.samplers.<name>)
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler",
            "gp": "GPSampler", "grid": "GridSampler", "nsga2": "NSGAIISampler"}


@dataclass
class SamplerSettings:
    """`sampler:` — the Optuna sampler. In YAML one flat mapping: type, seed, priors and the
    sampler's own keyword arguments (`n_startup_trials: 5`), which land in `options`."""

    type: str = knob("tpe", "tpe | random | cmaes | gp | grid | nsga2.")
    seed: int | None = knob(None, "Seeds the sampler (and, unless --seed, every trial).")
    priors: bool = knob(True, "false: ignore the params' `prior:` (no recipe trial first).")
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "doc": "The Optuna sampler's own keyword arguments (checked against its signature)."})

    OWN = ("type", "seed", "priors")  # the keys that are not the Optuna sampler's options

    @classmethod
    def from_yaml(cls, m: Mapping[str, Any]) -> SamplerSettings:
        own = {k: m[k] for k in cls.OWN if k in m}
        return cls(**own, options={k: v for k, v in m.items() if k not in cls.OWN})

    def startup_trials(self) -> int:
        """The sampler's start-up trials (n_startup_trials; 10, TPE's own default)."""
        return int(self.options.get("n_startup_trials", 10))

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.priors is False:
            out["priors"] = False
        return {**out, **self.options}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.to_yaml().items())


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
    rung_cooldown: float = knob(
        0, "WSD trials only: at each rung before the cool-down, read the trial after a "
           "throwaway cool-down branch this share of its steps long (0.1: a tenth), so "
           "the rung compares what runs of that length would finish at; 0: off "
           "(tune_gpt/rung_read.py).")

    # With no grace_period, the first rung is a tenth of max_t: with reduction_factor 3 that
    # gives rungs at 1/10, 3/10 and 9/10 of a trial, three decisions before the end.
    DEFAULT_GRACE_FRACTION = 0.1

    def first_rung(self, max_t: float | None = None) -> float:
        """ASHA's first rung (grace_period) in time_attr units; `max_t` when the settings
        leave it to the trial budget. 0 when neither is known."""
        top = self.max_t or max_t or 0
        return float(self.grace_period or top * self.DEFAULT_GRACE_FRACTION)

    def rungs(self, max_t: float | None = None, most: int = 20) -> list[float]:
        """Every rung: the first, times reduction_factor, up to max_t (ASHA's own rule)."""
        top = float(self.max_t or max_t or 0)
        r = self.first_rung(top)
        if self.type != "asha" or r <= 0 or self.reduction_factor <= 1 or not math.isfinite(top):
            return []
        out = []
        while r <= top * (1 + 1e-9) and len(out) < most:
            out.append(r)
            r *= self.reduction_factor
        return out

    def resolved(self, max_t: float) -> SchedulerSettings:
        """A copy with max_t and grace_period written out (what the search ran with): what
        meta.json records, so the report never has to work out the units again."""
        top = float(self.max_t or max_t)
        return SchedulerSettings(**{**asdict(self), "max_t": top,
                                    "grace_period": self.first_rung(top)})


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
class FinalSettings:
    """`final:` — explore, then exploit, in one budget. The search explores (sampler, ASHA)
    for part of its budget, then trains the best config it found for the rest, to the
    budget's horizon, and hands back that model (tune_gpt.horizon holds the rules)."""

    explore_share: float | str = knob(
        "auto", "The most of the budget exploring may take; the final run gets the rest. "
                "auto: the largest share whose waste, if exploring finds nothing better than "
                "the first trial, costs the final model at most one seed's noise "
                "(tune_gpt.explore.auto_explore_share); a number (0 < x <= 0.9) sets it.")
    # set when the space is read: why explore_share is what it is (auto's rule, with figures)
    explore_reason: str = field(default="", init=False, compare=False)
    patience: int = knob(0, "Stop exploring early once this many challengers in a row did "
                            "worse than the leader at a rung they both reached (0: the "
                            "sampler's start-up trials, at least reduction_factor).")
    continue_trial: bool = knob(True, "The final run continues the chosen trial's own state "
                                      "(a warm restart to the longer horizon), so the compute "
                                      "spent on it is kept; false: it starts again.")


# `resources:` — per trial, in Ray's words (fractions allowed)
RESOURCES = ("cpu", "gpu")

SECTION_TYPES: dict[str, type] = {"scheduler": SchedulerSettings, "budget": Budget,
                                  "final": FinalSettings}


def section_from(name: str, data: Any) -> Any:
    """A section read back from meta.json (a mapping; keys of other versions dropped)."""
    if name == "sampler":
        if isinstance(data, SamplerSettings):
            return data
        data = dict(data or {})
        if isinstance(data.get("options"), Mapping):  # written by to_dict, not YAML
            data = {**{k: v for k, v in data.items() if k != "options"}, **data["options"]}
        return SamplerSettings.from_yaml(data)
    cls = SECTION_TYPES[name]
    if isinstance(data, cls):
        return data
    return cls(**known_fields(cls, data or {}))
