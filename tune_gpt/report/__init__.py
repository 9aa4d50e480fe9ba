"""Tuning-strategy reports: what to change after a search, and why.

    from tune_gpt.report import build_report, write_report
    report = build_report(trials, curves, meta, lang="en")   # pure: tables in, Report out
    write_report(report, "reports/beginner")                 # report.md + PNGs + configs

    tune-gpt report NAME [--lang zh]                         # the same from a search folder

Modules: results (input tables, equal budget), diagnose (every rule and threshold),
effects (knob effects), summary, export (configs, next space), figures, i18n, render,
build (the core), folder (file I/O).
"""

from __future__ import annotations

from tune_gpt.report.build import build_report
from tune_gpt.report.findings import Findings, Report
from tune_gpt.report.folder import write_report, write_report_for

__all__ = ["Findings", "Report", "build_report", "write_report", "write_report_for"]
