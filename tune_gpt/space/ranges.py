"""Every number a search space names, range-checked in one place before any arithmetic.

- `check_knob`: a training knob's value (fixed, from the base file, a bound, choice or prior
  of a tuned knob, a group's value) against the training config's own rules
  (config.validate), one knob at a time, plus a cap on whole numbers that no GPT run reaches.
- `number`: any other number of the space (budget, scheduler, resources, sampler, ...):
  parsed, finite, whole where a count is meant, inside its range.
- `parse_final`: the `final:` section, and a budget too small for both of its phases.
- `check_budget_fits`: a token budget or an ASHA grace period that cannot hold one iteration
  (or one evaluation) of every config the space can produce is refused, with the smallest
  value that would be meaningful.

Each message names the key as the user wrote it (`<file>: fixed.block_size`,
`<file>: budget.tokens_per_eval`) and says how to fix it, on one line.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from tune_gpt.config import FIELD_TYPES, TrainConfig, coerce, from_mapping
from tune_gpt.errors import UserError
from tune_gpt.space.amounts import parse_amount
from tune_gpt.space.keys import dataclass_from
from tune_gpt.space.schema import FinalSettings, SearchSpace

# Far beyond any GPT a search trains, and below what torch's int32 shapes and seeds take.
MAX_WHOLE = 2**31 - 1

# ----------------------------------------------------------------------------- knob values

# A knob is checked alone: the knobs a config rule ties it to are set to values that let
# only the knob's own rule speak (n_embd/n_head divisibility is checked for the space as a
# whole in resolve.check_heads; min_lr <= learning_rate and warmup <= decay per trial).
_PARTNERS: dict[str, Any] = {
    "n_embd": lambda v: {"n_head": 1},
    "n_head": lambda v: {"n_embd": v if isinstance(v, int) and v >= 1 else 128},
    "learning_rate": lambda v: {"min_lr": 0.0},
    "min_lr": lambda v: {"learning_rate": v if math.isfinite(v) and v > 1e-3 else 1e-3},
    "warmup_iters": lambda v: {"lr_decay_iters": MAX_WHOLE},
    "lr_decay_iters": lambda v: {"warmup_iters": 0},
}


def check_knob(knob: str, value: Any, where: str) -> Any:
    """`value`, type-checked, if it is a legal value of `knob`; else a UserError naming
    `where` (e.g. '<file>: fixed.block_size'). Reuses config.validate's rules."""
    value = coerce(knob, value, f"{where}: ")
    if FIELD_TYPES[knob] is int and abs(value) > MAX_WHOLE:
        raise UserError(f"{where}: {value!r} is not allowed ('{knob}' must be at most "
                        f"{MAX_WHOLE:,})")
    partners = _PARTNERS.get(knob, lambda v: {})(value)
    try:
        from_mapping({**TrainConfig().to_dict(), **partners, knob: value})
    except UserError as e:
        raise UserError(f"{where}: {value!r} is not allowed ({e})") from None
    return value


# ----------------------------------------------------------------------------- other numbers

def number(value: Any, where: str, *, whole: bool = False, above: float | None = None,
           at_least: float | None = None, at_most: float | None = None,
           suffix: bool = True, unit: str = "") -> Any:
    """One number of a space's sections: parsed (200k, 2e15, 2P when `suffix`), finite,
    whole when `whole`, and in range. Returns an int when `whole`, else a float."""
    if suffix:
        v = parse_amount(value, where)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {value!r}")
    else:
        v = float(value)
    of = f" of {unit}" if unit else ""
    unit = f" {unit}" if unit else ""
    if not math.isfinite(v):
        raise UserError(f"{where} must be a finite number{of}, got {value!r}")
    if whole and not v.is_integer():
        raise UserError(f"{where} must be a whole number{of}, got {value!r}")
    if above is not None and not v > above:
        raise UserError(f"{where} must be > {above:g}{unit}, got {value!r}")
    if at_least is not None and v < at_least:
        raise UserError(f"{where} must be >= {at_least:g}{unit}, got {value!r}")
    if at_most is not None and v > at_most:
        raise UserError(f"{where} must be at most {at_most:,g}{unit}, got {value!r}")
    return int(v) if whole else v


