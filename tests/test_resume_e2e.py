"""Nothing lost: SIGKILL the `tune-gpt search` driver mid-search, resume it, and count.

Real processes, real stack. The driver runs in its own process group so that the test can
stop everything it started (the driver and the local Ray it launched) by group id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune_gpt import outcomes

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_sigkill_driver_then_resume(tmp_path: Path, shakespeare_path: Path) -> None:
    import optuna
    import pandas as pd
    from mlflow.tracking import MlflowClient

    space = tmp_path / "resume.yaml"
    space.write_text((ROOT / "search_spaces" / "smoke.yaml").read_text()
                     .replace("name: smoke", "name: resumable")
                     .replace("num_samples: 6", "num_samples: 5")
                     .replace("tokens_per_trial: 60k", "tokens_per_trial: 150k"))
    cmd = [sys.executable, "-m", "tune_gpt.cli", "search", str(space), "--data",
           str(shakespeare_path), "--name", "r", "--storage-path", str(tmp_path / "runs"),
           "--no-report"]
    log = tmp_path / "first.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
                             env=env, start_new_session=True)
    try:
        deadline = time.time() + 240
        while "trial 2/5" not in log.read_text():  # two trials done, others mid-way
            assert first.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.5)
        os.kill(first.pid, signal.SIGKILL)  # the driver only, like a crash
        first.wait()
    finally:
        _stop_group(first)  # then whatever Ray processes it left behind

    folder = tmp_path / "runs" / "r"
    state = json.loads((folder / "state.json").read_text())
    assert state["finished"] is False
    import re

    started = {p.parent.name[len("trial_"):]
               for p in (folder / "tune").glob("trial_*/progress.csv")}
    finished = set(re.findall(r"trial \d/5 (\w+) ", log.read_text()))
    interrupted = started - finished
    assert finished and interrupted, (started, finished)
    iters_at_crash = {t: int(pd.read_csv(folder / "tune" / f"trial_{t}" / "progress.csv")
                             ["iter"].max()) for t in started}

    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=400, start_new_session=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads((folder / "state.json").read_text())["finished"] is True

    trials = pd.read_csv(folder / "results" / "trials.csv")
    assert len(trials) == 5 and set(trials.outcome) <= {outcomes.COMPLETED,
                                                         outcomes.STOPPED_EARLY}
    # Finished trials were not run again, interrupted ones went on from their checkpoint:
    # no trial's progress ever goes back to an earlier iteration.
    for t in started:
        rows = pd.read_csv(folder / "tune" / f"trial_{t}" / "progress.csv")
        assert rows["iter"].is_monotonic_increasing, (t, list(rows["iter"]))
        if t in finished:
            assert int(rows["iter"].max()) == iters_at_crash[t]
    resumed = trials.set_index("trial_id").loc[sorted(interrupted)]
    assert (resumed["iters"] >= pd.Series(iters_at_crash)[sorted(interrupted)]).all()

    study = optuna.load_study(study_name="r", storage=f"sqlite:///{folder / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert sum(s == optuna.trial.TrialState.COMPLETE for s in states) >= 5

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tune-gpt-resumable")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 5, [c.info.run_name for c in children]  # no duplicates
    assert all(c.info.status != "RUNNING" for c in children)
    assert {c.data.tags["ray.trial_id"] for c in children} == set(trials.trial_id)


def test_ctrl_c_keeps_the_search_resumable(tmp_path: Path, shakespeare_path: Path) -> None:
    """SIGINT (Ctrl-C): exit 130 with a resume hint, nothing marked finished, no MLflow run
    left RUNNING; `tune-gpt resume NAME` then completes it."""
    from mlflow.tracking import MlflowClient

    space = tmp_path / "ctrlc.yaml"
    space.write_text((ROOT / "search_spaces" / "smoke.yaml").read_text()
                     .replace("name: smoke", "name: ctrlc")
                     .replace("num_samples: 6", "num_samples: 3")
                     .replace("tokens_per_trial: 60k", "tokens_per_trial: 150k"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "tune_gpt.cli"]
    store = ["--storage-path", str(tmp_path / "runs")]
    log = tmp_path / "first.log"
    first = subprocess.Popen(base + ["search", str(space), "--data", str(shakespeare_path),
                                     "--name", "c", "--no-report", *store],
                             stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
                             env=env, start_new_session=True)
    try:
        deadline = time.time() + 240
        while "best val_loss" not in log.read_text():  # a trial is under way
            assert first.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.5)
        os.kill(first.pid, signal.SIGINT)
        assert first.wait(timeout=120) == 130, log.read_text()
    finally:
        _stop_group(first)
    assert "tune-gpt resume c" in log.read_text()
    folder = tmp_path / "runs" / "c"
    assert json.loads((folder / "state.json").read_text())["finished"] is False
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tune-gpt-ctrlc")
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp.experiment_id]))

    second = subprocess.run(base + ["resume", "c", *store], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=400, start_new_session=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads((folder / "state.json").read_text())["finished"] is True
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 and all(r.info.status == "FINISHED" for r in runs)
