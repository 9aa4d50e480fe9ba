"""The benchmark scripts' --quick modes, so they do not rot. They print figures; these tests
check that they run and write their JSON, never how fast anything was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _run(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick",
                           "--json", str(out), *args], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert out.with_suffix(".md").read_text().startswith("# ")  # the markdown summary
    return json.loads(out.read_text())


def test_train_throughput_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("train_throughput", tmp_path, "--threads", "1", "--data", str(shakespeare_path))
    assert result


def test_search_overhead_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("search_overhead", tmp_path, "--data", str(shakespeare_path),
                  "--ab-driver-memory")
    # each arm in its own process: without the driver's memory measures, with the
    # compaction of finished trials, with both (as a search runs)
    assert [r["driver_memory_measures"] for r in result["rows"]] == [
        "none (Ray's and glibc's defaults)", "compaction", "compaction + 2 malloc arenas"]
    row = result["rows"][2]
    assert row["trials"] == 4 and 0 < row["training_share"] <= 1
    assert result["startup"]["help_imports_torch"] is False
    assert result["startup"]["validate_imports_ray"] is False


def test_scaling_quick(tmp_path: Path) -> None:
    result = _run("scaling", tmp_path)
    assert result["rows"][0]["trials"] == 20 and result["rows"][0]["report_s"] > 0


def test_gpu_check_quick_runs_on_cpu(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("gpu_check", tmp_path, "--data", str(shakespeare_path))
    assert result["shakespeare"]["iters"] == 30
    assert len(result["estimator"]) == 2
    assert result["gpt2"]["vocab"] == 50304 and result["gpt2"]["iters"] == 4


def test_search_efficiency_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    out = tmp_path / "eff"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_efficiency.py"),
                           "--quick", "--data", str(shakespeare_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["manual", "asha_tpe", "random",
                                                      "default"]
    manual_tokens = summary["manual_total_tokens"]
    assert manual_tokens == 140_800  # the nine runs of the guide's experiments at 1% length
    for cell in summary["cells"]:
        curve = json.loads((out / "cells" / f"{cell['method']}-s0.json").read_text())["curve"]
        assert curve, cell["method"]
        computes, bests = zip(*curve)
        assert list(computes) == sorted(computes) and list(bests) == sorted(bests, reverse=True)
        if cell["method"] != "manual":
            # budget.total_tokens stopped it: at most one evaluation interval over per slot
            assert 0.8 * manual_tokens <= cell["tokens_spent"] <= manual_tokens + 4 * 4096
    assert (out / "summary.md").read_text().count("\n| ") == 5
    assert (out / "curves.png").stat().st_size > 10_000
    # a second run finds every cell saved and only rebuilds the summary
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_efficiency.py"),
                            "--quick", "--data", str(shakespeare_path), "--out", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipped") == 4


def test_search_efficiency_curves() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import search_efficiency as se

    plan = [{"batch_size": 12, "learning_rate": 1e-3, "n_layer": 2, "n_embd": 64,
             "max_iters": 10}, {"batch_size": 12, "learning_rate": 1e-2, "n_layer": 2,
                                "n_embd": 64, "max_iters": 10}]
    def rows(lr: float, losses: list[float]) -> list[dict]:
        out = [{"tokens": 100 * (i + 1), "val_loss": v, "outcome": "running"}
               for i, v in enumerate(losses)]
        out[0]["_config"] = {**plan[0], "learning_rate": lr}
        return out
    # the second run in the guide's order ran first: the curve follows the plan, not the clock
    trials = {"t2": rows(1e-2, [2.0, 1.5]), "t1": rows(1e-3, [3.0, 2.5])}
    points, spent = se.manual_curve(trials, plan)
    assert points == [[100.0, 3.0], [200.0, 2.5], [300.0, 2.0], [400.0, 1.5]] and spent == 400
    # two trials side by side: each one's tokens by the time of the other's evaluation count
    side = {"a": [{"timestamp": 110, "time_total_s": 10.0, "tokens": 1000, "val_loss": 2.0,
                   "outcome": "running"},
                  {"timestamp": 120, "time_total_s": 20.0, "tokens": 2000, "val_loss": 1.8,
                   "outcome": "completed"}],
            "b": [{"timestamp": 115, "time_total_s": 10.0, "tokens": 500, "val_loss": 2.2,
                   "outcome": "running"}]}
    points, spent = se.search_curve(side)
    assert spent == 2500
    assert points == [[1250.0, 2.0], [2000.0, 2.0], [2500.0, 1.8]]
    assert se.reach(points, 1.9) == 2500 and se.reach(points, 1.0) == float("inf")
    assert se.best_at(points, 2100) == 2.0


def test_mup_transfer_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("mup_transfer", tmp_path, "--data", str(shakespeare_path), "--out",
                  str(tmp_path / "mup"))
    for param in ("sp", "mup"):
        r = result[param]
        assert r["lr_drift"] >= 1 and r["transfer_loss_gap"] >= 0
        assert set(r["best_lr"]) == {"32", "64"}
    # At the base width (the smallest) µP is SP: the same runs, the same losses.
    assert result["sp"]["curves"]["32"] == result["mup"]["curves"]["32"]
    assert (tmp_path / "mup" / "mup_transfer.png").stat().st_size > 10_000