# ----------------------------------------------------------------------------- budgets

_SHAPE = ("batch_size", "block_size", "gradient_accumulation_steps", "eval_interval",
          "max_iters")
_MAX_SHAPES = 100_000  # configs enumerated exactly; beyond, each knob's extremes stand in


def shapes(space: SearchSpace) -> list[dict[str, int]]:
    """The distinct combinations of the knobs that fix a trial's iterations and evaluations
    (batch_size, block_size, gradient_accumulation_steps, eval_interval, max_iters) the
    space's trials can have, before the budget derives any; groups keep their knobs
    together, as resolve does."""
    base = {k: space.fixed.get(k, getattr(TrainConfig(), k)) for k in _SHAPE}
    axes: list[list[dict[str, int]]] = []
    for name, d in space.params.items():
        if name in _SHAPE:
            axes.append([{name: v} for v in d.candidates() or []])
        elif name not in FIELD_TYPES:  # a group: its choices, restricted to these knobs
            seen = {tuple(sorted((k, v[k]) for k in _SHAPE if k in v)) for v in d.values}
            if any(seen):
                axes.append([dict(s) for s in seen])
    if math.prod(len(a) for a in axes) > _MAX_SHAPES:
        # too many to list: the smallest and largest value of each knob, combined
        merged: dict[str, list[int]] = {}
        for a in axes:
            for choice in a:
                for k, v in choice.items():
                    merged.setdefault(k, []).append(v)
        axes = [[{k: min(vs)}, {k: max(vs)}] for k, vs in merged.items()]
    out = []
    for combo in itertools.product(*axes):
        shape = dict(base)
        for part in combo:
            shape.update(part)
        out.append(shape)
    return out


def _tpi(s: dict[str, int]) -> int:
    return s["batch_size"] * s["block_size"] * s["gradient_accumulation_steps"]


def check_budget_fits(space: SearchSpace) -> None:
    """Refuse a token budget below one iteration of the space's largest config (that config
    would overrun it), and an ASHA grace period under one evaluation."""
    src, b, s = space.source, space.budget, space.scheduler
    all_shapes = shapes(space)
    big = max(all_shapes, key=_tpi)
    one = _tpi(big)
    said = (f"one iteration of the space's largest config ({one:,} tokens = batch_size "
            f"{big['batch_size']} x block_size {big['block_size']} x "
            f"gradient_accumulation_steps {big['gradient_accumulation_steps']})")
    for key, what in (("tokens_per_trial", "trains"), ("tokens_per_eval", "evaluates")):
        v = getattr(b, key)
        if v is not None and v < one:
            raise UserError(f"{src}: budget.{key} ({v:,}) is less than {said}: that config "
                            f"{what} after more tokens than this; the smallest meaningful "
                            f"value is {one:,}")
    if s.type != "asha" or not s.grace_period or s.time_attr not in ("tokens", "iter"):
        return  # FLOPs and seconds per evaluation are known only once trials run
    # as resolve derives them: eval_interval from tokens_per_eval, max_iters from
    # tokens_per_trial, unless fixed; a trial also evaluates at its last iteration
    per_eval = b.tokens_per_eval if "eval_interval" not in space.fixed else None
    per_trial = b.tokens_per_trial if "max_iters" not in space.fixed else None
    first = []  # each config's first evaluation, in time_attr units
    for sh in all_shapes:
        tpi = _tpi(sh)
        every = math.ceil(per_eval / tpi) if per_eval else sh["eval_interval"]
        last = max(1, math.ceil(per_trial / tpi)) if per_trial else sh["max_iters"]
        first.append(min(every, last) * (tpi if s.time_attr == "tokens" else 1))
    # Below the earliest first evaluation, every trial is judged at its first evaluation
    # whatever the grace period says; with tokens_per_eval, an evaluation is that many tokens.
    least = per_eval if per_eval and s.time_attr == "tokens" else min(first)
    if s.grace_period < least:
        unit = "tokens" if s.time_attr == "tokens" else "iterations"
        raise UserError(f"{src}: scheduler.grace_period ({s.grace_period:,.0f} {unit}) is less "
                        f"than one evaluation, so ASHA's first rung means nothing (every trial "
                        f"is judged at its first evaluation); the smallest meaningful value is "
                        f"{least:,} {unit}")


