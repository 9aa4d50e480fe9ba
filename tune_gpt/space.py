"""Search spaces: a YAML file -> typed, validated settings for one search.

The YAML schema (every section optional but `params`; documented in README.md):

    name: beginner                    # search name prefix
    description: one line
    data: shakespeare_char            # dataset name or a UTF-8 text file
    metric: val_loss                  # val_loss | best_val_loss | train_loss (minimised)
    mode: min
    params:                           # knob -> distribution, or a plain value (= fixed)
      batch_size: {choice: [16, 32, 64]}
      learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
      n_layer: {int: [4, 6]}          # inclusive; optional `step`
      dropout: {uniform: [0.1, 0.2]}
      model: {choice: [{n_layer: 2, n_embd: 64}, {n_layer: 4, n_embd: 128}]}  # knobs set together
    fixed: {max_iters: 2000}          # any other knob, the same for every trial
    sampler: {type: tpe, seed: 0}     # tpe | random | cmaes | gp | grid | nsga2 (+ Optuna kwargs)
    scheduler: {type: asha, time_attr: tokens, grace_period: 200k, reduction_factor: 3}
    budget: {num_samples: 20, max_concurrent_trials: 2, time_budget_s: 900,
             tokens_per_trial: 2M, tokens_per_eval: 100k, total_tokens: 20M}
    resources: {cpu: 1, gpu: 0}
    memory: {limit: 8G, rescue: 2}    # per-trial memory budget; OOM rescues (0 = off)
    profiles:                         # sections merged over the above on matching hardware
      cpu: {params: {...}, fixed: {...}, budget: {...}}

The n_embd/n_head rule is kept by construction: when either is tuned, the sampled n_embd
is snapped to the nearest allowed value divisible by the trial's n_head (see `tune_gpt.sampling`);
a space in which some n_head can never be satisfied is rejected at load time.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tune_gpt.config import FIELD_TYPES, KNOBS, TrainConfig, coerce, from_mapping, read_yaml_mapping
from tune_gpt.errors import UserError, closest

SECTIONS = ("name", "description", "data", "metric", "mode", "params", "fixed", "sampler",
            "scheduler", "budget", "resources", "memory", "profiles")
SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid", "nsga2")
METRICS = ("val_loss", "best_val_loss", "train_loss")
TIME_ATTRS = ("tokens", "iter", "time_s")
DIST_KINDS = ("choice", "uniform", "loguniform", "int")


@dataclass
class Dist:
    """One tuned parameter. `kind` is choice | uniform | loguniform | int."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    step: int | None = None
    log: bool = False
    values: list[Any] = field(default_factory=list)  # choice values (for groups: dicts)

    def candidates(self) -> list[Any] | None:
        """Every value it can take, when that is a finite list (choice, int)."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        return None

    def to_yaml(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choice": list(self.values)}
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step:
            out["step"] = self.step
        if self.kind == "int" and self.log:
            out["log"] = True
        return out


@dataclass
class SchedulerSettings:
    type: str = "asha"            # asha | none
    time_attr: str = ""           # tokens | iter | time_s (default: tokens when the budget
                                  # is in tokens, else iter): what ASHA's rungs measure
    grace_period: float = 0       # first rung (0 = a tenth of max_t)
    reduction_factor: float = 3
    max_t: float = 0              # last rung (0 = the trial budget)
    brackets: int = 1


@dataclass
class Budget:
    num_samples: int = 10
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    tokens_per_trial: int | None = None  # derive each trial's max_iters from tokens/iter
    tokens_per_eval: int | None = None   # derive eval_interval so evals fall at equal tokens
    total_tokens: int | None = None      # compute budget: stop the search once all trials
                                         # together have trained this many tokens


@dataclass
class SearchSpace:
    """A loaded, validated search space (one profile applied)."""

    name: str
    source: str
    profile: str
    description: str = ""
    data: str = "shakespeare_char"
    metric: str = "val_loss"
    mode: str = "min"
    params: dict[str, Dist] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=lambda: {"type": "tpe"})
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    budget: Budget = field(default_factory=Budget)
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    memory_limit: int | None = None  # bytes per trial (GPU: memory fraction; CPU: data cap)
    rescue: int = 0                  # OOM rescues per config: batch/2, accumulation x2
    raw: dict[str, Any] = field(default_factory=dict)  # the merged mapping, for artifacts
    profiles: tuple[str, ...] = ()                      # profiles the file offers

    def group_params(self) -> dict[str, Dist]:
        return {k: d for k, d in self.params.items() if k not in FIELD_TYPES}


# ----------------------------------------------------------------------------- parsing helpers

_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}


def parse_amount(value: Any, where: str) -> float:
    """200k -> 200000, 1.5M -> 1500000, 2e5 -> 200000 (token counts in the user's terms)."""
    if isinstance(value, bool):
        raise UserError(f"{where} must be a number like 200000 or 200k, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgb]?)\s*", str(value).lower())
    if not m:
        raise UserError(f"{where} must be a number like 200000 or 200k, got {value!r}")
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)


