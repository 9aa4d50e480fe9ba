"""tune_gpt.tracking against a real MLflow SQLite store, without Ray: the parent run, one
nested run per trial, and reading a search back (interrupted, and finished)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tune_gpt import tracking, trial
from tune_gpt.search.collect import best_summary, write_tables
from tune_gpt.trial import SearchMeta, TrialPlan


def _evals(losses: list[float]) -> list[dict]:
    return [{"iter": 10 * i, "tokens": 1000 * i, "train_loss": v + 0.1, "val_loss": v,
             "best_val_loss": min(losses[:i]), "lr": 1e-3, "tokens_per_s": 5e4,
             "ms_per_iter": 2.0, "mfu": 0.1, "peak_mem_bytes": 1e8, "elapsed_s": float(i),
             "eval_s": 0.1 * i, "wall_s": float(i), "tokens_per_iter": 100, "n_params": 1e5,
             "vocab_size": 65, "est_mem_bytes": 9e7, "outcome": "running"}
            for i, _ in enumerate(losses, 1) for v in [losses[i - 1]]]


def make_search(tmp_path: Path, name: str = "demo", metric: str = "val_loss"
                ) -> tuple[str, str]:
    """A two-trial search logged the way the search's callback logs it."""
    uri = tracking.default_tracking_uri(tmp_path)
    parent = tracking.start_parent(uri, "tune-gpt-demo", name,
                                   tags={"sampler": "tpe", "scheduler": "asha",
                                         "metric": metric, "mode": "min"},
                                   params={"num_samples": 2}, artifacts=[],
                                   artifact_root=tmp_path / "mlartifacts")
    log = tracking.TrialRunLogger(uri, None, parent)
    trials = {"t1": ([2.0, 1.6, 1.4], trial.COMPLETED), "t2": ([2.2, 2.1], trial.STOPPED_EARLY)}
    for tid, (losses, outcome) in trials.items():
        config = {"batch_size": 8, "learning_rate": 1e-3, "max_iters": 30,
                  **TrialPlan(sampled={"learning_rate": 1e-3}).to_config()}
        for r in _evals(losses):
            log.log_result(tid, f"trial_{tid}", config, r)
        log.finish(tid, f"trial_{tid}", config, outcome, {"iter": 10 * len(losses)}, "why")
    return uri, parent


