"""A Ray worker that dies mid-trial (SIGKILL): the trial is retried from its last checkpoint
a bounded number of times, then recorded as failed, and the search completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune_gpt import trial as outcomes

pytestmark = pytest.mark.e2e

SPACE = """
name: killable
params:
  learning_rate: {choice: [1.0e-3, 2.0e-3]}
fixed: {n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, batch_size: 8, warmup_iters: 10,
        max_iters: 3000, eval_interval: 100, eval_iters: 2}
sampler: {type: grid}
scheduler: {type: none}
budget: {max_concurrent_trials: 1}
"""


def _last_result(trial_dir: Path) -> dict:
    """The last complete line of result.json (Ray may be halfway through writing one)."""
    for line in reversed((trial_dir / "result.json").read_text().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return {}


def test_killed_workers_are_retried_from_checkpoint_then_failed(tmp_path: Path,
                                                               shakespeare_path: Path) -> None:
    import pandas as pd

    space = tmp_path / "killable.yaml"
    space.write_text(SPACE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tune_gpt.cli", "search", str(space), "--data",
         str(shakespeare_path), "--name", "k", "--storage-path", str(tmp_path / "runs"),
         "--no-report"], stdout=open(tmp_path / "log", "w"), stderr=subprocess.STDOUT,
        cwd=tmp_path, start_new_session=True)
    tune_dir = tmp_path / "runs" / "k" / "tune"
    killed: dict[str, list[int]] = {}
    try:
        deadline = time.time() + 400
        victim = None  # the first trial: killed once (recovers); the second: killed 3 times
        while proc.poll() is None:
            assert time.time() < deadline, (tmp_path / "log").read_text()[-3000:]
            for d in sorted(tune_dir.glob("trial_*"), key=lambda p: p.stat().st_mtime):
                if not (d / "result.json").exists():
                    continue
                res = _last_result(d)
                pid, it, tid = res.get("pid"), res.get("iter", 0), d.name
                if not pid or res.get("outcome") != "running" or it < 500:
                    continue
                victim = victim or tid
                budget = 1 if tid == victim else 3
                mine = killed.setdefault(tid, [])
                if len(mine) < budget and pid not in mine:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        mine.append(pid)
                    except ProcessLookupError:
                        pass
            time.sleep(0.3)
        assert proc.returncode == 0, (tmp_path / "log").read_text()[-3000:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    trials = pd.read_csv(tmp_path / "runs" / "k" / "results" / "trials.csv")
    assert len(trials) == 2
    by_id = {f"trial_{r.trial_id}": r for r in trials.itertuples()}
    survivor = [t for t, pids in killed.items() if len(pids) == 1]
    doomed = [t for t, pids in killed.items() if len(pids) == 3]
    assert survivor and doomed, killed
    assert by_id[survivor[0]].outcome == outcomes.COMPLETED
    rows = pd.read_csv(tune_dir / survivor[0] / "progress.csv")
    assert rows["iter"].is_monotonic_increasing  # went on from the checkpoint
    assert by_id[doomed[0]].outcome == outcomes.FAILED
