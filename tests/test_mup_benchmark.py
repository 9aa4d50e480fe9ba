"""benchmarks/mup_transfer.py: its --quick run measures what its JSON says (checked against
the cells it saved), resumes without rerunning a saved cell, says when it is incomplete; and
its targets are decided so that they can fail."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import mup_transfer as mt  # noqa: E402

WIDTHS = mt.QUICK["widths"]                 # 32 64 128: the base is 32
CELLS = 2 + 2 * len(mt.QUICK["lrs"]) + 2    # coordinate checks, two sweeps, the transfer


def _quick(out: Path, *args: str) -> tuple[dict, str]:
    """One --quick run into `out`: (its summary, its stdout)."""
    summary = out.parent / f"{out.name}.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mup_transfer.py"),
                           "--quick", "--out", str(out), "--json", str(summary), *args],
                          capture_output=True, text=True, timeout=300, cwd=out.parent,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert summary.with_suffix(".md").read_text().startswith("# ")
    return json.loads(summary.read_text()), proc.stdout


def _mtimes(out: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mtime_ns for f in (out / "cells_v2").glob("*.json")}


@pytest.mark.e2e
def test_mup_transfer_quick_measures_resumes_and_says_when_incomplete(
        tmp_path: Path, shakespeare_path: Path) -> None:
    out, data = tmp_path / "mup", str(shakespeare_path)
    # A session cut short: 3 cells (the two coordinate checks, one run), null figures.
    part, _ = _quick(out, "--data", data, "--max-cells", "3")
    assert part["note"] == f"incomplete: 3 of {CELLS} cells" and part["complete"] is False
    assert part["mup"]["base_lr"] is None and part["mup"]["gap_to_sp_best"] is None
    assert set(part["mup"]["loss_by_width"].values()) == {None}
    assert part["targets"]["wider_is_better"]["pass"] is None
    assert part["targets"]["gap_to_sp_best"]["pass"] is None
    before = _mtimes(out)
    assert len(before) == 3

    s, stdout = _quick(out, "--data", data)
    assert f"cells: 3 skipped (saved before), {CELLS - 3} run" in stdout
    after = _mtimes(out)
    assert {k: after[k] for k in before} == before      # the saved cells were not rerun
    assert s["note"] == f"complete: {CELLS} cells" and s["complete"] is True
    assert s["widths"] == WIDTHS and s["seeds"] == 1 and s["data"] == data
    assert s["tokens"] == mt.QUICK["tokens"]

    # Every figure from the cells it saved (one seed: a point is that run's loss).
    cells = [json.loads(f.read_text()) for f in (out / "cells_v2").glob("*.json")]
    runs = [c for c in cells if "val_loss" in c]
    assert len(runs) == CELLS - 2
    for c in runs:
        assert c["config"]["parametrization"] == c["param"]
        assert c["config"]["mup_base_width"] == 32 and c["config"]["n_layer"] == 2
        assert c["config"]["n_embd"] == c["width"] and c["tokens"] >= mt.QUICK["tokens"]

    def loss(param: str, width: int) -> dict[float, float]:
        return {c["lr"]: c["val_loss"] for c in runs if (c["param"], c["width"]) == (param, width)}

    base, sp_top = loss("mup", 32), loss("sp", 128)
    assert sorted(base) == sorted(sp_top) == mt.QUICK["lrs"]
    assert all(math.isfinite(v) for v in [*base.values(), *sp_top.values()])
    lr0 = min(base, key=base.get)
    m = s["mup"]
    assert m["base_lr"] == lr0
    assert loss("mup", 64) == {lr0: m["loss_by_width"]["64"]}
    assert loss("mup", 128) == {lr0: m["loss_by_width"]["128"]}
    assert m["loss_by_width"]["32"] == base[lr0]
    sp = s["sp"]
    assert sp["best_lr_by_width"] == {"32": lr0, "128": min(sp_top, key=sp_top.get)}
    assert sp["best_loss_by_width"] == {"32": base[lr0], "128": min(sp_top.values())}
    gap = m["loss_by_width"]["128"] - min(sp_top.values())
    assert m["gap_to_sp_best"] == pytest.approx(gap)

    # The coordinate check: flat under µP, growing under SP (measured 1.0x against 10x).
    c = s["coord_check"]
    assert c["sp_growth"] > 3 * c["mup_growth"]
    assert 0.5 < c["mup_growth"] < 2
    assert (out / "coord_check.png").stat().st_size > 10_000
    assert (out / "lr_sweeps.png").stat().st_size > 10_000

    # Targets decided from the figures above, so each can fail.
    t = s["targets"]
    steps = [m["loss_by_width"][str(a)] - m["loss_by_width"][str(b)]
             for a, b in zip(WIDTHS, WIDTHS[1:])]
    assert t["wider_is_better"]["pass"] is (min(steps) >= mt.TARGET_STEP)
    assert t["gap_to_sp_best"]["pass"] is (gap <= mt.TARGET_GAP)
    assert t["coord_check_mup_growth"]["measured"] == c["mup_growth"]

    # Run again: nothing is rerun, nothing rewritten.
    _, stdout = _quick(out, "--data", data)
    assert f"cells: {CELLS} skipped (saved before), 0 run" in stdout
    assert _mtimes(out) == after


def _cells(plan: mt.Plan, mup: dict[int, float], sp: dict[float, float]) -> dict:
    """Hand-made cells: the base sweep (best at lr 2), µP at the base lr, SP's sweep."""
    def cell(v: float | None) -> dict:
        return {"val_loss": v, "vocab_size": 65}

    cells = {("mup", 32, lr, s): cell(3.0 + abs(lr - 2) / 10) for lr in plan.lrs
             for s in plan.seeds}
    cells |= {("mup", w, 2.0, s): cell(v) for w, v in mup.items() for s in plan.seeds}
    return cells | {("sp", 128, lr, s): cell(v) for lr, v in sp.items() for s in plan.seeds}


