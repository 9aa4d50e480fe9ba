"""Memory a config needs, for the OOM remedies ("... needs ~X GB"): the project's own
estimator (`tune_gpt.estimate`), the one the search uses to skip configs as predicted_oom,
so the report and the search agree on what fits."""

from __future__ import annotations

import math
from typing import Any

from tune_gpt.config import from_mapping
from tune_gpt.estimate import estimate


def need_bytes(knobs: dict[str, Any], vocab_size: int | None) -> float | None:
    """Estimated peak training memory in bytes for these knobs, or None if unknown."""
    if not vocab_size:
        return None
    try:
        cfg = from_mapping(knobs)
    except Exception:  # an incomplete or invalid config: no estimate rather than a guess
        return None
    try:
        return float(estimate(cfg, vocab_size).total)
    except Exception:
        return None


def smaller_model(n_layer: int, n_head: int, n_embd: int) -> tuple[int, int]:
    """The guide's "smaller model" step (6 layers x 384 -> 4 x 256): about two thirds of
    the layers and of the width, the width kept divisible by n_head (and by 16 when it can
    be, for tidy matrix shapes)."""
    layers = max(1, round(n_layer * 2 / 3))
    unit = n_head * 16 // math.gcd(n_head, 16)
    if unit >= n_embd:
        unit = n_head
    width = max(unit, round(n_embd * 2 / 3 / unit) * unit)
    if width >= n_embd:
        width = max(n_head, n_embd - unit)
    return layers, width
