"""Checks of the YAML's shape shared by the loaders: mappings, known keys, dataclasses."""

from __future__ import annotations

from typing import Any, Mapping

from tune_gpt.errors import UserError, closest


def mapping_of(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping (key: value), got {type(value).__name__}")
    return value


def check_keys(mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UserError(f"{where}: unknown key '{key}'{closest(str(key), allowed)}; "
                            f"allowed: {', '.join(allowed)}")


def dataclass_from(cls: type, mapping: Mapping[str, Any], where: str) -> Any:
    allowed = tuple(n for n, f in cls.__dataclass_fields__.items() if f.init)
    check_keys(mapping, allowed, where)
    return cls(**mapping)
