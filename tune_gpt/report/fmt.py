"""Numbers as a beginner reads them: 16,384 tokens, 2.1 GB, 3 min 20 s, 3.0e-04."""

from __future__ import annotations

import math
from typing import Any

DASH = "—"
FRACTIONS = ("dropout", "weight_decay", "beta1", "beta2", "grad_clip")  # 0.0 stays a float


def ok(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def loss(x: Any) -> str:
    return f"{float(x):.3f}" if ok(x) else DASH


def signed(x: Any, digits: int = 3) -> str:
    return f"{float(x):+.{digits}f}" if ok(x) else DASH


def count(x: Any) -> str:
    return f"{float(x):,.0f}" if ok(x) else DASH


def tokens(x: Any) -> str:
    """Exact below ten million (16,384), then 12.3M / 1.2B."""
    if not ok(x):
        return DASH
    x = float(x)
    if x >= 1e9:
        return f"{x / 1e9:.2f}B"
    if x >= 1e7:
        return f"{x / 1e6:.1f}M"
    return f"{x:,.0f}"


def gb(x: Any) -> str:
    """Bytes in decimal GB (as GPU spec sheets count), MB below 1 GB."""
    if not ok(x):
        return DASH
    x = float(x)
    return f"{x / 1e9:.1f} GB" if x >= 1e9 else f"{x / 1e6:.0f} MB"


def seconds(x: Any, units: tuple[str, str, str] = ("h", "min", "s")) -> str:
    """3 min 20 s (units: hours, minutes, seconds words of the report's language)."""
    if not ok(x):
        return DASH
    h, m, sec = units
    s = int(round(float(x)))
    if s >= 3600:
        return f"{s // 3600} {h} {s % 3600 // 60:02d} {m}"
    if s >= 60:
        return f"{s // 60} {m} {s % 60:02d} {sec}"
    return f"{s} {sec}"


def pct(x: Any, digits: int = 0) -> str:
    return f"{100 * float(x):.{digits}f}%" if ok(x) else DASH


def lr(x: Any) -> str:
    return f"{float(x):.1e}" if ok(x) else DASH


def speed(x: Any) -> str:
    return f"{float(x):,.0f}" if ok(x) else DASH


def times(x: Any) -> str:
    return f"{float(x):.2f}×" if ok(x) else DASH


def value(knob: str, v: Any) -> str:
    """A knob's value the way one would type it."""
    if isinstance(v, bool) or str(v) in ("True", "False"):
        return str(v).lower()
    if knob in ("learning_rate", "min_lr") and ok(v):
        return lr(v)
    if isinstance(v, float) and v.is_integer() and knob not in FRACTIONS:
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    if hasattr(v, "item"):
        return value(knob, v.item())
    return str(v)
