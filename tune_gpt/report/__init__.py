"""Tuning-strategy reports: what to change after a search, and why.

    from tune_gpt.report import build_report, write_report
    report = build_report(trials, curves, meta, lang="en")   # pure: tables in, Report out
    # (+ samples=read_samples(folder): the best trials' text, results/samples.json)
    write_report(report, "reports/beginner")                 # report.md + PNGs + configs

    tune-gpt report NAME [--lang zh]                         # the same from a search folder

Modules: rules (every threshold, with its reason), results (input tables, equal budget),
noise (is a difference real?), diagnose (the oom, slow, overfit and diverge rule sets),
effects (knob effects), summary, export (configs, next space), figures, i18n
(+ locales/*.yaml), render (+ render_samples: loss references and the best trials' text),
build (the core), folder (file I/O).

The public names are imported on first use (PEP 562), so `import tune_gpt.report.rules`
(the Ray trainable does) loads neither pandas nor matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tune_gpt.report.build import build_report
    from tune_gpt.report.findings import Findings, Report
    from tune_gpt.report.folder import read_samples, write_report, write_report_for

_HOME = {"build_report": "build", "Findings": "findings", "Report": "findings",
         "read_samples": "folder", "write_report": "folder", "write_report_for": "folder"}

__all__ = ["Findings", "Report", "build_report", "read_samples", "write_report",
           "write_report_for"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
