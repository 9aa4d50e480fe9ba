"""`tune-gpt transfer`: the best config of a search on a narrow proxy, written for a wider
(and possibly deeper, longer) model, with the hyperparameters µP says carry over.

    tune-gpt search search_spaces/beginner.yaml            # proxy: n_embd 128-192 on a CPU
    tune-gpt transfer reports/beginner-cpu --n_embd=768 --n_layer=12 --n_head=12
    tune-gpt train reports/beginner-cpu/transfer-12x768.yaml

How it transfers. Under µP (tune_gpt.model) with base width W, a model of width W is exactly
the standard (SP) model: every µP factor is n_embd / W = 1. So the proxy's best trial, SP or
µP, is a µP model with base width W (its own n_embd under SP, its mup_base_width under µP),
and the wider model keeps that base width and the proxy's learning rate: µP then scales
the hidden matrices' init and learning rate and the readout for the new width. What this
does and does not carry over is written into the file and printed (STATEMENT).

Pure Python (yaml only): nothing here imports torch.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tune_gpt.config import (MUP_MULTS, TrainConfig, coerce, from_mapping, parse_overrides,
                             read_yaml_mapping)
from tune_gpt.errors import UserError
from tune_gpt.schedule import stretched_decay

BEST = "best_config.yaml"

# What transfers, from µP's theory and from what was measured (Tensor Programs V, §§6-7).
ACROSS_WIDTH = ("learning_rate", "min_lr", "warmup_iters", "beta1", "beta2", "grad_clip",
                *MUP_MULTS)
EMPIRICAL = ("n_layer", "batch_size", "block_size", "gradient_accumulation_steps", "max_iters")
NOT_TRANSFERRED = ("dropout", "weight_decay")


@dataclass
class Transfer:
    source: Path                 # the proxy's best_config.yaml
    proxy: dict[str, Any]        # its knobs
    config: TrainConfig          # the transferred, validated config
    changed: dict[str, tuple[Any, Any]]   # knob -> (proxy value, target value)
    notes: list[str]             # what transfers and what to check, one line each

    def yaml(self) -> str:
        import yaml

        from tune_gpt.config import KNOBS

        def flow(v: Any) -> str:
            return yaml.safe_dump(v, default_flow_style=True, width=10**9).splitlines()[0]

        head = [f"# Transferred by `tune-gpt transfer` from {self.source}",
                f"# (proxy: {self.proxy.get('n_layer')} layers x {self.proxy.get('n_embd')}, "
                f"{self.proxy.get('parametrization', 'sp')}).",
                "#   tune-gpt train <this file>"]
        head += ["# " + line for n in self.notes for line in textwrap.wrap(n, 96)]
        values = self.config.to_dict()
        return "\n".join(head + [f"{k}: {flow(values[k])}" for k in KNOBS]) + "\n"


def find_best_config(path: str | Path) -> Path:
    """A report folder (holding best_config.yaml) or the YAML file itself."""
    p = Path(path)
    if p.is_dir():
        p = p / BEST
        if not p.is_file():
            raise UserError(f"{path}: no {BEST} in this folder; pass a report folder written "
                            f"by `tune-gpt search` or `tune-gpt report` (e.g. reports/NAME)")
    elif not p.is_file():
        raise UserError(f"{path}: no such report folder or file; pass reports/NAME")
    return p


def transfer(path: str | Path, overrides: Iterable[str]) -> Transfer:
    """The proxy's best config with `--key=value` overrides (the target's shape, length ...),
    as a µP config whose base width is the proxy's. Raises UserError naming the problem."""
    source = find_best_config(path)
    raw = read_yaml_mapping(source)
    if not raw or all(str(k).startswith("#") for k in raw):
        raise UserError(f"{source}: holds no knobs (the search had no finished trial); "
                        f"transfer needs a best trial")
    proxy = {str(k): coerce(str(k), v, f"{source}: ") for k, v in raw.items()}
    wanted = parse_overrides(overrides)
    if not wanted:
        raise UserError("say what the large model is, e.g. --n_embd=768 --n_layer=12 "
                        "--n_head=12")
    for key in ("parametrization", "mup_base_width", "mup_base_head_size"):
        if key in wanted:
            raise UserError(f"--{key} is set by transfer itself (the proxy's width is the base "
                            f"width); leave it out")
    cfg, changed, notes = to_target(proxy, wanted)
    return Transfer(source=source, proxy=proxy, config=cfg, changed=changed, notes=notes)