# The least a final run needs: its start (Ray, data, model; horizon.STARTUP_S), the tables
# and report after it, and half a minute of training.
MIN_FINAL_S = 60.0
# The least exploring needs: a trial's start and its first evaluation. A 240 s budget with the
# CPU profile's 13% share gave exploring 31 s: no trial had reported, nothing was measured,
# and the other 87% went unused. (A bigger model's first evaluation may need longer.)
MIN_EXPLORE_S = 60.0


def parse_final(f: dict[str, Any], source: str, space: SearchSpace) -> FinalSettings:
    """`final:` needs a budget with an end (time, tokens or FLOPs in all): the final run is
    what is left of it once exploring stops."""
    final = dataclass_from(FinalSettings, f, f"{source}: final")
    if final.explore_share == "auto":
        from tune_gpt.explore import auto_explore_share

        final.explore_share, final.explore_reason = auto_explore_share(
            space.budget.max_concurrent_trials, final.continue_trial is not False)
    else:
        if isinstance(final.explore_share, str):
            raise UserError(f"{source}: final.explore_share must be a number (0 < x <= 0.9) "
                            f"or auto, got {final.explore_share!r}")
        final.explore_share = number(final.explore_share, f"{source}: final.explore_share",
                                     above=0, at_most=0.9, suffix=False)
        final.explore_reason = f"explore_share {final.explore_share:g}: set in the space"
    final.patience = number(final.patience, f"{source}: final.patience", whole=True,
                            at_least=0, at_most=1000, suffix=False)
    if not isinstance(final.continue_trial, bool):
        raise UserError(f"{source}: final.continue_trial must be true or false, got "
                        f"{final.continue_trial!r}")
    b = space.budget
    if not (b.time_budget_s or b.total_tokens or b.total_flops):
        raise UserError(f"{source}: final: needs a budget with an end to split between "
                        f"exploring and the final run; set budget.time_budget_s (e.g. 900), "
                        f"budget.total_tokens or budget.total_flops")
    share = final.explore_share
    least = math.ceil(max(MIN_FINAL_S / (1 - share), MIN_EXPLORE_S / share))
    if b.time_budget_s and b.time_budget_s * (1 - share) < MIN_FINAL_S:
        raise UserError(f"{source}: budget.time_budget_s {b.time_budget_s:g} is too small for "
                        f"both phases: the final run gets {1 - share:.0%} of it, under the "
                        f"{MIN_FINAL_S:g} s it needs to start and train; the smallest that "
                        f"works is {least}")
    if b.time_budget_s and b.time_budget_s * share < MIN_EXPLORE_S:
        raise UserError(f"{source}: budget.time_budget_s {b.time_budget_s:g} is too small for "
                        f"both phases: exploring gets {share:.1%} of it "
                        f"({b.time_budget_s * share:.0f} s), under the {MIN_EXPLORE_S:g} s a "
                        f"trial needs to start and report its first evaluation; the smallest "
                        f"that works is {least} (or set final.explore_share higher)")
    if b.total_tokens and b.tokens_per_trial and b.total_tokens * share < b.tokens_per_trial:
        raise UserError(f"{source}: budget.total_tokens {b.total_tokens:,} is too small for "
                        f"both phases: exploring gets {share:.0%} of it, less than one trial "
                        f"(tokens_per_trial {b.tokens_per_trial:,}); the smallest that works "
                        f"is {math.ceil(b.tokens_per_trial / share):,}")
    return final
