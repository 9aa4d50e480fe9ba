"""The files a report leaves for the next step: best_config.yaml (for `tune-gpt train`),
best_config_nanogpt.py (for nanoGPT's train.py) and next_space.yaml (a narrowed search).

All three are returned as text; nothing here touches the disk.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import PurePath
from typing import Any

import numpy as np

from tune_gpt import names
from tune_gpt.config import FIELD_TYPES, KNOBS, TrainConfig
from tune_gpt.errors import UserError
from tune_gpt.nanogpt_config import NANOGPT_KEYS  # noqa: F401  (the keys written below)
from tune_gpt.report.results import Results
from tune_gpt.report.rules import NARROW_PAD
from tune_gpt.schedule import cooldown_start
from tune_gpt.settings import RESOURCES
from tune_gpt.space import parse_amount



def py(v: Any) -> Any:
    """numpy scalars -> plain Python (yaml and repr need them); floats lose binary noise
    (1.5e-3 / 10 is written 0.00015, not 0.00015000000000000001)."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.12g}")
    return v


def flow(v: Any) -> str:
    """One value in YAML flow style on one line: 1.0e-05, true, [16, 32], {choice: [1, 2]}."""
    import yaml

    return yaml.safe_dump(v, default_flow_style=True, width=10**9, sort_keys=False).splitlines()[0]


def sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


# ----------------------------------------------------------------------------- best config

def _no_config(trial_id: str | None) -> str:
    if trial_id:
        return f"# the best trial, {trial_id}, has no recorded knobs (trials.csv lacks them)\n"
    return "# no trial finished with a finite loss, so there is no best config yet\n"


def best_config_yaml(res: Results, trial_id: str | None, knobs: dict[str, Any]) -> str:
    """A flat knob -> value mapping that `tune-gpt train best_config.yaml` loads."""
    if not knobs:
        return _no_config(trial_id)
    knobs = {**knobs, "out_dir": f"out-{res.name}-best"}
    lines = [f"# Best trial of search '{res.name}': {trial_id} "
             f"(best {res.metric} {res.trials.at[trial_id, res.score]:.4f}).",
             "# Every knob it trained with; re-run it with:",
             "#   tune-gpt train best_config.yaml",
             "#   tune-gpt train best_config.yaml --max_iters=5000   # longer, same recipe"]
    lines += [f"{k}: {flow(py(knobs[k]))}" for k in KNOBS if k in knobs]
    return "\n".join(lines) + "\n"


def _measured(res: Results, trial_id: str | None) -> str:
    """What the config measured: a trial's best, or the search's final run's (a plan)."""
    if trial_id in res.trials.index:
        return f"(best {res.metric} {res.trials.at[trial_id, res.score]:.4f})."
    fin = res.meta.final or {}
    if str(fin.get("trial_id")) == str(trial_id) and fin.get("best_val_loss") is not None:
        return (f"(the search's final run, {fin['of']}'s config trained longer: best "
                f"{res.metric} {fin['best_val_loss']:.4f}).")
    return "(not measured by this search)."


