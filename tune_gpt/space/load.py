"""Reading a search space: YAML -> profile merged -> --set applied -> typed, validated
SearchSpace (schema.py). Every error is a UserError naming the file and the key."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

from tune_gpt.config import KNOBS, TrainConfig, coerce, read_config_file, read_yaml_mapping
from tune_gpt.errors import UserError, closest
from tune_gpt.space.amounts import parse_amount, parse_bytes
from tune_gpt.space.dists import parse_dist
from tune_gpt.space.keys import check_keys, dataclass_from, mapping_of
from tune_gpt.space.resolve import check_corners, check_heads
from tune_gpt.space.schema import (METRICS, SAMPLERS, SECTIONS,
                                   TIME_ATTRS, Budget, ConfirmSettings, Dist,
                                   SchedulerSettings, SearchSpace)


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
    profiles = mapping_of(data.get("profiles"), f"{source}: profiles")
    check_keys(profiles, ("cpu", "gpu"), f"{source}: profiles")
    merged = {k: copy.deepcopy(v) for k, v in data.items() if k != "profiles"}
    over = mapping_of(profiles.get(profile), f"{source}: profiles.{profile}")
    check_keys(over, tuple(s for s in SECTIONS if s != "profiles"), f"{source}: profiles.{profile}")
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
    check_keys(raw, SECTIONS, source)
    offered = tuple(mapping_of(raw.get("profiles"), f"{source}: profiles"))
    check_keys(dict.fromkeys(offered), ("cpu", "gpu"), f"{source}: profiles")
    chosen = profile or detect_profile()
    if profile and profile not in ("cpu", "gpu", "base"):
        raise UserError(f"--profile must be cpu, gpu or base, got {profile!r}")
    merged = merge_profile(raw, chosen, source) if chosen in offered else \
        {k: v for k, v in raw.items() if k != "profiles"}
    merged = apply_sets(merged, list(sets or []))
    check_keys(merged, SECTIONS, source)
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

    fixed = mapping_of(m.get("fixed"), f"{source}: fixed")
    space.fixed = {str(k): coerce(str(k), v, f"{source}: fixed: ") for k, v in fixed.items()}
    params = mapping_of(m.get("params"), f"{source}: params")
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

    space.sampler = _parse_sampler(mapping_of(m.get("sampler", {"type": "tpe"}), f"{source}: sampler"),
                                   source, space)
    space.budget = _parse_budget(mapping_of(m.get("budget"), f"{source}: budget"), source, space)
    space.scheduler = _parse_scheduler(mapping_of(m.get("scheduler"), f"{source}: scheduler"),
                                       source, space)
    space.resources = _parse_resources(mapping_of(m.get("resources"), f"{source}: resources"), source)
    mem = mapping_of(m.get("memory"), f"{source}: memory")
    check_keys(mem, ("limit", "rescue"), f"{source}: memory")
    if mem.get("limit") is not None:
        space.memory_limit = parse_bytes(mem["limit"], f"{source}: memory.limit")
    rescue = mem.get("rescue", 0)
    if isinstance(rescue, bool) or not isinstance(rescue, int) or not 0 <= rescue <= 8:
        raise UserError(f"{source}: memory.rescue must be a whole number of rescues, 0 to 8 "
                        f"(0 = off), got {rescue!r}")
    if rescue and space.memory_limit is None:
        raise UserError(f"{source}: memory.rescue needs memory.limit (e.g. limit: 8G)")
    space.rescue = rescue
    space.confirm = dataclass_from(ConfirmSettings,
                                    mapping_of(m.get("confirm"), f"{source}: confirm"),
                                    f"{source}: confirm")
    for key, most in (("top_k", 20), ("seeds", 10)):
        v = getattr(space.confirm, key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= most:
            raise UserError(f"{source}: confirm.{key} must be a whole number from 0 to {most}, "
                            f"got {v!r}")
    if space.confirm.top_k and not space.confirm.seeds:
        raise UserError(f"{source}: confirm.seeds must be at least 1 when confirm.top_k is set")

    _apply_base(space, m, source)
    check_heads(space)
    check_corners(space)
    return space


def _apply_base(space: SearchSpace, m: dict[str, Any], source: str) -> None:
    """`base: config.py`: a nanoGPT config (read, never run) or a YAML of knobs whose knobs
    are fixed underneath the space's own. What the space tunes or fixes wins; so do the knobs
    it derives per trial: max_iters (and so warmup_iters) from budget.tokens_per_trial,
    eval_interval from budget.tokens_per_eval, and lr_decay_iters / min_lr where the base only
    follows the usual rules (= max_iters, = learning_rate / 10). The saved space (`raw`) gets the knobs inlined,
    so a resumed search does not need the base file."""
    base = m.get("base")
    if base is None or base == "":
        return
    if not isinstance(base, str):
        raise UserError(f"{source}: base must be the path of a config file (a nanoGPT .py or "
                        f"a YAML of knobs), got {base!r}")
    path = Path(base).expanduser()
    if not path.is_absolute():
        path = Path(source).parent / path
    if not path.is_file():
        raise UserError(f"{source}: base: {path} not found; a relative path is read from the "
                        f"space file's folder")
    knobs, notes = read_config_file(path)
    written = dict(knobs)
    own = set(space.fixed) | set(space.params) | {
        k for group in space.group_params().values() for choice in group.values for k in choice}
    if "dataset" in knobs:
        dataset = knobs.pop("dataset")
        if m.get("data"):
            notes.append(f"dataset {dataset!r} not used: the space's data: {space.data} wins")
        else:
            space.data = str(dataset)
    derived = {}
    if space.budget.tokens_per_trial:
        derived["max_iters"] = "budget.tokens_per_trial sets each trial's max_iters"
        derived["warmup_iters"] = (f"budget.tokens_per_trial sets max_iters, so each trial "
                                   f"warms up min({TrainConfig().warmup_iters}, max_iters // 10) "
                                   f"iterations (set it under fixed: to keep it)")
    if space.budget.tokens_per_eval:
        derived["eval_interval"] = "budget.tokens_per_eval sets each trial's eval_interval"
    if "lr_decay_iters" in knobs and knobs["lr_decay_iters"] == written.get("max_iters"):
        derived["lr_decay_iters"] = "it equals max_iters, so it follows each trial's max_iters"
    if "min_lr" in knobs and "learning_rate" in written and \
            math.isclose(knobs["min_lr"], written["learning_rate"] / 10, rel_tol=1e-9):
        derived["min_lr"] = "it is learning_rate / 10, so it follows each trial's learning_rate"
    for k in list(knobs):
        if k in own:
            del knobs[k]
        elif k in derived:
            notes.append(f"{k} = {knobs.pop(k)!r} not fixed: {derived[k]}")
    space.base = str(path)
    space.base_notes = notes
    space.fixed = {**knobs, **space.fixed}
    raw = {k: v for k, v in m.items() if k != "base"}
    raw["fixed"] = {**knobs, **mapping_of(m.get("fixed"), f"{source}: fixed")}
    if not m.get("data") and space.data != "shakespeare_char":
        raw["data"] = space.data
    space.raw = raw


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
    if b.get("total_flops") is not None:
        b["total_flops"] = parse_amount(b["total_flops"], f"{source}: budget.total_flops")
        if b["total_flops"] <= 0:
            raise UserError(f"{source}: budget.total_flops must be > 0 FLOPs (e.g. 2e15)")
    budget = dataclass_from(Budget, b, f"{source}: budget")
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
    sch = dataclass_from(SchedulerSettings, s, f"{source}: scheduler")
    sch.type = str(sch.type).lower()
    sch.time_attr = sch.time_attr or ("tokens" if space.budget.tokens_per_trial else "iter")
    if sch.type not in ("asha", "none"):
        raise UserError(f"{source}: scheduler.type must be asha or none, got {sch.type!r}")
    if sch.time_attr not in TIME_ATTRS:
        raise UserError(f"{source}: scheduler.time_attr must be one of {', '.join(TIME_ATTRS)}, "
                        f"got {sch.time_attr!r}")
    if sch.time_attr in ("tokens", "flops") and sch.type == "asha" and not sch.max_t \
            and not space.budget.tokens_per_trial:
        raise UserError(f"{source}: scheduler.time_attr {sch.time_attr} needs scheduler.max_t "
                        f"or budget.tokens_per_trial (e.g. 2M)")
    if sch.time_attr == "flops" and sch.type == "asha" and not sch.grace_period:
        raise UserError(f"{source}: scheduler.time_attr flops needs a grace_period in FLOPs "
                        f"(e.g. 1e14); `tune-gpt estimate` prints a config's FLOPs per token")
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
    check_keys(r, ("cpu", "gpu"), f"{source}: resources")
    out = {"cpu": 1.0, "gpu": 0.0, **{k: v for k, v in r.items()}}
    for k, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise UserError(f"{source}: resources.{k} must be a number >= 0, got {v!r}")
    if out["cpu"] <= 0:
        raise UserError(f"{source}: resources.cpu must be > 0 (e.g. 1)")
    if out["gpu"] > 1 and not float(out["gpu"]).is_integer():
        raise UserError(f"{source}: resources.gpu above 1 must be a whole number")
    return {k: float(v) for k, v in out.items()}