def to_target(proxy: dict[str, Any], wanted: dict[str, Any], where: str = "target: "
              ) -> tuple[TrainConfig, dict[str, tuple[Any, Any]], list[str]]:
    """The rule itself, for `tune-gpt transfer` and `tune-gpt plan` alike: the proxy's knobs
    with `wanted` (the target's shape, length ...) as a validated µP config whose base width
    is the proxy's; the knobs that changed; what carries over (statement)."""
    mup = proxy.get("parametrization", "sp") == "mup"
    base = int(proxy.get("mup_base_width", 128)) if mup else int(proxy.get("n_embd", 128))
    # the base model's head size, kept when the target has other heads: µP scales the
    # attention logits by sqrt(base head size) / head size (model.CausalSelfAttention)
    heads = int(proxy.get("n_head", TrainConfig.n_head))
    base_head = int(proxy.get("mup_base_head_size") or 0) if mup else 0
    if not base_head and base % heads:  # it trained with a fractional base head size
        raise UserError(f"{where}the proxy's mup_base_width {base} is not a multiple of its "
                        f"n_head {heads}, so its base head size ({base / heads:.4g}) cannot be "
                        f"kept exactly; set mup_base_head_size on the proxy, or use a base "
                        f"width that its heads divide")
    base_head = base_head or base // heads
    target = {**proxy, "parametrization": "mup", "mup_base_width": base,
              "mup_base_head_size": base_head, **wanted}
    if "max_iters" in wanted and "lr_decay_iters" not in wanted:  # the schedule's shape kept
        target["lr_decay_iters"] = stretched_decay(
            int(proxy.get("lr_decay_iters", proxy.get("max_iters", 0)) or 0),
            int(proxy.get("max_iters", 0) or 0), int(wanted["max_iters"]))
    if "out_dir" not in wanted:
        target["out_dir"] = f"out-transfer-{target.get('n_layer')}x{target.get('n_embd')}"
    cfg = from_mapping(target, where)
    changed = {k: (proxy.get(k), v) for k, v in cfg.to_dict().items()
               if k in wanted and proxy.get(k) != v}
    return cfg, changed, statement(proxy, cfg, changed, mup, base)


def statement(proxy: dict[str, Any], cfg: TrainConfig, changed: dict[str, tuple[Any, Any]],
              was_mup: bool, base: int) -> list[str]:
    """What carries over and what does not, for this proxy and this target."""
    width = cfg.n_embd / base
    out = [(f"The proxy searched under µP with base width {base}: its learning rate is kept, "
            if was_mup else
            f"The proxy searched under SP at width {base}, where µP with base width {base} is "
            f"the same model: its learning rate is kept, ")
           + f"and µP (parametrization: mup, mup_base_width: {base}) rescales the hidden "
             f"matrices' init (std x{width ** -0.5:.3g}) and learning rate (x{1 / width:.3g}) "
             f"and the readout for width {cfg.n_embd} ({width:.3g}x the proxy's)."]
    out.append("Transfers across width (µP's theory; not measured for this transfer): "
               "learning_rate, min_lr, warmup, Adam betas, grad_clip, the init, output and "
               "attention multipliers.")
    out.append("Check before a long run: compare a short run of this config against SP at "
               "the same width with its own tuned learning rate (README: what "
               "benchmarks/mup_transfer.py measured, and what it did not).")
    empirical = [k for k in EMPIRICAL if k in changed]
    if empirical:
        out.append("Changed here, and these transfer only empirically (µP covers width; check "
                   "a short run): " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in
                                                ((k, changed[k]) for k in empirical)) + ".")
    if "n_head" in changed:
        (a, b), emb = changed["n_head"], int(proxy.get("n_embd", TrainConfig.n_embd))
        out.append(f"n_head {a} -> {b}: " + (
            f"the head size stays the proxy's {emb // a}, so µP's attention scale is the "
            f"proxy's; more heads than the proxy measured." if emb // a == cfg.n_embd // b else
            f"the head size changes with it ({emb // a} -> {cfg.n_embd // b}); µP's attention "
            f"scale follows, but a head-count change is outside what the proxy measured."))
    out.append("Does not transfer: dropout and weight_decay (kept as the proxy's "
               f"{cfg.dropout:g} and {cfg.weight_decay:g}); a larger model on the same data "
               "usually needs more of both: re-tune them at the target size.")
    if cfg.n_embd < base:
        out.append(f"The target (n_embd {cfg.n_embd}) is narrower than the proxy ({base}): "
                   "µP transfers either way, but a proxy is meant to be the small one.")
    return out
