"""benchmarks/mup_transfer.py: its --quick run measures what its JSON says (checked against
the cells it saved): the base point is the minimum of the base width's (lr, multipliers)
grid, the wider widths ran at exactly that point (and at the best (1, 1, 1) point); it
resumes without rerunning a saved cell, says when it is incomplete; and its targets are
decided so that they can fail."""

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
LRS, MULTS = mt.QUICK["lrs"], mt.QUICK["mults"]
# coordinate checks, the base grid, SP's sweep; then 2 wider widths at the base point and, when
# it is another, at the best (1, 1, 1) point
FIXED = 2 + len(LRS) * len(MULTS) + len(LRS)
MOST = FIXED + 2 * 2
M4, M8 = (4.0, 2.0, 2.0), (8.0, 2.83, 2.83)


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
    # A session cut short: 3 cells (the two coordinate checks, one run), null figures. Its
    # --mults gets (1, 1, 1) added: the same grid as --quick's.
    part, _ = _quick(out, "--data", data, "--max-cells", "3", "--mults", "8,2.83,2.83")
    assert part["mults"] == [list(m) for m in MULTS]
    assert part["note"] == f"incomplete: 3 of {MOST} cells" and part["complete"] is False
    m = part["mup"]
    assert m["base_lr"] is None and m["base_mults"] is None and m["gap_to_sp_best"] is None
    assert set(m["loss_by_width"].values()) == set(m["loss_by_width_default_mults"].values()) \
        == {None}
    assert part["targets"]["wider_is_better"]["pass"] is None
    assert part["targets"]["gap_to_sp_best"]["pass"] is None
    before = _mtimes(out)
    assert len(before) == 3

    s, stdout = _quick(out, "--data", data)
    after = _mtimes(out)
    assert {k: after[k] for k in before} == before      # the saved cells were not rerun
    assert s["widths"] == WIDTHS and s["seeds"] == 1 and s["data"] == data
    assert s["tokens"] == mt.QUICK["tokens"]

    # Every figure from the cells it saved (one seed: a point is that run's loss), each run
    # at the multipliers its file name says
    files = {f.name: json.loads(f.read_text()) for f in (out / "cells_v2").glob("*.json")}
    runs = []
    for name, c in files.items():
        if "val_loss" not in c:
            continue
        cfg = c["config"]
        mults = tuple(cfg[f"mup_{n}_mult"] for n in mt.MULT_NAMES)
        assert cfg["parametrization"] == c["param"] and cfg["mup_input_mult"] == 1
        assert cfg["mup_base_width"] == 32 and cfg["n_layer"] == 2
        assert cfg["n_embd"] == c["width"] and c["tokens"] >= mt.QUICK["tokens"]
        assert cfg["learning_rate"] == c["lr"]
        if c["param"] == "mup":
            assert f"-lr{c['lr']:.3e}-{mt.tag(mults)}-s0.json" in name
        else:
            assert mults == mt.ONE and "-o" not in name
        runs.append({**c, "mults": mults})

    def loss(param: str, width: int) -> dict[tuple, float]:
        return {(c["lr"], c["mults"]): c["val_loss"] for c in runs
                if (c["param"], c["width"]) == (param, width)}

    grid, sp_top = loss("mup", 32), loss("sp", 128)
    assert sorted(grid) == sorted((lr, mm) for lr in LRS for mm in MULTS)
    assert sorted(sp_top) == [(lr, mt.ONE) for lr in LRS]
    assert all(math.isfinite(v) for v in [*grid.values(), *sp_top.values()])
    p0 = min(grid, key=grid.get)                                    # the base point
    pd = min((p for p in grid if p[1] == mt.ONE), key=grid.get)     # the default mults'
    total = FIXED + 2 * len({p0, pd})
    assert f"cells: 3 skipped (saved before), {total - 3} run" in stdout
    assert s["note"] == f"complete: {total} cells" and s["complete"] is True
    assert len(runs) == total - 2
    m = s["mup"]
    assert (m["base_lr"], m["base_mults"]) == (p0[0], dict(zip(mt.MULT_NAMES, p0[1])))
    assert m["base_grid"] == {mt.tag(mm): {f"{lr:.6g}": grid[(lr, mm)] for lr in LRS}
                              for mm in MULTS}
    assert m["base_sweep"] == m["base_grid"][mt.tag(p0[1])]
    # the wider widths ran at exactly the base point, and at the default mults' point
    by, by_d = m["loss_by_width"], m["loss_by_width_default_mults"]
    for w in (64, 128):
        assert loss("mup", w) == {p0: by[str(w)], pd: by_d[str(w)]}
    assert (by["32"], by_d["32"], m["base_lr_default_mults"]) == (grid[p0], grid[pd], pd[0])
    sp = s["sp"]
    sp_best = min(sp_top, key=sp_top.get)
    assert sp["best_lr_by_width"] == {"32": pd[0], "128": sp_best[0]}
    assert sp["best_loss_by_width"] == {"32": grid[pd], "128": sp_top[sp_best]}
    gap = by["128"] - sp_top[sp_best]
    assert m["gap_to_sp_best"] == pytest.approx(gap)

    # The coordinate check: flat under µP, growing under SP (measured 1.0x against 10x).
    c = s["coord_check"]
    assert c["sp_growth"] > 3 * c["mup_growth"]
    assert 0.5 < c["mup_growth"] < 2
    assert (out / "coord_check.png").stat().st_size > 10_000
    assert (out / "lr_sweeps.png").stat().st_size > 10_000

    # Targets decided from the figures above, so each can fail.
    t = s["targets"]
    steps = [by[str(a)] - by[str(b)] for a, b in zip(WIDTHS, WIDTHS[1:])]
    assert t["wider_is_better"]["pass"] is (min(steps) >= mt.TARGET_STEP)
    assert t["gap_to_sp_best"]["pass"] is (gap <= mt.TARGET_GAP)
    assert t["coord_check_mup_growth"]["measured"] == c["mup_growth"]

    # Run again: nothing is rerun, nothing rewritten.
    _, stdout = _quick(out, "--data", data)
    assert f"cells: {total} skipped (saved before), 0 run" in stdout
    assert _mtimes(out) == after

    # A sweep widened by one lr: only its new cells run (one per multiplier point at the base
    # width, one SP). The wider runs at the base point, unknown until the base grid is whole
    # again, are read from disk, not trained a second time.
    wide = [LRS[0] / 2, *LRS]
    s2, stdout = _quick(out, "--data", data, "--lrs", *map(str, wide))
    again = _mtimes(out)
    assert {k: again[k] for k in after} == after and s2["complete"] is True
    keys = ("base_lr", "base_mults", "base_lr_default_mults")
    if all(s2["mup"][k] == m[k] for k in keys):  # the points held (a lower lr is worse here)
        assert len(again) == len(after) + len(MULTS) + 1
        assert s2["mup"]["loss_by_width"] == by


