"""Reading a search space: YAML -> profile merged -> --set applied -> typed, validated
SearchSpace (schema.py). Every error is a UserError naming the file and the key."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from tune_gpt.config import KNOBS, TrainConfig, read_config_file, read_yaml_mapping
from tune_gpt.errors import UserError, closest
from tune_gpt.space.amounts import parse_bytes
from tune_gpt.space.dists import parse_dist
from tune_gpt.space.keys import check_keys, dataclass_from, mapping_of
from tune_gpt.space.ranges import MAX_WHOLE, check_budget_fits, check_knob, number, parse_final
from tune_gpt.space.resolve import check_corners, check_heads, values_of
from tune_gpt import names
from tune_gpt.settings import RESOURCES
from tune_gpt.space.sampler_options import check_sampler_options
from tune_gpt.space.schema import (DEFAULT_TRAINABLE, METRICS, SAMPLERS, SECTIONS,
                                   TIME_ATTRS, Budget, ConfirmSettings, Dist,
                                   SamplerSettings, SchedulerSettings, SearchSpace)


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


def peek_data(space: SearchSpace) -> None:
    """The space's data checked as `search` checks it, but cheaply (what `validate` does):
    no download, no tokenising; see tune_gpt.data.peek."""
    from tune_gpt.data import peek

    try:
        peek(space.data, tokenizer=str(space.fixed.get("tokenizer", "auto")),
             block_size=max(values_of(space, "block_size")))
    except UserError as e:
        raise UserError(f"{space.source}: data: {e}") from None


def build_space(m: dict[str, Any], source: str, profile: str) -> SearchSpace:
    name = names.check_name(str(m.get("name") or Path(source).stem), f"{source}: name",
                            names.MAX_SPACE_NAME)
    space = SearchSpace(name=name, source=source, profile=profile,
                        description=str(m.get("description") or ""),
                        data=str(m.get("data") or "shakespeare_char"), raw=m)
    space.trainable = check_trainable(m.get("trainable", DEFAULT_TRAINABLE), source)
    space.metric = str(m.get("metric", "val_loss"))
    if space.metric not in METRICS:
        raise UserError(f"{source}: metric must be one of {', '.join(METRICS)}, got {space.metric!r}")
    space.mode = str(m.get("mode", "min"))
    if space.mode != "min":
        raise UserError(f"{source}: mode must be min for a loss metric, got {space.mode!r}")

    fixed = mapping_of(m.get("fixed"), f"{source}: fixed")
    space.fixed = {str(k): check_knob(str(k), v, f"{source}: fixed.{k}") for k, v in fixed.items()}
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
    rescue = number(mem.get("rescue", 0), f"{source}: memory.rescue (0 = off)", whole=True,
                    at_least=0, at_most=8, suffix=False, unit="rescues")
    if rescue and space.memory_limit is None:
        raise UserError(f"{source}: memory.rescue needs memory.limit (e.g. limit: 8G)")
    space.rescue = rescue
    space.confirm = dataclass_from(ConfirmSettings,
                                    mapping_of(m.get("confirm"), f"{source}: confirm"),
                                    f"{source}: confirm")
    for key, most in (("top_k", 20), ("seeds", 10)):
        setattr(space.confirm, key, number(getattr(space.confirm, key), f"{source}: confirm.{key}",
                                           whole=True, at_least=0, at_most=most, suffix=False))
    if space.confirm.top_k and not space.confirm.seeds:
        raise UserError(f"{source}: confirm.seeds must be at least 1 when confirm.top_k is set")

    if m.get("final") is not None:
        space.final = parse_final(mapping_of(m.get("final"), f"{source}: final"), source, space)
    _apply_base(space, m, source)
    check_budget_fits(space)
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
    knobs = {k: check_knob(k, v, f"{path}: {k}") for k, v in knobs.items()}
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


def check_trainable(spec: Any, source: str) -> str:
    """`trainable: module:function`, its module found without importing it (validate stays
    light; the search imports it, search/tuner.load_trainable)."""
    import importlib.util

    text = str(spec)
    mod, _, fn = text.partition(":")
    if not isinstance(spec, str) or not mod or not fn.isidentifier():
        raise UserError(f"{source}: trainable {spec!r} must be module:function, e.g. "
                        f"{DEFAULT_TRAINABLE}")
    try:
        found = importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(f"{source}: trainable {text!r}: no module {mod!r} can be imported here; "
                        f"install it or fix the name (the default is {DEFAULT_TRAINABLE})")
    return text


def _parse_sampler(s: dict[str, Any], source: str, space: SearchSpace) -> SamplerSettings:
    s = dict(s)
    kind = str(s.get("type", "tpe")).lower()
    if kind not in SAMPLERS:
        raise UserError(f"{source}: sampler.type must be one of {', '.join(SAMPLERS)}, "
                        f"got {kind!r}{closest(kind, SAMPLERS)}")
    s["type"] = kind
    if s.get("seed") is not None:
        s["seed"] = number(s["seed"], f"{source}: sampler.seed", whole=True, at_least=0,
                           at_most=2**32 - 1, suffix=False)
    if "n_startup_trials" in s:
        s["n_startup_trials"] = number(s["n_startup_trials"], f"{source}: sampler.n_startup_trials",
                                       whole=True, at_least=0, suffix=False)
    if not isinstance(s.get("priors", True), bool):
        raise UserError(f"{source}: sampler.priors must be true or false, got {s['priors']!r}")
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
    sampler = SamplerSettings.from_yaml(s)
    check_sampler_options(sampler, source)
    return sampler


def grid_size(space: SearchSpace) -> int:
    return math.prod(len(d.candidates() or []) for d in space.params.values())


TOKEN_AMOUNTS = ("tokens_per_trial", "tokens_per_eval", "total_tokens")


def _parse_budget(b: dict[str, Any], source: str, space: SearchSpace) -> Budget:
    b = dict(b)
    check_keys(b, tuple(Budget.__dataclass_fields__), f"{source}: budget")
    where = {k: f"{source}: budget.{k}" for k in b}
    for key in TOKEN_AMOUNTS:
        if b.get(key) is not None:
            b[key] = number(b[key], where[key], whole=True, above=0, unit="tokens")
    if b.get("total_flops") is not None:
        b["total_flops"] = number(b["total_flops"], where["total_flops"], above=0,
                                  unit="FLOPs (e.g. 2e15)")
    if b.get("time_budget_s") is not None:
        b["time_budget_s"] = number(b["time_budget_s"], where["time_budget_s"], above=0,
                                    suffix=False, unit="seconds")
    for key in ("num_samples", "max_concurrent_trials"):
        if b.get(key) is not None or (key == "num_samples" and key in b):
            b[key] = number(b[key], where[key], whole=True,
                            at_least=1, at_most=MAX_WHOLE, suffix=False)
    budget = dataclass_from(Budget, b, f"{source}: budget")
    if space.sampler.type == "grid" and "num_samples" not in b:
        budget.num_samples = grid_size(space)
    return budget


def _parse_scheduler(s: dict[str, Any], source: str, space: SearchSpace) -> SchedulerSettings:
    s = dict(s)
    check_keys(s, tuple(SchedulerSettings.__dataclass_fields__), f"{source}: scheduler")
    for key in ("grace_period", "max_t"):
        if s.get(key) is not None:
            s[key] = number(s[key], f"{source}: scheduler.{key}", at_least=0)
    if "reduction_factor" in s:
        s["reduction_factor"] = number(s["reduction_factor"], f"{source}: scheduler."
                                       f"reduction_factor", above=1, suffix=False)
    if "brackets" in s:
        s["brackets"] = number(s["brackets"], f"{source}: scheduler.brackets", whole=True,
                               at_least=1, at_most=10, suffix=False)
    if "rung_cooldown" in s:
        s["rung_cooldown"] = number(s["rung_cooldown"], f"{source}: scheduler.rung_cooldown",
                                    at_least=0, at_most=0.5, suffix=False)
    for key in ("type", "time_attr"):
        if key in s and not isinstance(s[key], str):
            raise UserError(f"{source}: scheduler.{key} must be a word, got {s[key]!r}")
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
    # (type none has no rungs: rung_cooldown is then inert, as the trials' settings make it)
    if sch.rung_cooldown and sch.type == "asha" and sch.time_attr != "tokens":
        raise UserError(f"{source}: scheduler.rung_cooldown reads ASHA's rungs in tokens: set "
                        f"time_attr tokens, or remove rung_cooldown")
    if sch.rung_cooldown and sch.type == "asha" and "wsd" not in values_of(space, "lr_schedule"):
        raise UserError(f"{source}: scheduler.rung_cooldown reads a WSD trial after a "
                        f"cool-down branch, and no trial here is WSD: add lr_schedule: wsd "
                        f"under fixed:, or remove rung_cooldown")
    if sch.max_t and sch.grace_period and sch.grace_period >= sch.max_t:
        raise UserError(f"{source}: scheduler.grace_period ({sch.grace_period:g}) must be below "
                        f"max_t ({sch.max_t:g})")
    return sch


def _parse_resources(r: dict[str, Any], source: str) -> dict[str, float]:
    check_keys(r, RESOURCES, f"{source}: resources")
    out = {"cpu": 1.0, "gpu": 0.0, **{k: v for k, v in r.items()}}
    out["cpu"] = number(out["cpu"], f"{source}: resources.cpu", above=0, suffix=False)
    out["gpu"] = number(out["gpu"], f"{source}: resources.gpu", at_least=0, suffix=False)
    if out["gpu"] > 1 and not float(out["gpu"]).is_integer():
        raise UserError(f"{source}: resources.gpu above 1 must be a whole number")
    return {k: float(v) for k, v in out.items()}
