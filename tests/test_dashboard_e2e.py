"""The README's promise: `optuna-dashboard sqlite:///runs/NAME/optuna.db`, typed in the folder
where `tune-gpt search` ran, shows the search's study. A real smoke search (Ray, Optuna's TPE,
ASHA, MLflow's default SQLite store, torch), then the real optuna-dashboard on loopback, read
over its JSON API the way its web page reads it. Slow (about a minute); marked e2e."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tune_gpt import trial as outcomes

from servers import _free_port, stop_group

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _start_dashboard(cwd: Path, storage: str) -> tuple[subprocess.Popen, str]:
    """optuna-dashboard on a free loopback port; (process, address) once it answers."""
    port = _free_port()
    log = cwd / "dashboard.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("optuna-dashboard")), storage,
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            _get(address + "/api/meta")
            return proc, address
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop_group(proc)
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.3)


def test_optuna_dashboard_shows_every_trial_as_what_it_was(
        tmp_path: Path, shakespeare_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from tune_gpt.search import SearchOptions, run_search
    from tune_gpt.tracking import TRIAL_TAG

    # A user's folder: the search with the default storage (./runs) and MLflow store.
    monkeypatch.chdir(tmp_path)
    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="dash", report=False, quiet=True))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len({c.data.tags[TRIAL_TAG] for c in children}) == len(children) == 6

    # the README's command, word for word, in that folder
    proc, address = _start_dashboard(tmp_path, "sqlite:///runs/dash/optuna.db")
    try:
        studies = _get(address + "/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash"]
        study = _get(f"{address}/api/studies/{studies[0]['study_id']}")
    finally:
        stop_group(proc)
    assert proc.returncode is not None

    trials = study["trials"]
    assert len(trials) == len(children)  # the dashboard and MLflow count the same trials

    def learning_rate(trial: dict[str, Any]) -> float:
        return next(float(p["param_external_value"]) for p in trial["params"]
                    if p["name"] == "learning_rate")

    # Each MLflow trial is in the dashboard (found by its sampled learning rate, which no
    # two trials share), in the state that says what happened to it.
    state_of = {outcomes.STOPPED_EARLY: "Pruned", outcomes.COMPLETED: "Complete"}
    by_outcome: dict[str, int] = {}
    for child in children:
        outcome = child.data.tags["outcome"]
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        lr = float(child.data.params["learning_rate"])
        match = [t for t in trials if math.isclose(learning_rate(t), lr, rel_tol=1e-9)]
        assert len(match) == 1, (lr, [learning_rate(t) for t in trials])
        assert outcome in state_of, f"the smoke search had a trial {outcome}"
        assert match[0]["state"] == state_of[outcome], (outcome, match[0])
        if outcome == outcomes.STOPPED_EARLY:  # pruned at the tokens it had reached
            steps = [v["step"] for v in match[0]["intermediate_values"]]
            assert steps and max(steps) < int(child.data.params["max_iters"]) * \
                int(child.data.metrics["tokens_per_iter"])
    assert by_outcome.get(outcomes.STOPPED_EARLY), "ASHA stopped no trial"
    assert by_outcome.get(outcomes.COMPLETED)