ROWS = {mt.ONE: (3.0, 2.0), M4: (2.95, 3.0), M8: (3.1, 3.0)}   # (loss at its best lr, that lr)


def _cells(plan: mt.Plan, mup: dict[int, float], default: dict[int, float],
           sp: dict[float, float | None], rows: dict = ROWS) -> dict:
    """Hand-made cells: the base grid (row m: its loss + |lr - its lr| / 10), µP at the grid's
    best point (`mup`) and at the best (1, 1, 1) point (`default`), SP's sweep."""
    def cell(v: float | None) -> dict:
        return {"val_loss": v, "vocab_size": 65}

    cells = {("mup", 32, lr, m, s): cell(v + abs(lr - at) / 10) for m, (v, at) in rows.items()
             for lr in plan.lrs for s in plan.seeds}
    m0 = min(rows, key=lambda m: rows[m][0])
    for point, losses in (((rows[mt.ONE][1], mt.ONE), default), ((rows[m0][1], m0), mup)):
        cells |= {("mup", w, *point, s): cell(v) for w, v in losses.items() for s in plan.seeds}
    return cells | {("sp", 128, lr, mt.ONE, s): cell(v) for lr, v in sp.items()
                    for s in plan.seeds}


def _coords(mup_ratio: float) -> dict:
    sizes = {"sp": {"32": {"embed": 1.0, "block0": 1.0}, "128": {"embed": 1.0, "block0": 9.0}},
             "mup": {"32": {"embed": 1.0, "block0": 1.0},
                     "128": {"embed": 1.0, "block0": mup_ratio}}}
    return {p: {"widths": [32, 128], "sizes": v} for p, v in sizes.items()}


