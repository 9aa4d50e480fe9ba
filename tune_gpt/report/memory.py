"""Memory a config needs, for the OOM remedies ("... needs ~X GB").

A small adapter: it asks `tune_gpt.estimate.estimate(cfg, vocab_size).total` when that
module is there, and otherwise falls back to a rough formula of its own (below), so the
report works either way and says which one it used.
"""

from __future__ import annotations

import math
from typing import Any

from tune_gpt.config import from_mapping


def estimator_name() -> str:
    """'tune_gpt.estimate' when the project's estimator is importable, else 'formula'."""
    try:
        from tune_gpt.estimate import estimate  # noqa: F401
    except ImportError:
        return "formula"
    return "tune_gpt.estimate"


def need_bytes(knobs: dict[str, Any], vocab_size: int | None) -> float | None:
    """Estimated peak training memory in bytes for these knobs, or None if unknown."""
    if not vocab_size:
        return None
    try:
        cfg = from_mapping(knobs)
    except Exception:  # an incomplete or invalid config: no estimate rather than a guess
        return None
    try:
        from tune_gpt.estimate import estimate
    except ImportError:
        return formula_bytes(cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size,
                             cfg.batch_size, vocab_size, cfg.dtype)
    try:
        return float(estimate(cfg, vocab_size).total)
    except Exception:
        return None


def formula_bytes(n_layer: int, n_head: int, n_embd: int, block_size: int, batch_size: int,
                  vocab_size: int, dtype: str = "float32") -> float:
    """A rough peak: fp32 weights + grads + AdamW's two moments (16 bytes per parameter),
    plus the activations kept for backward of one micro-batch (Korthikanti et al. 2022:
    per layer B*T*(34*d + 5*heads*T) bytes at 16-bit, twice that at 32-bit), plus logits
    and their gradient (B*T*vocab fp32, twice)."""
    d, L, T, B = n_embd, n_layer, block_size, batch_size
    params = vocab_size * d + T * d + L * 12 * d * d + (2 * L + 1) * d
    per_elem = 1 if dtype in ("bfloat16", "float16") else 2
    activations = L * B * T * (34 * d + 5 * n_head * T) * per_elem
    logits = 2 * B * T * vocab_size * 4
    return float(16 * params + activations + logits)


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
