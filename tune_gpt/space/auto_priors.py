"""`prior: auto`: a prior computed from the data, the budget and the hardware by a cited rule,
instead of a value picked by hand.

    learning_rate: {loguniform: [1.0e-4, 1.0e-2], prior: auto}

The rules (each clamped into the knob's own range or snapped to its nearest choice):

- learning_rate: the guide's 1e-3 for small models, which nanoGPT's train_shakespeare_char.py
  trains for 5,000 x 64 x 256 = 81.9M tokens, moved to one trial's tokens by Bjorck et al.
  2024's lr* ~ tokens^-0.32 (tune_gpt.horizon.lr_for_tokens, the rule the final phase and
  `tune-gpt plan` use).
- n_layer: the guide's beginner value (6), brought into the range.
- n_embd: the guide's 384 brought into the range, narrowed (the guide's overfitting
  remedy: a smaller model) until the model would not start to overfit within one trial;
  the smallest width when none qualifies. Where a model starts to overfit was measured on
  the licenses corpus (benchmarks/results/budget_best/): with no dropout, the validation
  loss turned up after ~60 x D/N epochs, D/N being the training split's tokens per
  non-embedding parameter (Kaplan et al. 2020's N = 12 * n_layer * n_embd^2, at the
  n_layer prior): 7.7 epochs for 4x192 (D/N 0.13), 17 for 4x128 (D/N 0.29). So a width
  qualifies when a trial's epochs stay under ONSET_EPOCHS_PER_DN x D/N. On tinyshakespeare
  (a trial: 2 epochs; 4x192: D/N 0.57) that keeps 4x192, which trained 13 epochs there with
  no overfitting; on licenses (8.8 epochs a trial) it gives 4x128, which beat 4x192 by
  0.09 nats at equal compute.
- dropout: by the same D/N of the model the other priors give: 0.5 or more: 0.0 (nanoGPT's
  CPU recipe, 4x128 on tinyshakespeare, D/N 1.3, and the 4x192 above have none); 0.15 to
  0.5: 0.1; under 0.15: 0.2 (nanoGPT's shakespeare_char config, 6x384, D/N 0.09; the
  guide's overfitting remedy: dropout 0.1-0.2).
- batch_size: the hardware: the guide's 64 on a GPU, nanoGPT's CPU recipe's 12 on a CPU.

A space's explicit `prior:` wins; `auto` is resolved when the search reads its data
(`resolve`), and `tune-gpt validate` prints every prior with its reason (`reasons`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

# the overfitting onset and N are the horizon module's, which the final phase and `plan` use
from tune_gpt.horizon import ONSET_EPOCHS_PER_DN, non_embedding_params, overfit_onset

AUTO = "auto"
GUIDE_LR = 1e-3
GUIDE_TOKENS = 5000 * 64 * 256   # nanoGPT's train_shakespeare_char.py: iters x batch x block
GUIDE_MODEL = {"n_layer": 6, "n_embd": 384}
BATCH = {"cuda": 64, "cpu": 12}
DROPOUT = ((0.15, 0.2), (0.5, 0.1), (math.inf, 0.0))  # (D/N below, dropout)


@dataclass
class Context:
    """What the rules read: one trial's tokens, the training split's, the device."""

    tokens_per_trial: float | None
    train_tokens: float | None
    device: str
    n_layer: int | None = None   # the model's depth as the space sets it (prior or fixed)
    n_embd: int | None = None    # its width, likewise (after the n_embd rule, if auto)

    @property
    def epochs(self) -> float | None:
        """How many times one trial sees the training split."""
        if not self.tokens_per_trial or not self.train_tokens:
            return None
        return self.tokens_per_trial / self.train_tokens

    def tokens_per_param(self, n_embd: int | None = None) -> float | None:
        """D/N: the training split's tokens per non-embedding parameter (12 L C^2)."""
        width = n_embd or self.n_embd
        if not self.train_tokens or not self.n_layer or not width:
            return None
        return self.train_tokens / non_embedding_params(self.n_layer, width)


def _params(n: float) -> str:
    return f"{n / 1e6:.2g}M" if n >= 1e5 else f"{n / 1e3:.3g}k"


def _lr(c: Context, dist: Any) -> tuple[float | None, str]:
    from tune_gpt.horizon import LR_RULE, lr_for_tokens

    if not c.tokens_per_trial:
        return None, "needs budget.tokens_per_trial"
    v = lr_for_tokens(GUIDE_LR, GUIDE_TOKENS, c.tokens_per_trial)
    return v, (f"the guide's {GUIDE_LR:g} for nanoGPT's {GUIDE_TOKENS / 1e6:.1f}M-token "
               f"shakespeare_char run, moved to {c.tokens_per_trial / 1e6:g}M tokens a trial "
               f"({LR_RULE})")


