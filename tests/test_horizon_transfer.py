"""benchmarks/horizon_transfer.py: its --quick run end to end (a real search, `tune-gpt plan`,
six real trainings scored by `tune-gpt eval`), the shape of what it writes, that a second run
trains nothing again, and the summary's rules on hand-made cells (missing cells, targets that
fail, a second corpus)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import horizon_transfer as ht  # noqa: E402

FACTORS = (0.5, 2 ** -0.5, 1.0, 2 ** 0.5, 2.0)
KEYS = {"plan_lr", "sweep", "predicted", "interval", "measured_plan", "winner_unchanged",
        "tokens", "best_sweep_lr", "targets"}
TARGETS = ("plan_lr_best_or_next", "plan_beats_winner", "prediction_within")


def _quick(out: Path, data: Path, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "horizon_transfer.py"),
                           "--quick", "--data", str(data), "--out", str(out), "--json",
                           str(cwd / "summary.json")], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _agree(c: dict[str, Any]) -> None:
    """Each target's pass is what its numbers say."""
    t = c["targets"]
    losses = list(c["sweep"].values())           # in the order of the learning rates
    best = min(range(5), key=losses.__getitem__)
    assert t["plan_lr_best_or_next"]["pass"] is (abs(best - 2) <= 1)
    assert c["best_sweep_lr"] == pytest.approx(c["plan_lr"] * FACTORS[best])
    assert t["plan_beats_winner"]["pass"] is (c["measured_plan"] <= c["winner_unchanged"])
    assert t["plan_beats_winner"]["value"] == pytest.approx(c["measured_plan"]
                                                           - c["winner_unchanged"])
    err = abs(c["predicted"] - c["measured_plan"])
    assert t["prediction_within"]["pass"] is (err <= ht.TOLERANCE)
    lo, hi = c["interval"]
    assert t["prediction_within"]["inside_interval"] is (lo <= c["measured_plan"] <= hi)


@pytest.mark.e2e
def test_quick_runs_every_step_and_a_second_run_trains_nothing(
        tmp_path: Path, shakespeare_path: Path) -> None:
    from tune_gpt.checkpoint import read_checkpoint

    out = tmp_path / "out"
    _quick(out, shakespeare_path, tmp_path)
    s = _read(tmp_path / "summary.json")
    assert s == _read(out / "summary.json")
    assert (tmp_path / "summary.md").read_text().startswith("# ")
    name = ht.corpus_name(str(shakespeare_path))
    (got, c), = s["corpora"].items()
    assert got == name and KEYS <= set(c) and c["note"] == "complete: 8 cells"
    cells, work = out / "cells" / name, out / "work" / name
    plan, search = _read(cells / "plan.json"), _read(cells / "search.json")

    # the plan: `tune-gpt plan` at factor 2 x the winner's trial tokens
    assert c["plan_lr"] == plan["plan_lr"] == plan["config"]["learning_rate"]
    assert c["tokens"] == 2 * search["winner_tokens"] == plan["requested"]
    assert (c["predicted"], c["interval"]) == (plan["predicted"], plan["interval"])
    assert c["interval"][0] < c["predicted"] < c["interval"][1]

    # the sweep: five points, plan_lr x the five factors, plan_lr's own key among them
    lrs = [c["plan_lr"] * f for f in FACTORS]
    assert list(c["sweep"]) == [ht.lr_key(x) for x in lrs]
    assert c["sweep"][ht.lr_key(c["plan_lr"])] == c["measured_plan"]
    fixed = ("learning_rate", "min_lr", "seed", "eval_interval", "eval_iters", "log_interval")
    as_planned = {k: v for k, v in plan["config"].items()
                  if k not in (*fixed, "dataset", "out_dir")}
    for k, lr in zip(sorted(ht.STEPS), lrs):
        run = _read(cells / f"{ht.arm(k)}.json")
        trained = read_checkpoint(work / ht.arm(k) / "ckpt.pt")["config"]
        assert trained["learning_rate"] == pytest.approx(lr) == run["learning_rate"]
        assert trained["min_lr"] / lr == pytest.approx(plan["config"]["min_lr"]
                                                       / c["plan_lr"])
        assert {k: run["config"][k] for k in as_planned} == as_planned
        assert c["sweep"][ht.lr_key(lr)] == run["val_loss"]

    # the winner unchanged: its own lr and min_lr, its schedule stretched twice as long
    w = search["winner_config"]
    trained = read_checkpoint(work / "winner" / "ckpt.pt")["config"]
    assert trained["learning_rate"] == w["learning_rate"] == c["winner_lr"]
    assert trained["min_lr"] == w["min_lr"]
    assert (trained["max_iters"], trained["lr_decay_iters"]) == (2 * w["max_iters"],
                                                                 2 * w["lr_decay_iters"])
    assert _read(cells / "winner.json")["val_loss"] == c["winner_unchanged"]
    _agree(c)

    # again: every cell saved, nothing searched, planned or trained again
    files = [*cells.glob("*.json"), *work.glob("*/ckpt.pt"), *work.glob("*/last.pt")]
    assert len(files) == 9 + 6 + 6
    before = {f: f.stat().st_mtime_ns for f in files}
    again = _quick(out, shakespeare_path, tmp_path)
    assert again.stdout.count("saved, skipped") == 8, again.stdout
    assert "iterations" not in again.stdout and "search: horizon" not in again.stdout
    assert {f: f.stat().st_mtime_ns for f in files} == before
    assert _read(tmp_path / "summary.json") == s