def test_mup_transfer_targets_pass_and_fail_as_the_figures_say() -> None:
    plan = mt.Plan(widths=[32, 64, 128], n_layer=2, tokens=1000, lrs=[1.0, 2.0, 3.0, 4.0, 5.0],
                   seeds=[0, 1], mults=[mt.ONE, M4, M8])
    sp = {1.0: 2.86, 2.0: 2.84, 3.0: 2.9, 4.0: 3.0, 5.0: None}   # None: diverged, ln(65)
    flat = {64: 2.99, 128: 2.99}                                  # µP at mults 1: no gain
    good = mt.summarize(plan, _cells(plan, {64: 2.92, 128: 2.85}, flat, sp), _coords(0.8), "d")
    m = good["mup"]
    # the base point: the grid's minimum (lr 3 at (4, 2, 2)); mults 1's best is lr 2
    assert m["base_lr"] == 3.0 and m["base_mults"] == {"output": 4.0, "init": 2.0, "attn": 2.0}
    assert list(m["base_grid"]) == ["o1-i1-a1", "o4-i2-a2", "o8-i2.83-a2.83"]
    assert m["base_grid"]["o4-i2-a2"]["3"] == 2.95 and m["base_sweep"] == m["base_grid"]["o4-i2-a2"]
    assert m["loss_by_width"] == {"32": 2.95, "64": 2.92, "128": 2.85}
    assert m["base_lr_default_mults"] == 2.0
    assert m["loss_by_width_default_mults"] == {"32": 3.0, "64": 2.99, "128": 2.99}
    assert good["sp"]["best_lr_by_width"] == {"32": 2.0, "128": 2.0}   # 32: µP at mults 1
    assert m["gap_to_sp_best"] == pytest.approx(0.01)
    assert good["sp"]["sweeps"]["128"]["5"] == pytest.approx(math.log(65))
    assert [v["pass"] for v in good["targets"].values()] == [True, True, True]
    assert good["note"] == f"complete: {2 + 2 * (3 * 5 + 2 * 2 + 5)} cells"
    assert good["notes"] == []

    # 64 -> 128 gains 0.01 < 0.02; 0.09 above SP's best; a layer shrinks 3x under µP
    bad = mt.summarize(plan, _cells(plan, {64: 2.94, 128: 2.93}, flat, sp), _coords(1 / 3), "d")
    assert [v["pass"] for v in bad["targets"].values()] == [False, False, False]
    assert bad["targets"]["wider_is_better"]["least"] == pytest.approx(0.01)
    assert bad["coord_check"]["sp_growth"] == 9.0 and bad["coord_check"]["mup_growth"] == 1.0

    # one seed's run missing: its figures are null, the rest stay
    cells = _cells(plan, {64: 2.92, 128: 2.85}, flat, sp)
    del cells[("mup", 128, 3.0, M4, 1)]
    part = mt.summarize(plan, cells, _coords(0.8), "d")
    assert part["mup"]["loss_by_width"]["128"] is None and part["mup"]["gap_to_sp_best"] is None
    assert part["targets"]["gap_to_sp_best"]["pass"] is None
    assert part["note"] == f"incomplete: {2 + 47} of {2 + 48} cells"
    # a grid point missing: no base point, yet mults 1's figures stand on their own row
    cells = _cells(plan, {64: 2.92, 128: 2.85}, flat, sp)
    del cells[("mup", 32, 5.0, M8, 0)]
    part = mt.summarize(plan, cells, _coords(0.8), "d")
    assert part["mup"]["base_lr"] is None and part["mup"]["base_mults"] is None
    assert set(part["mup"]["loss_by_width"].values()) == {None}
    assert part["mup"]["loss_by_width_default_mults"]["128"] == 2.99

    # the base point at mults 1: the transfer is run (and counted) once
    same = {mt.ONE: (3.0, 2.0), M4: (3.05, 3.0), M8: (3.1, 3.0)}
    one = mt.summarize(plan, _cells(plan, flat, flat, sp, same), _coords(0.8), "d")
    assert one["mup"]["loss_by_width"] == one["mup"]["loss_by_width_default_mults"]
    assert one["note"] == f"complete: {2 + 2 * (3 * 5 + 2 + 5)} cells"
    # SP's best, µP's base mults at the edge of their grids are said
    edge = {mt.ONE: (3.0, 2.0), M4: (2.95, 3.0), M8: (2.9, 3.0)}
    edges = mt.summarize(plan, _cells(plan, {64: 2.95, 128: 2.85}, flat, {**sp, 1.0: 2.5}, edge),
                         {}, "d")
    assert edges["notes"] == ["SP's best at 128 lr 1 is at the edge of the grid 1..5",
                              "µP's base mults o8-i2.83-a2.83 are at the edge of the grid "
                              "o1-i1-a1..o8-i2.83-a2.83"]
    assert edges["coord_check"]["mup_growth"] is None