_BYTES = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(value: Any, where: str) -> int:
    """8G / 8GB / 8GiB -> 8 * 2**30; 512M -> 512 * 2**20 (memory sizes need a unit)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt])(i?b)?\s*", str(value).lower())
    if isinstance(value, bool) or not m:
        raise UserError(f"{where} must be a size with a unit, like 8G or 512M; got {value!r}")
    size = int(float(m.group(1)) * _BYTES[m.group(2)])
    if size < 16 * 2**20:
        raise UserError(f"{where} ({value}) is below 16M: no GPT trains in that")
    return size


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping (key: value), got {type(value).__name__}")
    return value


def _check_keys(mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UserError(f"{where}: unknown key '{key}'{closest(str(key), allowed)}; "
                            f"allowed: {', '.join(allowed)}")


def _dataclass_from(cls: type, mapping: Mapping[str, Any], where: str) -> Any:
    allowed = tuple(cls.__dataclass_fields__)
    _check_keys(mapping, allowed, where)
    return cls(**mapping)


# ----------------------------------------------------------------------------- distributions

def parse_dist(knob: str, spec: Any, where: str) -> Dist | Any:
    """A YAML distribution -> Dist, or the plain (type-checked) value for a fixed knob."""
    is_group = knob not in FIELD_TYPES
    if is_group and not (isinstance(spec, dict) and isinstance(spec.get("choice"), list)
                         and spec["choice"] and all(isinstance(v, dict) for v in spec["choice"])):
        raise UserError(f"{where}: unknown knob '{knob}'{closest(knob, KNOBS)}; a name that is "
                        f"not a knob must be a choice of knob mappings, e.g. "
                        f"model: {{choice: [{{n_layer: 4, n_embd: 128}}]}}")
    if not isinstance(spec, dict):
        return coerce(knob, spec, f"{where}: ")
    kinds = [k for k in spec if k in DIST_KINDS]
    if len(kinds) != 1:
        raise UserError(f"{where}.{knob}: give exactly one of {', '.join(DIST_KINDS)} "
                        f"(e.g. {{loguniform: [1.0e-4, 1.0e-2]}}), got keys {list(spec)}")
    kind = kinds[0]
    _check_keys(spec, (kind, "step", "log"), f"{where}.{knob}")
    body = spec[kind]
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise UserError(f"{where}.{knob}: choice needs a non-empty list of values")
        if is_group:
            values = [_parse_group_value(knob, v, f"{where}.{knob}") for v in body]
        else:
            values = [coerce(knob, v, f"{where}.{knob}: ") for v in body]
        if len({repr(v) for v in values}) != len(values):
            raise UserError(f"{where}.{knob}: choice lists a value twice; remove the duplicate")
        return Dist("choice", values=values)
    if is_group:
        raise UserError(f"{where}.{knob}: a group of knobs can only be a choice")
    if not isinstance(body, list) or len(body) != 2:
        raise UserError(f"{where}.{knob}: {kind} needs [low, high], got {body!r}")
    want = FIELD_TYPES[knob]
    if want not in (int, float):
        raise UserError(f"{where}.{knob}: '{knob}' is {want.__name__}; use choice: [...] for it")
    low, high = (parse_amount(b, f"{where}.{knob}") for b in body)
    if not low < high:
        raise UserError(f"{where}.{knob}: range [{body[0]}, {body[1]}] is empty or inverted; "
                        f"write [low, high] with low < high")
    step = spec.get("step")
    if kind == "int":
        if want is not int:
            raise UserError(f"{where}.{knob}: '{knob}' takes decimals; use uniform or loguniform")
        if not (float(low).is_integer() and float(high).is_integer()):
            raise UserError(f"{where}.{knob}: int range bounds must be whole numbers")
        if step is not None and (not isinstance(step, int) or step < 1):
            raise UserError(f"{where}.{knob}: step must be a positive whole number")
        if step and (high - low) % step:
            raise UserError(f"{where}.{knob}: high - low ({int(high - low)}) must be a multiple "
                            f"of step ({step}); e.g. high = {int(low + (high - low) // step * step)}")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise UserError(f"{where}.{knob}: a log range must be > 0, got low={body[0]}")
        dist = Dist("int", low=int(low), high=int(high), step=step, log=log)
    else:
        if step is not None:
            raise UserError(f"{where}.{knob}: step applies to int ranges only")
        if kind == "loguniform" and low <= 0:
            raise UserError(f"{where}.{knob}: loguniform range must be > 0 (log of 0 is undefined), "
                            f"got low={body[0]}; use e.g. [1.0e-5, {body[1]}]")
        if want is int:
            raise UserError(f"{where}.{knob}: '{knob}' is a whole number; use int: [low, high]")
        dist = Dist(kind, low=low, high=high, log=(kind == "loguniform"))
    # every value in the range must itself be a legal knob value
    for bound in (dist.low, dist.high):
        _check_knob_value(knob, bound, f"{where}.{knob}")
    return dist


def _parse_group_value(group: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: each choice of a group must be a mapping of knobs, "
                        f"e.g. {{n_layer: 4, n_embd: 128}}; got {value!r}")
    return {k: coerce(str(k), v, f"{where}: ") for k, v in value.items()}


def _check_knob_value(knob: str, value: Any, where: str) -> None:
    """Validate one value by building a config around it (reuses the config's rules)."""
    probe = TrainConfig()
    if knob in ("n_embd", "n_head"):
        return  # checked jointly by the n_embd/n_head rule
    try:
        from_mapping({**probe.to_dict(), knob: coerce(knob, value, ""),
                      **({"min_lr": 0.0} if knob == "learning_rate" else {}),
                      **({"lr_decay_iters": 10**9} if knob == "warmup_iters" else {})})
    except UserError as e:
        raise UserError(f"{where}: {value!r} is not allowed ({e})") from None


# ----------------------------------------------------------------------------- loading

def detect_profile() -> str:
    """'gpu' when this machine has an NVIDIA GPU, else 'cpu' (cheap: no torch import)."""
    import shutil

    if Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi"):
        return "gpu"
    return "cpu"


def apply_sets(data: dict[str, Any], sets: list[str], where: str = "--set") -> dict[str, Any]:
    """--set budget.num_samples=4 --set params.dropout=0.1 (values parsed as YAML scalars)."""
    import yaml

    data = copy.deepcopy(data)
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise UserError(f"{where} '{item}' must look like KEY=VALUE, e.g. budget.num_samples=4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UserError(f"{where} {key}: cannot parse value {text!r}") from None
        parts = key.split(".")
        if parts[0] in KNOBS and len(parts) == 1:
            parts = ["fixed", parts[0]]  # a bare knob is a fixed training setting
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise UserError(f"{where} {key}: '{p}' is not a section")
            node = nxt
        if parts[0] == "params" and len(parts) == 2:
            data.get("fixed", {}).pop(parts[1], None)
        elif parts[0] == "fixed" and len(parts) == 2:
            data.get("params", {}).pop(parts[1], None)
        node[parts[-1]] = value
    return data


def merge_profile(data: dict[str, Any], profile: str, source: str) -> dict[str, Any]:
    profiles = _mapping(data.get("profiles"), f"{source}: profiles")
    _check_keys(profiles, ("cpu", "gpu"), f"{source}: profiles")
    merged = {k: copy.deepcopy(v) for k, v in data.items() if k != "profiles"}
    over = _mapping(profiles.get(profile), f"{source}: profiles.{profile}")
    _check_keys(over, tuple(s for s in SECTIONS if s != "profiles"), f"{source}: profiles.{profile}")
    for section, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
            # a knob the profile fixes is no longer tuned, and the other way round
            if section == "params":
                for k in value:
                    merged.get("fixed", {}).pop(k, None)
            if section == "fixed":
                for k in value:
                    merged.get("params", {}).pop(k, None)
        else:
            merged[section] = copy.deepcopy(value)
    return merged


def load_space(path: str | Path, *, sets: list[str] | None = None, profile: str | None = None,
               data: dict[str, Any] | None = None) -> SearchSpace:
    """Read, merge the profile, apply --set overrides and validate. Raises UserError."""
    source = str(path)
    raw = read_yaml_mapping(path) if data is None else data
    _check_keys(raw, SECTIONS, source)
    offered = tuple(_mapping(raw.get("profiles"), f"{source}: profiles"))
    _check_keys(dict.fromkeys(offered), ("cpu", "gpu"), f"{source}: profiles")
    chosen = profile or detect_profile()
    if profile and profile not in ("cpu", "gpu", "base"):
        raise UserError(f"--profile must be cpu, gpu or base, got {profile!r}")
    merged = merge_profile(raw, chosen, source) if chosen in offered else \
        {k: v for k, v in raw.items() if k != "profiles"}
    merged = apply_sets(merged, list(sets or []))
    _check_keys(merged, SECTIONS, source)
    space = build_space(merged, source, chosen if chosen in offered else "base")
    space.profiles = offered
    return space


def build_space(m: dict[str, Any], source: str, profile: str) -> SearchSpace:
    name = str(m.get("name") or Path(source).stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UserError(f"{source}: name {name!r} may hold only letters, digits, '_', '-', '.'")
    space = SearchSpace(name=name, source=source, profile=profile,
                        description=str(m.get("description") or ""),
                        data=str(m.get("data") or "shakespeare_char"), raw=m)
    space.metric = str(m.get("metric", "val_loss"))
    if space.metric not in METRICS:
        raise UserError(f"{source}: metric must be one of {', '.join(METRICS)}, got {space.metric!r}")
    space.mode = str(m.get("mode", "min"))
    if space.mode != "min":
        raise UserError(f"{source}: mode must be min for a loss metric, got {space.mode!r}")

    fixed = _mapping(m.get("fixed"), f"{source}: fixed")
    space.fixed = {str(k): coerce(str(k), v, f"{source}: fixed: ") for k, v in fixed.items()}
    params = _mapping(m.get("params"), f"{source}: params")
    for knob, spec in params.items():
        parsed = parse_dist(str(knob), spec, f"{source}: params")
        if isinstance(parsed, Dist):
            space.params[str(knob)] = parsed
        else:
            space.fixed[str(knob)] = parsed
    if "dataset" in space.params:
        raise UserError(f"{source}: params.dataset: the data set is not tuned; set `data:`")
    for group, dist in space.group_params().items():
        for choice in dist.values:
            for k in choice:
                if k in space.params:
                    raise UserError(f"{source}: params.{group} sets '{k}', which is also tuned on "
                                    f"its own; tune it in one place")
    if not space.params:
        raise UserError(f"{source}: params is empty; tune at least one knob, e.g. "
                        f"learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}")

    space.sampler = _parse_sampler(_mapping(m.get("sampler", {"type": "tpe"}), f"{source}: sampler"),
                                   source, space)
    space.budget = _parse_budget(_mapping(m.get("budget"), f"{source}: budget"), source, space)
    space.scheduler = _parse_scheduler(_mapping(m.get("scheduler"), f"{source}: scheduler"),
                                       source, space)
    space.resources = _parse_resources(_mapping(m.get("resources"), f"{source}: resources"), source)
    mem = _mapping(m.get("memory"), f"{source}: memory")
    _check_keys(mem, ("limit", "rescue"), f"{source}: memory")
    if mem.get("limit") is not None:
        space.memory_limit = parse_bytes(mem["limit"], f"{source}: memory.limit")
    rescue = mem.get("rescue", 0)
    if isinstance(rescue, bool) or not isinstance(rescue, int) or not 0 <= rescue <= 8:
        raise UserError(f"{source}: memory.rescue must be a whole number of rescues, 0 to 8 "
                        f"(0 = off), got {rescue!r}")
    if rescue and space.memory_limit is None:
        raise UserError(f"{source}: memory.rescue needs memory.limit (e.g. limit: 8G)")
    space.rescue = rescue
    from tune_gpt.sampling import check_corners, check_heads

    check_heads(space)
    check_corners(space)
    return space


def _parse_sampler(s: dict[str, Any], source: str, space: SearchSpace) -> dict[str, Any]:
    s = dict(s)
    kind = str(s.get("type", "tpe")).lower()
    if kind not in SAMPLERS:
        raise UserError(f"{source}: sampler.type must be one of {', '.join(SAMPLERS)}, "
                        f"got {kind!r}{closest(kind, SAMPLERS)}")
    s["type"] = kind
    if kind == "grid":
        for knob, d in space.params.items():
            if d.candidates() is None:
                raise UserError(f"{source}: params.{knob}: the grid sampler needs choice or int "
                                f"ranges, not {d.kind}")
    if kind == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise UserError(f"{source}: sampler cmaes needs the 'cmaes' package: "
                            f"pip install cmaes") from None
    return s


def grid_size(space: SearchSpace) -> int:
    return math.prod(len(d.candidates() or []) for d in space.params.values())


TOKEN_AMOUNTS = ("tokens_per_trial", "tokens_per_eval", "total_tokens")


def _parse_budget(b: dict[str, Any], source: str, space: SearchSpace) -> Budget:
    b = dict(b)
    for key in TOKEN_AMOUNTS:
        if b.get(key) is not None:
            b[key] = int(parse_amount(b[key], f"{source}: budget.{key}"))
    budget = _dataclass_from(Budget, b, f"{source}: budget")
    if space.sampler["type"] == "grid" and "num_samples" not in b:
        budget.num_samples = grid_size(space)
    if not isinstance(budget.num_samples, int) or budget.num_samples < 1:
        raise UserError(f"{source}: budget.num_samples must be a positive whole number")
    mct = budget.max_concurrent_trials
    if mct is not None and (not isinstance(mct, int) or mct < 1):
        raise UserError(f"{source}: budget.max_concurrent_trials must be a positive whole number")
    if budget.time_budget_s is not None and budget.time_budget_s <= 0:
        raise UserError(f"{source}: budget.time_budget_s must be > 0 seconds")
    for key in TOKEN_AMOUNTS:
        if getattr(budget, key) is not None and getattr(budget, key) < 1:
            raise UserError(f"{source}: budget.{key} must be > 0 tokens")
    return budget


def _parse_scheduler(s: dict[str, Any], source: str, space: SearchSpace) -> SchedulerSettings:
    s = dict(s)
    for key in ("grace_period", "max_t"):
        if key in s and s[key] is not None:
            s[key] = parse_amount(s[key], f"{source}: scheduler.{key}")
    sch = _dataclass_from(SchedulerSettings, s, f"{source}: scheduler")
    sch.type = str(sch.type).lower()
    sch.time_attr = sch.time_attr or ("tokens" if space.budget.tokens_per_trial else "iter")
    if sch.type not in ("asha", "none"):
        raise UserError(f"{source}: scheduler.type must be asha or none, got {sch.type!r}")
    if sch.time_attr not in TIME_ATTRS:
        raise UserError(f"{source}: scheduler.time_attr must be one of {', '.join(TIME_ATTRS)}, "
                        f"got {sch.time_attr!r}")
    if sch.time_attr == "tokens" and sch.type == "asha" and not sch.max_t \
            and not space.budget.tokens_per_trial:
        raise UserError(f"{source}: scheduler.time_attr tokens needs scheduler.max_t or "
                        f"budget.tokens_per_trial (e.g. 2M)")
    if sch.reduction_factor <= 1:
        raise UserError(f"{source}: scheduler.reduction_factor must be > 1, got {sch.reduction_factor}")
    if not isinstance(sch.brackets, int) or sch.brackets < 1:
        raise UserError(f"{source}: scheduler.brackets must be a positive whole number")
    if sch.grace_period < 0 or sch.max_t < 0:
        raise UserError(f"{source}: scheduler.grace_period and max_t must be >= 0")
    if sch.max_t and sch.grace_period and sch.grace_period >= sch.max_t:
        raise UserError(f"{source}: scheduler.grace_period ({sch.grace_period:g}) must be below "
                        f"max_t ({sch.max_t:g})")
    return sch


def _parse_resources(r: dict[str, Any], source: str) -> dict[str, float]:
    _check_keys(r, ("cpu", "gpu"), f"{source}: resources")
    out = {"cpu": 1.0, "gpu": 0.0, **{k: v for k, v in r.items()}}
    for k, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise UserError(f"{source}: resources.{k} must be a number >= 0, got {v!r}")
    if out["cpu"] <= 0:
        raise UserError(f"{source}: resources.cpu must be > 0 (e.g. 1)")
    if out["gpu"] > 1 and not float(out["gpu"]).is_integer():
        raise UserError(f"{source}: resources.gpu above 1 must be a whole number")
    return {k: float(v) for k, v in out.items()}


def describe(space: SearchSpace) -> str:
    """A short human summary (what `tune-gpt validate` prints)."""
    lines = [f"{space.source}: ok — search '{space.name}' (profile: {space.profile}"
             + (f"; offers {', '.join(space.profiles)}" if space.profiles else "") + ")"]
    if space.description:
        lines.append(f"  {space.description}")
    lines.append(f"  objective: {space.mode} {space.metric}; data: {space.data}")
    lines.append("  tuned:")
    for k, d in space.params.items():
        spec = d.to_yaml()
        lines.append(f"    {k}: {spec}")
    if space.fixed:
        lines.append("  fixed: " + ", ".join(f"{k}={v}" for k, v in space.fixed.items()))
    s, b = space.scheduler, space.budget
    lines.append(f"  sampler: {space.sampler}")
    if s.type == "asha":
        lines.append(f"  scheduler: ASHA on {s.time_attr}, grace_period {s.grace_period:,.0f}, "
                     f"reduction_factor {s.reduction_factor:g}, max_t "
                     f"{(s.max_t or b.tokens_per_trial or 0):,.0f}, brackets {s.brackets}")
    else:
        lines.append("  scheduler: none (every trial runs to the end)")
    lines.append(f"  budget: {b.num_samples} trials"
                 + (f", {b.max_concurrent_trials} at a time" if b.max_concurrent_trials else "")
                 + (f", {b.time_budget_s:g} s wall" if b.time_budget_s else "")
                 + (f", {b.tokens_per_trial:,} tokens per trial" if b.tokens_per_trial else "")
                 + (f", {b.total_tokens:,} tokens in all" if b.total_tokens else ""))
    lines.append(f"  resources per trial: {space.resources}")
    if space.memory_limit:
        lines.append(f"  memory limit per trial: {space.memory_limit / 2**30:.2f} GiB"
                     + (f", OOM rescue up to {space.rescue}x" if space.rescue else ""))
    return "\n".join(lines)