# ----------------------------------------------------------------------------- hand-made cells

def _cells(out: Path, corpus: str, losses: dict[str, float] | None = None, *,
           plan: bool = True, predicted: float = 1.60) -> None:
    d = out / "cells" / corpus
    d.mkdir(parents=True)
    w = {"batch_size": 12, "block_size": 64, "max_iters": 1000, "lr_decay_iters": 1000,
         "learning_rate": 2e-3, "min_lr": 2e-4}
    (d / "setup.json").write_text(json.dumps({"data": f"/d/{corpus}.txt", "factor": 8,
                                              "quick": False, "seed": 0}))
    (d / "search.json").write_text(json.dumps({
        "name": "horizon-search", "storage": "/x", "winner_trial": "a", "winner_config": w,
        "winner_tokens": 768_000}))
    if plan:
        (d / "plan.json").write_text(json.dumps({
            "plan_lr": 1e-3, "predicted": predicted, "interval": [1.55, 1.65],
            "requested": 6_144_000, "tokens": 6_144_000, "trial_id": "a",
            "config": {**w, "learning_rate": 1e-3, "min_lr": 1e-4}}))
    for name, loss in (losses or {}).items():
        (d / f"{name}.json").write_text(json.dumps({
            "learning_rate": 0.0, "val_loss": loss, "config": {}, "wall_s": 1.0}))


def test_missing_cells_give_nulls_and_say_how_many(tmp_path: Path) -> None:
    _cells(tmp_path, "a", plan=False)
    _cells(tmp_path, "b", {"lr_x1": 1.62, "winner": 1.64})
    s = ht.summarize(tmp_path)
    a, b = s["corpora"]["a"], s["corpora"]["b"]
    assert a["note"] == "incomplete: 1 of 8 cells" and a["plan_lr"] is None
    assert a["sweep"] == {} and a["measured_plan"] is None and a["tokens"] == 8_000 * 768
    assert all(a["targets"][t]["pass"] is None for t in TARGETS)
    assert b["note"] == "incomplete: 4 of 8 cells"
    assert list(b["sweep"].values()) == [None, None, 1.62, None, None]
    assert b["targets"]["plan_lr_best_or_next"]["pass"] is None and b["best_sweep_lr"] is None
    assert b["targets"]["plan_beats_winner"]["pass"] is True          # 1.62 <= 1.64
    assert b["targets"]["prediction_within"]["pass"] is True          # |1.60 - 1.62|
    json.dumps(s, allow_nan=False)
    assert "incomplete: 1 of 8 cells" in ht.markdown(s)


def test_targets_can_fail_and_a_diverged_run_is_the_worst(tmp_path: Path) -> None:
    arms = [ht.arm(k) for k in sorted(ht.STEPS)]          # x0.5 .. x2
    _cells(tmp_path, "edge", dict(zip(arms, [1.70, 1.66, 1.64, 1.62, 1.60])) | {"winner": 1.63},
           predicted=1.55)
    _cells(tmp_path, "nan", dict(zip(arms, [1.70, 1.61, 1.60, 1.62, float("nan")]))
           | {"winner": 1.70}, predicted=1.61)
    s = ht.summarize(tmp_path)
    edge, nan = s["corpora"]["edge"], s["corpora"]["nan"]
    assert edge["best_sweep_lr"] == pytest.approx(2e-3)            # the edge: two steps off
    assert [edge["targets"][t]["pass"] for t in TARGETS] == [False, False, False]
    assert edge["targets"]["plan_beats_winner"]["in_seed_noise_sd"] == pytest.approx(
        0.01 / 0.0129)
    _agree(edge)
    assert nan["diverged"] == ["lr_x2"] and nan["sweep"][ht.lr_key(2e-3)] is None
    assert [nan["targets"][t]["pass"] for t in TARGETS] == [True, True, True]
    assert nan["best_sweep_lr"] == pytest.approx(1e-3)


def test_corpus_names_and_one_key_format() -> None:
    assert ht.corpus_name("/data/shakespeare_char/input.txt") == "shakespeare_char"
    assert ht.corpus_name("/data/licenses.txt") == "licenses"
    assert ht.lr_key(ht.sweep_lr(1.234567891e-3, 0)) == ht.lr_key(1.234567891e-3)
    assert [ht.sweep_lr(1.0, k) for k in sorted(ht.STEPS)] == pytest.approx(list(FACTORS))
    assert len({ht.lr_key(ht.sweep_lr(3e-3, k)) for k in ht.STEPS}) == 5
    assert math.isclose(ht.sweep_lr(7e-4, 0), 7e-4, rel_tol=0, abs_tol=0)