def _coords(mup_ratio: float) -> dict:
    sizes = {"sp": {"32": {"embed": 1.0, "block0": 1.0}, "128": {"embed": 1.0, "block0": 9.0}},
             "mup": {"32": {"embed": 1.0, "block0": 1.0},
                     "128": {"embed": 1.0, "block0": mup_ratio}}}
    return {p: {"widths": [32, 128], "sizes": v} for p, v in sizes.items()}


def test_mup_transfer_targets_pass_and_fail_as_the_figures_say() -> None:
    plan = mt.Plan(widths=[32, 64, 128], n_layer=2, tokens=1000, lrs=[1.0, 2.0, 3.0, 4.0, 5.0],
                   seeds=[0, 1])
    sp = {1.0: 2.86, 2.0: 2.84, 3.0: 2.9, 4.0: 3.0, 5.0: None}   # None: diverged, ln(65)
    good = mt.summarize(plan, _cells(plan, {64: 2.95, 128: 2.85}, sp), _coords(0.8), "d")
    assert good["mup"]["base_lr"] == 2.0
    assert good["mup"]["loss_by_width"] == {"32": 3.0, "64": 2.95, "128": 2.85}
    assert good["sp"]["best_lr_by_width"] == {"32": 2.0, "128": 2.0}
    assert good["mup"]["gap_to_sp_best"] == pytest.approx(0.01)
    assert good["sp"]["sweeps"]["128"]["5"] == pytest.approx(math.log(65))
    assert [v["pass"] for v in good["targets"].values()] == [True, True, True]
    assert good["note"] == f"complete: {2 + 2 * (5 + 2 + 5)} cells"
    assert good["notes"] == []

    # 64 -> 128 gains 0.01 < 0.02; 0.06 above SP's best; a layer shrinks 3x under µP
    bad = mt.summarize(plan, _cells(plan, {64: 2.91, 128: 2.90}, sp), _coords(1 / 3), "d")
    assert [v["pass"] for v in bad["targets"].values()] == [False, False, False]
    assert bad["targets"]["wider_is_better"]["least"] == pytest.approx(0.01)
    assert bad["coord_check"]["sp_growth"] == 9.0 and bad["coord_check"]["mup_growth"] == 1.0

    # one seed's run missing: its figures are null, the rest stay
    cells = _cells(plan, {64: 2.95, 128: 2.85}, sp)
    del cells[("mup", 128, 2.0, 1)]
    part = mt.summarize(plan, cells, _coords(0.8), "d")
    assert part["mup"]["loss_by_width"]["128"] is None and part["mup"]["gap_to_sp_best"] is None
    assert part["targets"]["gap_to_sp_best"]["pass"] is None
    assert part["note"] == f"incomplete: {2 + 23} of {2 + 24} cells"
    # SP's best at the edge of the grid is said
    edge = mt.summarize(plan, _cells(plan, {64: 2.95, 128: 2.85}, {**sp, 1.0: 2.5}), {}, "d")
    assert edge["notes"] == ["SP's best at 128 lr 1 is at the edge of the grid 1..5"]
    assert edge["coord_check"]["mup_growth"] is None


def test_mup_transfer_reads_its_flags(capsys: pytest.CaptureFixture) -> None:
    assert [mt.tokens_arg(t) for t in ("1M", "250k", "1e6", "30720")] == [
        1_000_000, 250_000, 1_000_000, 30_720]
    for bad in ("lots", "0", "-1k"):
        with pytest.raises(argparse.ArgumentTypeError, match="token count"):
            mt.tokens_arg(bad)
    # a 2-point sweep is refused in one line, before any data is read
    assert mt.main(["--quick", "--lrs", "1e-3", "2e-3", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--lrs" in err
