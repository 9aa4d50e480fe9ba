"""A search whose every trial ends without a usable loss still records every outcome and
says so, and exits 1 (not 0), so a script running it can tell (real Ray, Optuna, MLflow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_a_search_with_no_usable_trial_exits_1_and_records_them(
        tmp_path: Path, shakespeare_path: Path) -> None:
    space = tmp_path / "boom.yaml"  # learning rates that blow every trial up at once
    space.write_text((ROOT / "search_spaces" / "smoke.yaml").read_text()
                     .replace("learning_rate: {loguniform: [1.0e-4, 1.0e-2]}",
                              "learning_rate: {loguniform: [5.0, 9.0]}")
                     .replace("num_samples: 6", "num_samples: 2"))
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "tune_gpt.cli", "search", str(space),
                           "--data", str(shakespeare_path), "--storage-path", str(runs),
                           "--name", "boom", "--no-report"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no trial produced a usable result" in done.stdout
    trials = pd.read_csv(runs / "boom" / "results" / "trials.csv")
    assert list(trials["outcome"]) == ["diverged", "diverged"]
    assert json.loads((runs / "boom" / "state.json").read_text())["finished"] is True
    # resuming a finished search trains nothing and rewrites nothing: refused in one line
    before = {p: p.stat().st_mtime_ns for p in (runs / "boom").rglob("*") if p.is_file()}
    again = subprocess.run([sys.executable, "-m", "tune_gpt.cli", "resume", "boom",
                            "--storage-path", str(runs)], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
    assert again.returncode == 2 and "is already finished: nothing to resume" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert {p: p.stat().st_mtime_ns for p in (runs / "boom").rglob("*") if p.is_file()} \
        == before
