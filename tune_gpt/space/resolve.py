"""One trial's configuration from a search space: Optuna suggestions -> every knob.

`suggest` samples the tuned knobs through an Optuna trial (define-by-run, so Ray's
OptunaSearch can use it); `resolve` adds the fixed knobs and derives the rest (n_embd kept
divisible by n_head, max_iters from the token budget, ...). `check_heads` and
`check_corners` reject at load time a space in which some trial could never be valid.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from tune_gpt.config import FIELD_TYPES, TrainConfig, from_mapping
from tune_gpt.errors import UserError
from tune_gpt.space.schema import SearchSpace


def label(value: Any) -> Any:
    """Optuna categoricals hold primitives: a group choice becomes 'n_layer=4,n_embd=128'."""
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return value



def values_of(space: SearchSpace, knob: str) -> list[Any]:
    """All values a knob can take across params, groups and fixed settings."""
    out: list[Any] = []
    if knob in space.params:
        cands = space.params[knob].candidates()
        if cands is None:
            raise UserError(f"{space.source}: params.{knob}: must be int or choice")
        out += cands
    for g in space.group_params().values():
        out += [v[knob] for v in g.values if knob in v]
    if not out:
        out.append(space.fixed.get(knob, getattr(TrainConfig(), knob)))
    return out


def snap_n_embd(raw: int, n_head: int, allowed: list[int]) -> int:
    """The allowed n_embd nearest to the sampled one that n_head divides (ties: the smaller)."""
    ok = [e for e in allowed if e % n_head == 0]
    return min(ok, key=lambda e: (abs(e - raw), e))


def check_heads(space: SearchSpace) -> None:
    heads, embds = values_of(space, "n_head"), values_of(space, "n_embd")
    for h in sorted(set(heads)):
        if not any(e % h == 0 for e in embds):
            raise UserError(f"{space.source}: no n_embd value ({', '.join(map(str, sorted(set(embds))))}) "
                            f"is divisible by n_head={h}; n_embd must be divisible by n_head: "
                            f"change the n_head choices or the n_embd range/step")



def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Sample every tuned parameter through an Optuna trial (define-by-run). Returns the raw
    sampled values; `resolve` turns them into a full training config."""
    out: dict[str, Any] = {}
    for name, d in space.params.items():
        if d.kind == "choice":
            out[name] = trial.suggest_categorical(name, [label(v) for v in d.values])
        elif d.kind == "int":
            out[name] = trial.suggest_int(name, int(d.low), int(d.high), step=d.step or 1, log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def resolve(space: SearchSpace, sampled: Mapping[str, Any], *, data: str | None = None,
            max_iters_cap: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """Sampled values -> the complete knob mapping one trial trains with.

    Order: defaults <- fixed <- sampled knobs and groups; then the derived knobs:
    n_embd snapped to n_head; max_iters from budget.tokens_per_trial; lr_decay_iters =
    max_iters and min_lr = learning_rate/10 unless fixed; eval_interval from
    budget.tokens_per_eval. Raises UserError if the result breaks a config rule."""
    knobs: dict[str, Any] = {**TrainConfig().to_dict(), **space.fixed}
    knobs["dataset"] = data or space.data
    for name, value in sampled.items():
        if name in FIELD_TYPES:
            knobs[name] = value
        else:  # a group: find the mapping whose label was sampled
            choice = next(v for v in space.params[name].values if label(v) == value)
            knobs.update(choice)
    if seed is not None:
        knobs["seed"] = seed
    if "n_embd" in space.params or "n_head" in space.params or space.group_params():
        allowed = sorted(set(values_of(space, "n_embd")))
        if knobs["n_embd"] % knobs["n_head"]:
            knobs["n_embd"] = snap_n_embd(knobs["n_embd"], knobs["n_head"], allowed)
    tpi = knobs["batch_size"] * knobs["block_size"] * knobs["gradient_accumulation_steps"]
    if space.budget.tokens_per_trial and "max_iters" not in space.fixed:
        knobs["max_iters"] = max(1, math.ceil(space.budget.tokens_per_trial / tpi))
    if max_iters_cap:
        knobs["max_iters"] = min(knobs["max_iters"], max_iters_cap)
    if "lr_decay_iters" not in space.fixed:
        knobs["lr_decay_iters"] = knobs["max_iters"]
    if "min_lr" not in space.fixed:
        knobs["min_lr"] = knobs["learning_rate"] / 10
    if "warmup_iters" not in space.fixed and "warmup_iters" not in space.params:
        knobs["warmup_iters"] = min(knobs["warmup_iters"], knobs["max_iters"] // 10)
    if space.budget.tokens_per_eval and "eval_interval" not in space.fixed:
        # ceil: an evaluation never falls just short of the token count it stands for, so a
        # trial reaches each ASHA rung (multiples of it) at the same evaluation as the others
        knobs["eval_interval"] = max(1, math.ceil(space.budget.tokens_per_eval / tpi))
    from_mapping(knobs, f"{space.source}: trial config {dict(sampled)}: ")
    return knobs


def check_corners(space: SearchSpace, n_random: int = 32) -> None:
    """Resolve the space's corners and some random points so that a combination that
    breaks a config rule (e.g. warmup_iters > lr_decay_iters) fails at load, not mid-search."""
    import random

    rng = random.Random(0)
    for i in range(n_random + 2):
        point: dict[str, Any] = {}
        for name, d in space.params.items():
            cands = d.candidates()
            if i < 2:  # first the all-low corner, then the all-high corner
                point[name] = label(cands[-i]) if cands else (d.low, d.high)[i]
            else:
                point[name] = label(rng.choice(cands)) if cands else rng.uniform(d.low, d.high)
        resolve(space, point)
