"""The markdown pieces every report section uses: tables, knob changes, trial ids."""

from __future__ import annotations

from typing import Any, Callable

from tune_gpt.report import fmt

Tr = Callable[..., str]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def changes(ch: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {fmt.value(k, a)}→{fmt.value(k, b)}" for k, (a, b) in ch.items())


def ids(xs: list[str], n: int = 3) -> str:
    shown = ", ".join(f"`{x}`" for x in xs[:n])
    return shown + (f" +{len(xs) - n}" if len(xs) > n else "")
