"""Explore, then exploit (`final:`), end to end with the real stack: the search explores for
its share of a token budget, trains the chosen config on the rest, and hands back a model
that `tune-gpt eval` scores. Ctrl-C during the final run, then `tune-gpt resume`: the final
run continues from its checkpoint with the same plan, and nothing it trained is lost."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import kill_group

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_final_phase_hands_back_a_model_and_resumes_after_ctrl_c(
        tmp_path: Path, shakespeare_path: Path) -> None:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "tune_gpt.cli", "search", str(ROOT / "search_spaces" / "smoke.yaml"),
           "--data", str(shakespeare_path), "--name", "fin", "--storage-path", str(runs),
           "--set", "final.explore_share=0.5", "--set", "budget.total_tokens=700k"]
    log = tmp_path / "first.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
                             env=env, start_new_session=True)
    folder = runs / "fin"
    try:
        deadline = time.time() + 300
        # the final run has started and reported at least twice: interrupt it there
        while not any(len(p.read_text().splitlines()) > 2
                      for p in (folder / "final").glob("trial_*/progress.csv")):
            assert first.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGINT)  # Ctrl-C
        assert first.wait(timeout=120) == 130, log.read_text()
    finally:
        kill_group(first)
    text = log.read_text()
    assert "final phase: trial" in text and "interrupted" in text, text
    plan = json.loads((folder / "final_plan.json").read_text())
    assert not json.loads((folder / "state.json").read_text())["finished"]
    assert not (folder / "model" / "ckpt.pt").exists()
    progress = next((folder / "final").glob("trial_*/progress.csv"))
    before = pd.read_csv(progress)["iter"].tolist()
    # exploring spent at most its share of the 700k tokens (plus one evaluation per trial)
    explored = pd.concat([pd.read_csv(p) for p in (folder / "tune").glob("trial_*/progress.csv")])
    assert explored.groupby("trial_id")["tokens"].max().sum() <= 350_000 + 2 * 5_120

    resume_log = tmp_path / "resume.log"
    second = subprocess.Popen([sys.executable, "-m", "tune_gpt.cli", "resume", "fin",
                               "--storage-path", str(runs)], stdout=open(resume_log, "w"),
                              stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                              start_new_session=True)
    try:
        rc = second.wait(timeout=600)
    finally:
        kill_group(second)  # whatever it left if it timed out (its Ray, its tgray folder)
    resumed_out = resume_log.read_text()
    assert rc == 0, resumed_out[-3000:]
    assert json.loads((folder / "state.json").read_text())["finished"] is True

    # the same plan and the same run, continued from its last checkpoint (one per
    # evaluation): its first evaluation after the resume follows the last one before
    # (Ray's progress.csv of a restored trial starts again from there)
    assert json.loads((folder / "final_plan.json").read_text()) == plan
    assert [p.name for p in (folder / "final").glob("trial_*")] == [progress.parent.name]
    after = pd.read_csv(progress)["iter"].tolist()
    step = before[1] - before[0]
    assert before[-1] < after[0] <= before[-1] + 2 * step, (before, after)
    meta = json.loads((folder / "results" / "meta.json").read_text())
    fin = meta["final"]
    assert fin["of"] == plan["plan"]["trial_id"] and fin["outcome"] == "completed"
    assert fin["tokens"] == plan["plan"]["tokens"]
    cfg = plan["plan"]["config"]
    assert cfg["max_iters"] * cfg["batch_size"] * cfg["block_size"] == fin["tokens"]
    # Ray restarted the run's progress.csv, but the reports made before the Ctrl-C are
    # kept (the run's own evaluation log): its curve has every evaluation, before and after
    curve = [e["tokens"] for e in fin["curve"]]
    tpi = cfg["batch_size"] * cfg["block_size"]
    assert curve == sorted(set(curve)) and {i * tpi for i in before + after} <= set(curve)
    assert all(b - a <= (before[1] - before[0]) * tpi for a, b in zip(curve, curve[1:]))
    # it continued the chosen trial's own state: its first evaluation is past that trial's
    # last one, and only what it trained itself counts as the final run's compute
    start = plan["plan"]["start_tokens"]
    assert start > 0 and fin["start_tokens"] == start
    assert before[0] * cfg["batch_size"] * cfg["block_size"] > start
    from tune_gpt.search.final import flops_of

    assert fin["flops"] == pytest.approx(flops_of(cfg, fin["tokens"] - start, 65))
    assert fin["explore"]["flops"] > 0 and fin["best_tokens"] <= fin["tokens"]
    assert fin["flops_total"] == pytest.approx(fin["explore"]["flops"] + fin["flops"])
    # smoke.yaml names no priors: its first trial is no recipe, and nothing calls it one
    assert fin["prior_trial"] is None and fin["prior_config"] and fin["prior"] is None
    assert math.isfinite(fin["best_val_loss"]) and fin["best_val_loss"] < math.log(65)
    # the final model is the best-validation one, and `tune-gpt eval` takes it
    model = Path(fin["checkpoint"])
    assert model == (folder / "model" / "ckpt.pt").resolve() and model.is_file()
    ev = subprocess.run([sys.executable, "-m", "tune_gpt.cli", "eval", str(model), "--json"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ev.returncode == 0, ev.stderr
    scored = json.loads(ev.stdout)
    assert scored["tokens"] > 100_000 and abs(scored["val_loss"] - fin["best_val_loss"]) < 0.15
    assert "final model:" in resumed_out

    # MLflow: the final run is nested under the search, tagged as such, and not a trial
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tune-gpt-smoke").experiment_id
    finals = client.search_runs([exp], "tags.`tune_gpt.role` = 'final'")
    assert len(finals) == 1 and finals[0].data.tags["final_of"] == fin["of"]
    assert finals[0].data.tags.get("final_of_run_id")
    parent = client.search_runs([exp], "tags.`tune_gpt.role` = 'search'")[0]
    assert parent.data.metrics["final_val_loss"] == pytest.approx(fin["best_val_loss"])
    trials = pd.read_csv(folder / "results" / "trials.csv")
    assert finals[0].data.tags["ray.trial_id"] not in set(trials["trial_id"].astype(str))

    # the report opens with the model it hands back
    report = (tmp_path / "reports" / "fin" / "report.md").read_text()
    head = report.split("## 1. Summary")[0]
    assert "## The model this search hands back" in head
    assert f"tune-gpt eval {model}" in head and "Bjorck" in head
    assert "the prior" not in head
