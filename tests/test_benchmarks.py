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
    return json.loads(out.read_text())


def test_train_throughput_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("train_throughput", tmp_path, "--threads", "1", "--data", str(shakespeare_path))
    assert result


def test_search_overhead_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("search_overhead", tmp_path, "--data", str(shakespeare_path))
    row = result["rows"][0]
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
