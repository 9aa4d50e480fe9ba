"""tune_gpt.judge: one rule for "is it real", Student's t for the degrees of freedom there,
the reference seed spread as measured, and the borders it keeps (the trainable and the
search read it, not the report's modules)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from tune_gpt import judge

ROOT = Path(__file__).resolve().parents[1]


def test_t_quantiles_for_few_degrees_of_freedom():
    # two-sided 95% quantiles of Student's t (any statistics table)
    for dof, t in ((1, 12.706), (2, 4.303), (3, 3.182), (5, 2.571), (6, 2.447), (30, 2.042)):
        assert judge.t_quantile(dof) == pytest.approx(t, abs=1e-3)
    assert math.isnan(judge.t_quantile(0))
    assert judge.t_quantile(math.inf) == pytest.approx(1.95996, abs=1e-4)  # t's limit


def test_pooled_sd_counts_each_group_around_its_own_mean():
    sd, dof = judge.pooled_sd([[1.0, 1.2], [2.0, 2.2, 2.4], [9.9]])
    # squares: 0.02 + 0.08; dof 1 + 2; the lone run adds nothing
    assert dof == 3 and sd == pytest.approx(math.sqrt(0.10 / 3))
    assert judge.pooled_sd([[1.0], [2.0]]) == (pytest.approx(math.nan, nan_ok=True), 0)


def test_a_gap_is_real_beyond_t_times_the_standard_error_of_the_difference():
    n = judge.Noise(0.02, "confirm", dof=4)
    se = 0.02 * math.sqrt(1 / 3 + 1 / 2)
    assert n.threshold(3, 2) == pytest.approx(2.776 * se, rel=1e-3)
    assert n.real(2.8 * se, 3, 2) and not n.real(2.7 * se, 3, 2)
    assert n.real(-2.8 * se, 3, 2) and not n.real(-2.7 * se, 3, 2)  # either direction
    assert n.pair == pytest.approx(2.776 * math.sqrt(2) * 0.02, rel=1e-3)
    assert not n.real(math.nan)


def test_the_noise_comes_from_confirm_else_the_reference_never_below_the_wobble():
    ref = judge.REFERENCE_SEED_NOISE
    confirm = judge.seed_noise(0.03, 3, 6)
    assert (confirm.source, confirm.per_run, confirm.dof, confirm.measured, confirm.n) == \
        ("confirm", 0.03, 3, 0.03, 6)
    # confirm runs are never trusted below the curves' own wobble, nor below the floor
    wobbly_confirm = judge.seed_noise(0.03, 3, 6, wobble=0.05)
    assert (wobbly_confirm.per_run, wobbly_confirm.measured, wobbly_confirm.eval) == \
        (0.05, 0.03, 0.05)
    assert judge.seed_noise(judge.FLOOR / 2, 3, 6).per_run == judge.FLOOR
    none = judge.seed_noise(wobble=0.004)
    assert (none.source, none.per_run, none.dof) == ("reference", ref.sd, ref.dof)
    assert none.eval == judge.FLOOR  # within one run: the wobble, at least the floor
    wobbly = judge.seed_noise(wobble=3 * ref.sd, wobble_points=40, wobble_trials=5)
    assert wobbly.source == "curves" and wobbly.per_run == 3 * ref.sd and wobbly.dof == ref.dof
    # confirm runs with no pair of completed re-runs measured nothing: the reference stands
    assert judge.seed_noise(float("nan"), 0, 2).source == "reference"


def test_the_reference_is_what_the_committed_benchmark_measured():
    ref = judge.REFERENCE_SEED_NOISE
    summary = json.loads((ROOT / ref.source).read_text())
    final = summary["final_val_loss"]
    assert ref.sd == pytest.approx(final["sd"], abs=5e-4) and ref.dof == final["dof"]
    assert ref.mean == pytest.approx(final["mean"], abs=5e-4)
    assert summary["iters"] == 2000 and summary["config"]["eval_iters"] == 20


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_trainable_and_the_search_do_not_reach_into_the_reports_rules():
    """Rules the trainable and the search share with the report live in tune_gpt.judge (and
    tune_gpt.settings). The trainable imports nothing of the report; the search only hands
    its tables to the report at the end (tune_gpt.report's entry points), never its rules."""
    for f in (ROOT / "trainables").rglob("*.py"):
        bad = {m for m in _imports(f) if m.startswith("tune_gpt.report")}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"
    for f in (ROOT / "tune_gpt" / "search").rglob("*.py"):
        bad = {m for m in _imports(f) if m.startswith("tune_gpt.report.")}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_importing_the_judge_is_light():
    import subprocess
    import sys

    code = ("import sys, tune_gpt.judge\nprint(sorted(m for m in ('scipy', 'numpy', 'pandas', "
            "'torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