def test_mup_transfer_names_and_orders_its_cells() -> None:
    plan = mt.Plan(widths=[32, 64, 128], n_layer=2, tokens=1000, lrs=[1.0, 2.0, 3.0, 4.0, 5.0],
                   seeds=[0], mults=[mt.ONE, M8])
    out = Path("out")
    assert plan.cell_path(out, ("mup", 64, 3.0, M8, 0)).name == \
        "mup-w64-b32-L2-t1000-lr3.000e+00-o8-i2.83-a2.83-s0.json"
    assert plan.cell_path(out, ("sp", 128, 3.0, mt.ONE, 0)).name == \
        "sp-w128-b32-L2-t1000-lr3.000e+00-s0.json"      # SP has no multipliers
    grid = plan.keys()
    assert [k[:2] for k in grid] == [("mup", 32)] * 10 + [("sp", 128)] * 5
    both = plan.keys((3.0, M8), (2.0, mt.ONE))
    assert both[10:14] == [("mup", 64, 3.0, M8, 0), ("mup", 128, 3.0, M8, 0),
                           ("mup", 64, 2.0, mt.ONE, 0), ("mup", 128, 2.0, mt.ONE, 0)]
    assert len(plan.keys((2.0, mt.ONE), (2.0, mt.ONE))) == len(grid) + 2


def test_mup_transfer_reads_its_flags(capsys: pytest.CaptureFixture) -> None:
    assert [mt.tokens_arg(t) for t in ("1M", "250k", "1e6", "30720")] == [
        1_000_000, 250_000, 1_000_000, 30_720]
    for bad in ("lots", "0", "-1k"):
        with pytest.raises(argparse.ArgumentTypeError, match="token count"):
            mt.tokens_arg(bad)
    assert mt.mults_arg("8,2.83,2.83") == (8.0, 2.83, 2.83)
    for bad in ("1,2", "a,b,c", "0,1,1", "1,1,1,1", "inf,1,1"):
        with pytest.raises(argparse.ArgumentTypeError, match="multipliers"):
            mt.mults_arg(bad)
    # a 2-point sweep is refused in one line, before any data is read
    assert mt.main(["--quick", "--lrs", "1e-3", "2e-3", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--lrs" in err
