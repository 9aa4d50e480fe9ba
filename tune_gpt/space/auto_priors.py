"""`prior: auto`: a prior computed from the data, the budget and the hardware by a cited rule,
instead of a value picked by hand.

    learning_rate: {loguniform: [1.0e-4, 1.0e-2], prior: auto}

The rules (each clamped into the knob's own range or snapped to its nearest choice):

- learning_rate: the guide's 1e-3 for small models, which nanoGPT's train_shakespeare_char.py
  trains for 5,000 x 64 x 256 = 81.9M tokens, moved to one trial's tokens by Bjorck et al.
  2024's lr* ~ tokens^-0.32 (tune_gpt.horizon.lr_for_tokens, the rule the final phase and
  `tune-gpt plan` use).
- dropout: by the epochs one trial makes of the training split. Under 2: 0.0 (nanoGPT's
  CPU recipe, 1.5 epochs, has none); 2 to 10: 0.1; 10 or more: 0.2 (nanoGPT's
  shakespeare_char config, ~80 epochs; the guide's overfitting remedy: dropout 0.1-0.2).
- n_layer, n_embd: a corpus one trial sees 10 times or more gets the smallest model of the
  range (the guide's overfitting remedy: a smaller model); otherwise the guide's beginner
  values (n_layer 6, n_embd 384), brought into the range.
- batch_size: the hardware: the guide's 64 on a GPU, nanoGPT's CPU recipe's 12 on a CPU.

A space's explicit `prior:` wins; `auto` is resolved when the search reads its data
(`resolve`), and `tune-gpt validate` prints every prior with its reason (`reasons`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

AUTO = "auto"
GUIDE_LR = 1e-3
GUIDE_TOKENS = 5000 * 64 * 256   # nanoGPT's train_shakespeare_char.py: iters x batch x block
GUIDE_MODEL = {"n_layer": 6, "n_embd": 384}
BATCH = {"cuda": 64, "cpu": 12}
DROPOUT = ((2.0, 0.0), (10.0, 0.1), (math.inf, 0.2))  # (epochs below, dropout)
SMALL_CORPUS_EPOCHS = 10.0


@dataclass
class Context:
    """What the rules read: one trial's tokens, the training split's, the device."""

    tokens_per_trial: float | None
    train_tokens: float | None
    device: str

    @property
    def epochs(self) -> float | None:
        if not self.tokens_per_trial or not self.train_tokens:
            return None
        return self.tokens_per_trial / self.train_tokens


def _lr(c: Context) -> tuple[float | None, str]:
    from tune_gpt.horizon import LR_RULE, lr_for_tokens

    if not c.tokens_per_trial:
        return None, "needs budget.tokens_per_trial"
    v = lr_for_tokens(GUIDE_LR, GUIDE_TOKENS, c.tokens_per_trial)
    return v, (f"the guide's {GUIDE_LR:g} for nanoGPT's {GUIDE_TOKENS / 1e6:.1f}M-token "
               f"shakespeare_char run, moved to {c.tokens_per_trial / 1e6:g}M tokens a trial "
               f"({LR_RULE})")


def _dropout(c: Context) -> tuple[float | None, str]:
    e = c.epochs
    if e is None:
        return None, "needs the training split's size and budget.tokens_per_trial"
    v = next(d for below, d in DROPOUT if e < below)
    return v, (f"{e:.2g} epochs of the training split a trial: none under 2 (nanoGPT's CPU "
               f"recipe), 0.1 to 10, 0.2 beyond (nanoGPT's shakespeare_char config; the "
               f"guide's overfitting remedy)")


def _model(knob: str) -> Callable[[Context], tuple[Any, str]]:
    def rule(c: Context) -> tuple[Any, str]:
        e = c.epochs
        if e is not None and e >= SMALL_CORPUS_EPOCHS:
            return -math.inf, (f"{e:.2g} epochs a trial: a small corpus gets the smallest "
                               f"model (the guide's overfitting remedy)")
        return GUIDE_MODEL[knob], (f"the guide's beginner value {GUIDE_MODEL[knob]}"
                                   + (f" ({e:.2g} epochs a trial)" if e is not None else ""))
    return rule


def _batch(c: Context) -> tuple[int, str]:
    dev = "cuda" if c.device == "cuda" else "cpu"
    return BATCH[dev], ("the guide's beginner batch on a GPU" if dev == "cuda" else
                        "nanoGPT's CPU recipe (batch 12 of 64-token blocks)")


RULES: dict[str, Callable[[Context], tuple[Any, str]]] = {
    "learning_rate": _lr, "dropout": _dropout, "n_layer": _model("n_layer"),
    "n_embd": _model("n_embd"), "batch_size": _batch}


def place(dist: Any, value: Any) -> Any:
    """`value` inside the dist: clamped into [low, high] (rounded for int), or the nearest
    choice (by ratio for positive numbers); -inf means the smallest."""
    if dist.kind == "choice":
        values = list(dist.values)
        if value == -math.inf:
            return min(values)
        if all(isinstance(v, (int, float)) and v > 0 for v in values) and value > 0:
            return min(values, key=lambda v: abs(math.log(v / value)))
        return min(values, key=lambda v: abs(v - value))
    v = dist.low if value == -math.inf else min(max(value, dist.low), dist.high)
    return int(round(v)) if dist.kind == "int" else float(v)


def resolve(space: Any, train_tokens: float | None, device: str) -> list[str]:
    """Every `prior: auto` of the space set by its rule (a rule that cannot decide, for want
    of a number, leaves the knob without a prior); returns each prior with its reason."""
    ctx = Context(space.budget.tokens_per_trial, train_tokens, device)
    for knob, dist in space.params.items():
        if dist.prior == AUTO:
            value, _ = RULES[knob](ctx)
            dist.prior = None if value is None else place(dist, value)
    return reasons(space, ctx)


def reasons(space: Any, ctx: Context | None = None) -> list[str]:
    """One line per prior: its value and why (the rule's reason, or `set in the space`)."""
    out = []
    for knob, dist in space.params.items():
        if dist.prior is None and not dist.auto:
            continue
        if dist.auto:
            raw, why = RULES[knob](ctx) if ctx else (None, "computed when the search reads "
                                                           "its data")
            shown = "auto" if dist.prior in (None, AUTO) else f"{dist.prior:.3g}" if \
                isinstance(dist.prior, float) else str(dist.prior)
            if raw is not None and raw != -math.inf and dist.prior not in (None, AUTO) \
                    and not math.isclose(float(raw), float(dist.prior), rel_tol=1e-9):
                why += " (the nearest the range allows)"
            out.append(f"{knob} {shown}: {why}")
        else:
            out.append(f"{knob} {dist.prior}: set in the space")
    return out


def device_of(space: Any) -> str:
    """The hardware the rules assume: the profile's (gpu: cuda, cpu: cpu), else the device
    the trials would pick here."""
    if space.profile in ("gpu", "cpu"):
        return "cuda" if space.profile == "gpu" else "cpu"
    if not any(d.auto for d in space.params.values()):
        return "cpu"  # no rule will read it: no torch import (validate stays quick)
    from tune_gpt.config import resolve_device

    return resolve_device(str(space.fixed.get("device", "auto")))


def train_tokens_here(data: str) -> float | None:
    """The training split's size in tokens, cheaply, for `validate`: a text file's
    characters (its char tokens) times the train fraction, or a nanoGPT folder's train.bin
    (uint16 tokens); None when it is not on disk here (a named data set not cached yet)."""
    from pathlib import Path

    from tune_gpt.data.text import TRAIN_FRACTION

    p = Path(data).expanduser()
    try:
        if p.is_file():
            return len(p.read_text(encoding="utf-8", errors="replace")) * TRAIN_FRACTION
        if (p / "train.bin").is_file():
            return (p / "train.bin").stat().st_size / 2
    except OSError:
        return None
    return None


def context(space: Any, train_tokens: float | None) -> Context:
    return Context(space.budget.tokens_per_trial, train_tokens, device_of(space))