def test_parent_and_nested_runs(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri, parent = make_search(tmp_path)
    client = MlflowClient(uri)
    exp = client.get_experiment(client.get_run(parent).info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == tracking.EXPERIMENT_KIND
    children = client.search_runs([exp.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(c.data.tags[tracking.TRIAL_TAG] for c in children) == ["t1", "t2"]
    for c in children:
        assert trial.TRIAL_PLAN_KEY not in c.data.params  # knobs only
        assert c.data.tags["outcome"] in trial.USABLE and c.info.status == "FINISHED"
    history = client.get_metric_history(children[0].info.run_id, "val_loss")
    assert [m.step for m in history] in ([10, 20, 30], [10, 20])


def notes(capsys: pytest.CaptureFixture) -> list[str]:
    """The `note:` lines printed to stderr since the last call."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]


def test_load_search_rebuilds_an_interrupted_search(tmp_path: Path, capsys) -> None:
    uri, parent = make_search(tmp_path, metric="train_loss")
    notes(capsys)
    trials, curves, meta = tracking.load_search(uri, "demo")
    # the fallback is said, in one line naming what was missing
    said = notes(capsys)
    assert len(said) == 1 and said[0].startswith("note: search 'demo': no results tables "
                                                 "logged (") and "rebuilt from its trials' runs" in said[0]
    assert meta["metric"] == "train_loss" and meta["mlflow_parent_run_id"] == parent
    assert set(trials["trial_id"]) == {"t1", "t2"}
    t1 = trials.set_index("trial_id").loc["t1"]
    assert t1["best_val_loss"] == pytest.approx(1.4) and t1["outcome"] == trial.COMPLETED
    assert t1["best_train_loss"] == pytest.approx(1.5) and t1["n_params"] == 1e5
    assert list(curves.columns) == list(trial.CURVE_COLUMNS) and len(curves) == 5
    assert tracking.load_search(uri, parent)[2]["name"] == "demo"  # by parent run id too


def test_load_search_reads_a_finished_searchs_tables_in_one_go(tmp_path: Path,
                                                             capsys) -> None:
    uri, parent = make_search(tmp_path)
    rebuilt, curves, _ = tracking.load_search(uri, "demo")
    rows = rebuilt.to_dict("records")
    meta = SearchMeta(name="demo", metric="val_loss", counts={"completed": 1},
                      best=best_summary(rows, "val_loss", "min"))
    write_tables(tmp_path / "results", rebuilt, curves, meta)
    tracking.log_folder(uri, parent, tmp_path / "results", "results")
    tracking.finish_parent(uri, parent, meta.best, meta.counts)
    notes(capsys)
    trials, curves2, meta2 = tracking.load_search(uri, "demo")
    assert notes(capsys) == []  # nothing was missing: nothing to say
    assert meta2["best"]["trial_id"] == "t1" and meta2["counts"] == {"completed": 1}
    assert sorted(trials["trial_id"]) == ["t1", "t2"] and len(curves2) == len(curves)
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(parent)
    assert run.info.status == "FINISHED" and run.data.metrics["best_val_loss"] == 1.4
    assert run.data.tags["best_trial_id"] == "t1"


def test_unknown_search_is_a_user_error(tmp_path: Path) -> None:
    from tune_gpt.errors import UserError

    uri, _ = make_search(tmp_path)
    with pytest.raises(UserError, match="no search 'nope'"):
        tracking.load_search(uri, "nope")
    # a name that looks like a run id: why it is not one is part of the message
    with pytest.raises(UserError, match=r"no search '0{32}' .*\(as a run id: .+\)"):
        tracking.load_search(uri, "0" * 32)


def test_what_a_rebuilt_search_lacks_is_said(tmp_path: Path, capsys) -> None:
    """A parent run without the metric/mode tags, a trial's param the config rejects, and
    no text samples: each fallback is one note line naming what was missing."""
    from mlflow.tracking import MlflowClient

    uri = tracking.default_tracking_uri(tmp_path)
    parent = tracking.start_parent(uri, "tune-gpt-demo", "bare", tags={}, params={},
                                   artifacts=[], artifact_root=tmp_path / "mlartifacts")
    log = tracking.TrialRunLogger(uri, None, parent)
    log.log_result("t1", "trial_t1", {"batch_size": 8}, _evals([2.0, 1.5])[0])
    MlflowClient(uri).log_param(log.find("t1"), "dropout", "lots")
    notes(capsys)
    trials, _, meta = tracking.load_search(uri, "bare")
    said = notes(capsys)
    assert meta["metric"] == "val_loss" and meta["mode"] == "min"
    assert "note: search 'bare': its parent run has no metric or mode tag; read as metric " \
           "val_loss, mode min" in said
    assert any(n.startswith(f"note: MLflow run {log.find('t1')}: param dropout='lots' is not a "
                            f"valid dropout (") and n.endswith("kept as written") for n in said)
    assert trials.set_index("trial_id").at["t1", "dropout"] == "lots"
    assert tracking.load_samples(uri, parent) is None
    said = notes(capsys)
    assert len(said) == 1 and said[0].startswith(f"note: run {parent}: no text samples logged (")


def report_in_fresh_process(uri: str, out: Path, cwd: Path) -> tuple[int, bool, bool]:
    """`tune-gpt report demo --tracking-uri URI --out OUT` in a new interpreter: (exit
    status, whether ray was imported, whether torch was)."""
    code = ("import sys, json; from tune_gpt.cli import main; "
            f"rc = main(['report', 'demo', '--tracking-uri', {uri!r}, '--out', {str(out)!r}]); "
            "print(json.dumps([rc, 'ray' in sys.modules, 'torch' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tuple(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_report_from_mlflow_alone_imports_neither_ray_nor_torch(tmp_path: Path) -> None:
    uri, _ = make_search(tmp_path)
    assert report_in_fresh_process(uri, tmp_path / "rep", tmp_path) == (0, False, False)
    assert (tmp_path / "rep" / "report.md").is_file()