def _dropout(c: Context, dist: Any) -> tuple[float | None, str]:
    dn = c.tokens_per_param()
    if dn is None:
        return None, "needs the training split's size and the model's n_layer and n_embd"
    v = next(d for below, d in DROPOUT if dn < below)
    return v, (f"{_params(c.train_tokens or 0)} training tokens for "
               f"{_params(non_embedding_params(c.n_layer or 0, c.n_embd or 0))} parameters "
               f"(D/N {dn:.2g}): none at 0.5 or more (nanoGPT's CPU recipe), 0.1 from 0.15, "
               f"0.2 below (nanoGPT's shakespeare_char config; the guide's overfitting "
               f"remedy)")


def _n_layer(c: Context, dist: Any) -> tuple[int, str]:
    return GUIDE_MODEL["n_layer"], f"the guide's beginner value {GUIDE_MODEL['n_layer']}"


def _n_embd(c: Context, dist: Any) -> tuple[Any, str]:
    guide = GUIDE_MODEL["n_embd"]
    widths = sorted(v for v in (dist.candidates() or []) if isinstance(v, int))
    e = c.epochs
    if not widths or e is None or c.tokens_per_param(widths[0]) is None:
        return guide, (f"the guide's beginner value {guide} (the training split's size, "
                       f"budget.tokens_per_trial and n_layer decide when it narrows)")
    start = place(dist, guide)

    def onset(w: int) -> float:  # epochs before a w-wide model starts to overfit
        return (overfit_onset(c.train_tokens, c.n_layer, w) or 0.0) / (c.train_tokens or 1)

    fits = [w for w in widths if w <= start and onset(w) > e]
    value = max(fits) if fits else widths[0]
    why = (f"a trial sees the training split {e:.2g} times; {c.n_layer}x{value} "
           f"({_params(non_embedding_params(c.n_layer or 0, value))} parameters, "
           f"{_params(c.train_tokens or 0)} tokens) would start to overfit after "
           f"~{onset(value):.2g} epochs (~{ONSET_EPOCHS_PER_DN:g} x its tokens per parameter, measured "
           f"on licenses)")
    if value == start:
        return value, f"the guide's {guide} brought into the range; {why}"
    return value, (f"{why}: the widest that lasts the trial (a smaller model, the guide's "
                   f"overfitting remedy)" if fits else
                   f"{why}: none lasts the trial, so the smallest (the guide's overfitting "
                   f"remedy; add dropout, more text or fewer tokens per trial)")


def _batch(c: Context, dist: Any) -> tuple[int, str]:
    dev = "cuda" if c.device == "cuda" else "cpu"
    return BATCH[dev], ("the guide's beginner batch on a GPU" if dev == "cuda" else
                        "nanoGPT's CPU recipe (batch 12 of 64-token blocks)")


# in this order: n_embd reads n_layer's value, dropout reads both
RULES: dict[str, Callable[[Context, Any], tuple[Any, str]]] = {
    "learning_rate": _lr, "n_layer": _n_layer, "n_embd": _n_embd, "dropout": _dropout,
    "batch_size": _batch}


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
    """Every `prior: auto` of the space set by its rule, in RULES' order (a rule that cannot
    decide, for want of a number, leaves the knob without a prior); returns each prior with
    its reason."""
    ctx = context(space, train_tokens, device)
    for knob in RULES:
        dist = space.params.get(knob)
        if dist is not None and dist.prior == AUTO:
            value, _ = RULES[knob](ctx, dist)
            dist.prior = None if value is None else place(dist, value)
            _learn(ctx, knob, dist.prior)
    return reasons(space, ctx)


def _learn(ctx: Context, knob: str, value: Any) -> None:
    """The model's shape as far as it is known, for the rules that read it."""
    if knob in ("n_layer", "n_embd") and isinstance(value, int) and value > 0:
        setattr(ctx, knob, value)


def reasons(space: Any, ctx: Context | None = None) -> list[str]:
    """One line per prior: its value and why (the rule's reason, or `set in the space`)."""
    out = []
    for knob, dist in space.params.items():
        if dist.prior is None and not dist.auto:
            continue
        if dist.auto:
            raw, why = RULES[knob](ctx, dist) if ctx else (None, "computed when the search "
                                                                 "reads its data")
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


def context(space: Any, train_tokens: float | None, device: str | None = None) -> Context:
    """What the rules read, from the space: the budget, the device, and the model's depth
    and width where the space fixes them or gives them a prior of its own."""
    ctx = Context(space.budget.tokens_per_trial, train_tokens,
                  device if device is not None else device_of(space))
    for knob in ("n_layer", "n_embd"):
        dist = space.params.get(knob)
        value = space.fixed.get(knob) if dist is None else \
            None if dist.prior == AUTO else dist.prior
        _learn(ctx, knob, value)
    return ctx