def nanogpt_config(res: Results, trial_id: str | None, knobs: dict[str, Any]) -> str:
    """nanoGPT's config/*.py style: `key = literal` lines, only keys its train.py knows."""
    if not knobs:
        return _no_config(trial_id)
    k = {**TrainConfig().to_dict(), **knobs}
    dataset = str(k["dataset"])
    name, data_note = nanogpt_dataset(dataset, str(k.get("tokenizer", "auto")))
    device = "cuda" if k["device"] in ("auto", "cuda") else k["device"]
    out = [f"# nanoGPT config exported by tune-gpt: best trial {trial_id} of search '{res.name}'",
           f"# {_measured(res, trial_id)}",
           "# Use it from a nanoGPT checkout:  python train.py config/<this file>.py", ""]
    wsd = bool(k["decay_lr"]) and k.get("lr_schedule") == "wsd"
    if wsd:  # said first, where it cannot be missed: this file does not reproduce the trial
        out += wsd_note(k) + [""]

    def put(key: str, value: Any, comment: str = "") -> None:
        out.append(f"{key} = {py(value)!r}" + (f"  # {comment}" if comment else ""))

    put("out_dir", f"out-{res.name}")
    put("eval_interval", k["eval_interval"])
    put("eval_iters", k["eval_iters"])
    put("log_interval", k["log_interval"])
    put("always_save_checkpoint", False, "save only when val_loss improves")
    put("init_from", "scratch")
    put("wandb_log", False)
    put("wandb_project", res.name)
    put("wandb_run_name", str(trial_id))
    out.append("")
    out += data_note
    put("dataset", name)
    out.append("# nanoGPT's gradient_accumulation_steps is the total over all DDP ranks (train.py")
    out.append("# divides it by the number of GPUs); on one GPU, as here, it is the per-GPU value.")
    put("gradient_accumulation_steps", k["gradient_accumulation_steps"])
    put("batch_size", k["batch_size"])
    tpi = k["batch_size"] * k["block_size"] * k["gradient_accumulation_steps"]
    put("block_size", k["block_size"], f"tokens/iter = {tpi:,}")
    out.append("")
    for key in ("n_layer", "n_head", "n_embd", "dropout", "bias"):
        put(key, k[key])
    from tune_gpt.config import MUP_MULTS

    mults = [m for m in MUP_MULTS if float(k.get(m, 1.0)) != 1.0]
    if k.get("parametrization") == "mup" and (k["n_embd"] != k.get("mup_base_width") or mults):
        out += [f"# This config is µP (base width {k['mup_base_width']}"
                + (f"; {', '.join(f'{m} {k[m]:g}' for m in mults)}" if mults else "")
                + "), which nanoGPT's model.py does not have:",
                "# its learning rate is µP's and will not suit nanoGPT's standard model at "
                "this width; use tune-gpt train."]
    out.append("")
    for key in ("learning_rate", "max_iters", "weight_decay", "beta1", "beta2", "grad_clip",
                "decay_lr", "warmup_iters", "lr_decay_iters", "min_lr"):
        put(key, k[key], "cosine here: nanoGPT has no WSD (see the top of this file)"
            if wsd and key == "decay_lr" else "")
    out.append("")
    put("device", device, "tune-gpt's 'auto' picked CUDA when present" if k["device"] == "auto" else "")
    put("dtype", k["dtype"])
    put("compile", k["compile"])
    out.append(f"# tune-gpt seed was {k['seed']}; nanoGPT always seeds 1337 (+ rank).")
    return "\n".join(out) + "\n"


def wsd_note(k: dict[str, Any]) -> list[str]:
    """Comment lines for a trial trained with warmup-stable-decay. nanoGPT's train.py has only
    cosine, so the file keeps its schedule keys (the closest nanoGPT run: same warmup, peak,
    floor and length), says so, and gives the get_lr that would train WSD there. The code is
    tune_gpt.schedule.lr_at with this trial's cool-down start written in; a test runs it
    against lr_at step by step."""
    cfg = TrainConfig(**{f: k[f] for f in KNOBS if f in k})
    start = int(cooldown_start(cfg))
    return [
        "# NOTE: nanoGPT has no warmup-stable-decay (WSD). This trial trained with tune-gpt's",
        f"# lr_schedule = 'wsd', cooldown_frac = {py(k['cooldown_frac'])!r}: learning_rate held "
        f"until iteration {start},",
        "# then a 1-sqrt cool-down to min_lr at lr_decay_iters. nanoGPT's train.py decays by",
        "# cosine only, so this file runs the closest nanoGPT schedule, cosine with the same",
        "# warmup, peak, floor and length: it will not reproduce the trial's loss. To train",
        "# WSD in nanoGPT, replace get_lr in its train.py with:",
        "#",
        "#     def get_lr(it):",
        "#         if it < warmup_iters:",
        "#             return learning_rate * (it + 1) / (warmup_iters + 1)",
        "#         if it >= lr_decay_iters:",
        "#             return min_lr",
        f"#         if it < {start}:  # the cool-down's first step (tune-gpt's cooldown_start)",
        "#             return learning_rate",
        f"#         coeff = 1.0 - math.sqrt((it - {start}) / (lr_decay_iters - {start}))",
        "#         return min_lr + coeff * (learning_rate - min_lr)",
        "#",
        "# or train it with tune-gpt:  tune-gpt train best_config.yaml"]


