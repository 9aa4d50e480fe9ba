"""One tuned knob: a YAML distribution (choice, uniform, loguniform, int) with its optional
prior -> Dist, every bound and choice checked against the knob's own rules (ranges.py)."""

from __future__ import annotations

from typing import Any

from tune_gpt.config import FIELD_TYPES, KNOBS
from tune_gpt.errors import UserError, closest
from tune_gpt.space.keys import check_keys
from tune_gpt.space.ranges import check_knob, number
from tune_gpt.space.schema import CONFIDENCES, DIST_KINDS, Dist

# An int range is listed value by value (grid, corners, the n_embd/n_head rule): keep it a list.
MAX_INT_VALUES = 1_000_000


def parse_dist(knob: str, spec: Any, where: str) -> Dist | Any:
    """A YAML distribution -> Dist, or the plain (type-checked) value for a fixed knob."""
    is_group = knob not in FIELD_TYPES
    if is_group and not (isinstance(spec, dict) and isinstance(spec.get("choice"), list)
                         and spec["choice"] and all(isinstance(v, dict) for v in spec["choice"])):
        raise UserError(f"{where}: unknown knob '{knob}'{closest(knob, KNOBS)}; a name that is "
                        f"not a knob must be a choice of knob mappings, e.g. "
                        f"model: {{choice: [{{n_layer: 4, n_embd: 128}}]}}")
    if not isinstance(spec, dict):
        return check_knob(knob, spec, f"{where}.{knob}")
    kinds = [k for k in spec if k in DIST_KINDS]
    if len(kinds) != 1:
        raise UserError(f"{where}.{knob}: give exactly one of {', '.join(DIST_KINDS)} "
                        f"(e.g. {{loguniform: [1.0e-4, 1.0e-2]}}), got keys {list(spec)}")
    kind = kinds[0]
    check_keys(spec, (kind, "step", "log", "prior", "confidence"), f"{where}.{knob}")
    body = spec[kind]
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise UserError(f"{where}.{knob}: choice needs a non-empty list of values")
        if is_group:
            values = [_parse_group_value(knob, v, f"{where}.{knob}") for v in body]
        else:
            values = [check_knob(knob, v, f"{where}.{knob}") for v in body]
        if len({repr(v) for v in values}) != len(values):
            raise UserError(f"{where}.{knob}: choice lists a value twice; remove the duplicate")
        return _with_prior(Dist("choice", values=values), knob, spec, where)
    if is_group:
        raise UserError(f"{where}.{knob}: a group of knobs can only be a choice")
    if not isinstance(body, list) or len(body) != 2:
        raise UserError(f"{where}.{knob}: {kind} needs [low, high], got {body!r}")
    want = FIELD_TYPES[knob]
    if want not in (int, float):
        raise UserError(f"{where}.{knob}: '{knob}' is {want.__name__}; use choice: [...] for it")
    low, high = (number(b, f"{where}.{knob}: {kind} bound") for b in body)
    if not low < high:
        raise UserError(f"{where}.{knob}: range [{body[0]}, {body[1]}] is empty or inverted; "
                        f"write [low, high] with low < high")
    step = spec.get("step")
    if kind == "int":
        if want is not int:
            raise UserError(f"{where}.{knob}: '{knob}' takes decimals; use uniform or loguniform")
        if not (float(low).is_integer() and float(high).is_integer()):
            raise UserError(f"{where}.{knob}: int range bounds must be whole numbers")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)
                                 or step < 1):
            raise UserError(f"{where}.{knob}: step must be a positive whole number, "
                            f"got {step!r}")
        if step and (high - low) % step:
            raise UserError(f"{where}.{knob}: high - low ({int(high - low)}) must be a multiple "
                            f"of step ({step}); e.g. high = {int(low + (high - low) // step * step)}")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise UserError(f"{where}.{knob}: log must be true or false, got {log!r}")
        count = (high - low) // (step or 1) + 1
        if count > MAX_INT_VALUES:
            raise UserError(f"{where}.{knob}: the range holds more than {MAX_INT_VALUES:,} "
                            f"values; narrow it or give a step")
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
        check_knob(knob, int(bound) if kind == "int" else bound, f"{where}.{knob}")
    return _with_prior(dist, knob, spec, where)


def _with_prior(dist: Dist, knob: str, spec: dict[str, Any], where: str) -> Dist:
    """`prior: VALUE` (where good values probably are) and `confidence: low|medium|high`."""
    where = f"{where}.{knob}"
    if "confidence" in spec and "prior" not in spec:
        raise UserError(f"{where}: confidence needs a prior (e.g. prior: 1.0e-3)")
    if "prior" not in spec:
        return dist
    conf = str(spec.get("confidence", "medium")).lower()
    if conf not in CONFIDENCES:
        raise UserError(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}, "
                        f"got {spec['confidence']!r}")
    raw = spec["prior"]
    if raw == "auto":  # computed from the data, budget and hardware (space/auto_priors.py)
        from tune_gpt.space.auto_priors import AUTO, RULES

        if knob not in RULES:
            raise UserError(f"{where}: prior: auto has no rule for {knob}; rules exist for "
                            f"{', '.join(RULES)}; give a value instead")
        dist.prior, dist.confidence, dist.auto = AUTO, conf, True
        return dist
    if dist.kind == "choice":
        prior = _parse_group_value(knob, raw, where) if knob not in FIELD_TYPES else \
            check_knob(knob, raw, f"{where}: prior")
        if prior not in dist.values:
            raise UserError(f"{where}: prior {raw!r} is not one of the choices; add it to "
                            f"the choice list or pick one of them")
    else:
        prior = number(raw, f"{where}: prior")
        if not dist.low <= prior <= dist.high:
            raise UserError(f"{where}: prior {raw} is outside the range [{dist.low:g}, "
                            f"{dist.high:g}]; widen the range or move the prior inside it")
        if dist.kind == "int":
            prior = int(round(prior))
    dist.prior, dist.confidence = prior, conf
    return dist


def _parse_group_value(group: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: each choice of a group must be a mapping of knobs, "
                        f"e.g. {{n_layer: 4, n_embd: 128}}; got {value!r}")
    return {str(k): check_knob(str(k), v, f"{where}.{k}") for k, v in value.items()}
