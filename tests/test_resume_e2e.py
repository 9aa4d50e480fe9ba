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
from servers import kill_group

from tune_gpt import trial as outcomes

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_sigkill_driver_then_resume(tmp_path: Path, shakespeare_path: Path) -> None:
    import optuna
    import pandas as pd
    from mlflow.tracking import MlflowClient

    space = tmp_path / "resume.yaml"
    long_name = "resumable-" + "x" * 90  # 100 characters: the longest a space name may be
    space.write_text((ROOT / "search_spaces" / "smoke.yaml").read_text()
                     .replace("name: smoke", f"name: {long_name}")
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
        tune_dir = tmp_path / "runs" / "r" / "tune"
        # two trials done and a third one under way (it has reported at least once)
        while "trial 2/5" not in log.read_text() or \
                len(list(tune_dir.glob("trial_*/progress.csv"))) < 3:
            assert first.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)  # the driver only, like a crash
        first.wait()
    finally:
        kill_group(first)  # then whatever Ray processes it left behind

    folder = tmp_path / "runs" / "r"
    state = json.loads((folder / "state.json").read_text())
    assert state["finished"] is False
    import re

    started = {p.parent.name[len("trial_"):]
               for p in (folder / "tune").glob("trial_*/progress.csv")}
    finished = set(re.findall(r"trial \d/5 (\w+) ", log.read_text()))
    interrupted = started - finished
    assert finished and interrupted, (started, finished)
    # where each trial was at the crash, as the driver logged it to MLflow
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    before = client.search_runs([client.get_experiment_by_name(f"tune-gpt-{long_name}")
                                 .experiment_id], "tags.`tune_gpt.role` = 'trial'")
    # (a run the driver opened but had not yet logged a metric to when it was killed: 0)
    iters_at_crash = {r.data.tags["ray.trial_id"]: max(
        (m.step for m in client.get_metric_history(r.info.run_id, "val_loss")), default=0)
        for r in before}
    assert started <= set(iters_at_crash)

    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=400, start_new_session=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads((folder / "state.json").read_text())["finished"] is True

    trials = pd.read_csv(folder / "results" / "trials.csv")
    assert len(trials) == 5 and set(trials.outcome) <= {outcomes.COMPLETED,
                                                         outcomes.STOPPED_EARLY}
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{folder / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    # every trial closed: finished ones COMPLETE, ASHA's stopped ones PRUNED
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert sum(s in done for s in states) >= 5

    exp = client.get_experiment_by_name(f"tune-gpt-{long_name}")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 5, [c.info.run_name for c in children]  # no duplicates
    assert all(c.info.status != "RUNNING" for c in children)
    assert {c.data.tags["ray.trial_id"] for c in children} == set(trials.trial_id)

    # Finished trials were not trained again, interrupted ones went on from their checkpoint:
    # in each trial's metric series (in the order it was logged) the iteration never goes
    # back, and a trial that had finished ends where it ended before the crash.
    by_trial = {c.data.tags["ray.trial_id"]: c for c in children}
    for t in started:
        history = sorted(client.get_metric_history(by_trial[t].info.run_id, "val_loss"),
                         key=lambda m: m.timestamp)
        steps = [m.step for m in history]
        assert steps == sorted(steps), (t, steps)
        assert steps[-1] >= iters_at_crash[t]
        if t in finished:
            assert steps[-1] == iters_at_crash[t], (t, steps)
    # ... and the curves table has every evaluation, those before the crash included (Ray
    # restarts a restored trial's progress.csv; the trial's own evaluation log keeps them)
    curves = pd.read_csv(folder / "results" / "curves.csv")
    for t in started:
        logged = sorted({m.step for m in client.get_metric_history(by_trial[t].info.run_id,
                                                                    "val_loss")})
        got = curves[curves["trial_id"].astype(str) == t]["iter"].tolist()
        assert got == sorted(set(got)) and set(logged) <= set(got), (t, logged, got)
        assert all(b - a <= got[0] for a, b in zip(got, got[1:])), (t, got)  # no gap
    resumed = trials.set_index("trial_id").loc[sorted(interrupted)]
    assert (resumed["iters"] >= pd.Series(iters_at_crash)[sorted(interrupted)]).all()
    assert not (folder / "checkpoints").exists()  # removed once the search finished


def test_ctrl_c_keeps_the_search_resumable(tmp_path: Path, shakespeare_path: Path) -> None:
    """SIGINT (Ctrl-C): exit 130 with a resume hint, nothing marked finished, no MLflow run
    left RUNNING; `tune-gpt resume NAME` then completes it and writes its report. The space's
    name is 100 characters long, so the search's own name (with its timestamp) is 116: both
    must work as folder, Optuna study and MLflow names."""
    import re

    from mlflow.tracking import MlflowClient

    space = tmp_path / "ctrlc.yaml"
    long_name = "ctrlc-" + "y" * 94
    space.write_text((ROOT / "search_spaces" / "smoke.yaml").read_text()
                     .replace("name: smoke", f"name: {long_name}")
                     .replace("num_samples: 6", "num_samples: 3")
                     .replace("tokens_per_trial: 60k", "tokens_per_trial: 150k"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "tune_gpt.cli"]
    store = ["--storage-path", str(tmp_path / "runs")]
    log = tmp_path / "first.log"
    first = subprocess.Popen(base + ["search", str(space), "--data", str(shakespeare_path),
                                     *store],
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
        kill_group(first)
    # the trial under way is counted (Ray's own count, trials not TERMINATED, said 0)
    assert int(re.search(r"interrupted with (\d+) trial", log.read_text())[1]) >= 1
    name = re.search(r"tune-gpt resume ([^\s`]+)", log.read_text())[1]
    assert name.startswith(long_name + "-") and len(name) == 116
    folder = tmp_path / "runs" / name
    assert json.loads((folder / "state.json").read_text())["finished"] is False
    explored_before = json.loads((folder / "state.json").read_text())["explored_s"]
    assert explored_before > 0
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"tune-gpt-{long_name}")
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp.experiment_id]))

    second = subprocess.run(base + ["resume", name, *store], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=400, start_new_session=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads((folder / "state.json").read_text())["finished"] is True
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert (tmp_path / "reports" / name / "report.md").is_file()
    # the time it took counts both sessions, not only the resumed one
    meta = json.loads((folder / "results" / "meta.json").read_text())
    assert meta["wall_s"] == pytest.approx(
        json.loads((folder / "state.json").read_text())["explored_s"])
    assert meta["wall_s"] > explored_before