def nanogpt_dataset(dataset: str, tokenizer: str = "auto") -> tuple[str, list[str]]:
    """(nanoGPT's name for tune-gpt's dataset, comment lines). nanoGPT names the folder
    data/<name> of its checkout, so a nanoGPT data folder is written as its basename and a
    text file as its stem (with how to prepare it); decided from the name alone (the report
    may be written on another machine): a path with a file suffix is a text file."""
    path = PurePath(dataset.rstrip("/\\") or dataset)
    if len(path.parts) <= 1 and not path.suffix:
        return path.name or dataset, []  # a name both tools know (shakespeare_char)
    if not path.suffix:
        return path.name, [f"# tune-gpt read the nanoGPT data folder {dataset}; nanoGPT reads "
                           f"data/{path.name}/ in its checkout."]
    like = "shakespeare" if tokenizer == "gpt2" else "shakespeare_char"
    return path.stem or "data", [
        f"# tune-gpt trained on the text file {dataset}; nanoGPT reads "
        f"data/{path.stem or 'data'}/train.bin",
        f"# and val.bin: prepare them like data/{like}/prepare.py does."]


# ----------------------------------------------------------------------------- next space

def _kind(spec: Any) -> str | None:
    if isinstance(spec, dict):
        for kind in ("choice", "uniform", "loguniform", "int"):
            if kind in spec:
                return kind
    return None


