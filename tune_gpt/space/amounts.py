"""Amounts in the user's terms: token counts (200k, 1.5M, 2e5) and memory sizes (8G, 512M).
Used by the space, the report and the CLI alike; each raises a UserError naming the key."""

from __future__ import annotations

import re
from typing import Any

from tune_gpt.errors import UserError

_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12, "p": 1e15}  # FLOPs: 2P


def parse_amount(value: Any, where: str) -> float:
    """200k -> 200000, 1.5M -> 1500000, 2e5 -> 200000 (token counts in the user's terms)."""
    if isinstance(value, bool):
        raise UserError(f"{where} must be a number like 200000 or 200k, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgbtp]?)\s*", str(value).lower())
    if not m:
        raise UserError(f"{where} must be a number like 200000 or 200k, got {value!r}")
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)


_BYTES = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(value: Any, where: str) -> int:
    """8G / 8GB / 8GiB -> 8 * 2**30; 512M -> 512 * 2**20 (memory sizes need a unit)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt])(i?b)?\s*", str(value).lower())
    if isinstance(value, bool) or not m:
        raise UserError(f"{where} must be a size with a unit, like 8G or 512M; got {value!r}")
    size = int(float(m.group(1)) * _BYTES[m.group(2)])
    if size < 16 * 2**20:
        raise UserError(f"{where} ({value}) is below 16M: no GPT trains in that")
    return size
