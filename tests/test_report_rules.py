"""tune_gpt.report.rules: every threshold is named with its reason, in one cheap module."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from tune_gpt.report import rules

SOURCE = Path(rules.__file__).read_text(encoding="utf-8")


def constants() -> list[tuple[str, int, int]]:
    """(name, first line, last line) of each public UPPER_CASE assignment at module level."""
    out = []
    for node in ast.parse(SOURCE).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_"):
                    out.append((t.id, node.lineno, node.end_lineno))
    return out


def test_every_threshold_has_a_comment_giving_its_reason():
    comments = [(tok.start[0], tok.start[1]) for tok in
                tokenize.generate_tokens(io.StringIO(SOURCE).readline) if tok.type == tokenize.COMMENT]
    trailing = {line for line, col in comments if col > 0}
    # a comment line of its own right above (not the indented continuation of the last one)
    above = {line + 1 for line, col in comments if col == 0}
    names = constants()
    assert len(names) >= 25
    for name, first, last in names:
        assert first in above or trailing & set(range(first, last + 1)), f"{name} has no comment"


def test_rules_import_only_the_shared_judge():
    imports = [n for n in ast.parse(SOURCE).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, "module", None) for n in imports] == ["__future__", "tune_gpt.judge"]


def test_importing_the_rules_loads_neither_pandas_nor_matplotlib():
    code = ("import sys, tune_gpt.report.rules\n"
            "print(sorted(m for m in ('pandas', 'numpy', 'matplotlib', 'torch', 'yaml', 'scipy')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_the_trainables_thresholds_are_the_judges():
    # trainables/gpt.py reads these from tune_gpt.judge: the report says the same numbers
    from tune_gpt import judge

    assert rules.EXPLODED_LOSS_FACTOR is judge.EXPLODED_LOSS_FACTOR == 3.0
    assert rules.PREDICTED_OOM_MARGIN is judge.PREDICTED_OOM_MARGIN == 1.2


def test_the_package_still_exposes_its_api_lazily():
    import tune_gpt.report as report
    from tune_gpt.report.build import build_report
    from tune_gpt.report.findings import Findings, Report
    from tune_gpt.report.folder import write_report, write_report_for

    assert report.build_report is build_report and report.Findings is Findings
    assert report.Report is Report and report.write_report is write_report
    assert report.write_report_for is write_report_for
    assert set(report.__all__) <= set(dir(report))
    with pytest.raises(AttributeError):
        report.no_such_name  # noqa: B018