def narrow(spec: Any, values: list[Any]) -> tuple[Any, str]:
    """(new spec or a plain value when only one value is left, comment)."""
    kind = _kind(spec)
    values = [py(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if kind is None or not values:
        return spec, "kept: no top-trial values"
    if kind == "choice":
        keep = [c for c in spec["choice"] if any(_same(c, v) for v in values)] or list(spec["choice"])
        return (keep[0] if len(keep) == 1 else {"choice": keep}), f"was {flow(spec)}"
    try:
        lo, hi = (parse_amount(v, f"params: {kind}") for v in spec[kind][:2])
    except (UserError, TypeError, ValueError):  # a hand-written meta.json: keep what it says
        return spec, "kept: its range is not two numbers"
    log = kind == "loguniform" or bool(spec.get("log"))
    f = (lambda v: math.log(v)) if log else (lambda v: float(v))
    inv = (lambda v: math.exp(v)) if log else (lambda v: v)
    xs = [float(v) for v in values]
    a, b = f(min(xs)), f(max(xs))
    pad = NARROW_PAD * ((b - a) if b > a else (f(hi) - f(lo)) / 2)
    new_lo, new_hi = max(lo, inv(a - pad)), min(hi, inv(b + pad))
    note = f"was {flow(spec)}; top trials: {_fmt(min(xs))}..{_fmt(max(xs))}"
    if kind == "int":
        step = int(spec.get("step") or 1)
        g_lo = int(lo + math.floor(round((new_lo - lo) / step, 9)) * step)
        g_hi = int(lo + math.ceil(round((new_hi - lo) / step, 9)) * step)
        g_lo, g_hi = max(int(lo), g_lo), min(int(hi), g_hi)
        if g_lo >= g_hi:
            return g_lo, note
        out: dict[str, Any] = {"int": [g_lo, g_hi]}
        if spec.get("step"):
            out["step"] = step
        if spec.get("log"):
            out["log"] = True
        return out, note
    new_lo, new_hi = max(lo, sig(new_lo)), min(hi, sig(new_hi))
    return {kind: [new_lo, new_hi]}, note


def _same(choice: Any, value: Any) -> bool:
    if isinstance(choice, dict):
        return False
    try:
        return float(choice) == float(value)
    except (TypeError, ValueError):
        return str(choice).lower() == str(value).lower()


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def candidates(spec: Any) -> list[Any]:
    kind = _kind(spec)
    if kind == "choice":
        return list(spec["choice"])
    if kind == "int":
        return list(range(int(spec["int"][0]), int(spec["int"][1]) + 1, int(spec.get("step") or 1)))
    return [spec] if kind is None else []


def next_space(res: Results, top: list[str], budget: float | None) -> tuple[dict[str, Any], str]:
    """The narrowed space as a mapping and as commented YAML that `tune-gpt search` reads."""
    params: dict[str, Any] = {}
    notes: dict[str, str] = {}
    meta = res.meta
    fixed = {k: py(v) for k, v in (meta.fixed or {}).items()}
    t = res.trials.loc[top] if top else res.trials.iloc[0:0]
    for name, spec in res.params.items():
        if name in FIELD_TYPES and name in t.columns:
            new, notes[name] = narrow(spec, list(t[name]))
        elif _kind(spec) == "choice":  # a group of knobs set together: keep the used ones
            used = [c for c in spec["choice"] if isinstance(c, dict) and any(
                all(_same(v, t.at[i, k]) for k, v in c.items() if k in t.columns) for i in t.index)]
            # a group stays a choice even with one mapping left (a group cannot be plain)
            new, notes[name] = ({"choice": used} if used else spec), f"was {flow(spec)}"
        else:
            new, notes[name] = spec, "kept"
        if top:
            params[name] = new
        else:
            params[name], notes[name] = spec, "kept: no comparable trials"
    _keep_heads_compatible(params, fixed, notes, t)
    for k in params:
        fixed.pop(k, None)
    # the typed sections as the search ran them (tune_gpt.settings), every field kept
    sched, budget_section = asdict(meta.scheduler), asdict(meta.budget)
    space = {
        "name": names.derived(res.name, "-next"),
        "description": f"narrowed from search {res.name} around its top {len(top)} trials",
        "data": str(meta.data or (res.trials["dataset"].iloc[0] if len(res.trials)
                                  else "shakespeare_char")),
        "metric": meta.metric,
        "mode": meta.mode,
        "params": params,
        "fixed": fixed,
        "sampler": {k: py(v) for k, v in meta.sampler.to_yaml().items()},
        "scheduler": {k: py(v) for k, v in sched.items() if v not in (None, "")},
        "budget": {k: py(v) for k, v in budget_section.items() if v is not None},
        "resources": {k: py(v) for k, v in (meta.resources or {}).items() if k in RESOURCES},
    }
    return space, _space_yaml(res, space, notes, top, budget)


def _keep_heads_compatible(params: dict[str, Any], fixed: dict[str, Any],
                           notes: dict[str, str], t: Any) -> None:
    """n_embd must be divisible by n_head: keep an n_embd range whose every value suits every
    n_head value, or else list the n_embd choices that do (each n_head keeps at least one)."""
    heads = candidates(params["n_head"]) if "n_head" in params else \
        [fixed.get("n_head", TrainConfig().n_head)]
    if "n_embd" not in params or not heads:
        return
    embd = candidates(params["n_embd"])
    if embd and all(e % h == 0 for e in embd for h in heads):
        return
    keep = [e for e in embd if all(e % h == 0 for h in heads)]
    if not keep:
        keep = sorted({int(v) for v in t["n_embd"]} if len(t) else set())
        for h in heads:
            if not any(e % h == 0 for e in keep):
                fits = [e for e in embd if e % h == 0]
                if fits:
                    keep.append(min(fits, key=lambda e: abs(e - np.median(keep or fits))))
    keep = sorted(set(keep))
    if keep:
        params["n_embd"] = keep[0] if len(keep) == 1 else {"choice": keep}
        notes["n_embd"] += "; listed so every n_head divides it"


def _space_yaml(res: Results, space: dict[str, Any], notes: dict[str, str], top: list[str],
                budget: float | None) -> str:
    when = f"at {budget:,.0f} tokens (equal budget)" if budget else "(no comparable trials)"
    lines = [
        f"# Next search, derived from search '{res.name}'"
        + (f" (space {res.meta.space_file})" if res.meta.space_file else "") + ".",
        f"# Top trials by {res.metric} {when}: {', '.join(top) or 'none'}.",
        "# Each range spans the values the top trials used, widened by "
        f"{NARROW_PAD:.0%} of that span on each side",
        "# (in log space for loguniform), and never past the original range; choices keep the",
        "# values the top trials used, and a knob left with one value is fixed.",
        "#   tune-gpt search next_space.yaml",
    ]
    for key in ("name", "description", "data", "metric", "mode"):
        lines.append(f"{key}: {flow(space[key])}")
    lines.append("params:")
    for k, v in space["params"].items():
        lines.append(f"  {k}: {flow(v)}" + (f"   # {notes[k]}" if notes.get(k) else ""))
    if space["fixed"]:
        lines.append("fixed:")
        lines += [f"  {k}: {flow(v)}" for k, v in space["fixed"].items()]
    for key in ("sampler", "scheduler", "budget", "resources"):
        if space[key]:
            lines.append(f"{key}: {flow(space[key])}")
    return "\n".join(lines) + "\n"
