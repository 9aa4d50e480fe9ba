"""tune_gpt.mlflow_ui against a real MLflow SQLite store, without a server or a browser:
the view written for a search, its address, and which search `tune-gpt ui` picks."""

from __future__ import annotations

import json
from pathlib import Path

from tune_gpt import mlflow_ui, tracking, trial


def _search(uri: str, root: Path, name: str) -> str:
    parent = tracking.start_parent(
        uri, "tune-gpt-demo", name, tags={"metric": "val_loss", "mode": "min"},
        params={"num_samples": 1, "space.learning_rate": "{loguniform: [1e-4, 1e-2]}",
                "space.n_embd": "{choice: [32, 64]}", "fixed.n_layer": 2},
        artifacts=[], artifact_root=root / "mlartifacts")
    log = tracking.TrialRunLogger(uri, None, parent)
    config = {"learning_rate": 1e-3, "n_embd": 32, "n_layer": 2, "max_iters": 10}
    log.log_result("t1", "trial_t1", config, {"iter": 10, "val_loss": 2.5})
    log.finish("t1", "trial_t1", config, trial.COMPLETED, {"iter": 10}, "done")
    return parent


def test_search_view_lists_the_tuners_columns_best_first() -> None:
    view = mlflow_ui.search_view("s1", "val_loss", ["learning_rate", "n_embd"])
    assert view["searchFilter"] == "tags.`tune_gpt.search` = 's1'"
    assert view["orderByKey"] == "metrics.`best_val_loss`" and view["orderByAsc"] is True
    cols = view["selectedColumns"]
    for col in ("metrics.`val_loss`", "tags.`outcome`", "params.`learning_rate`",
                "params.`n_embd`"):
        assert col in cols
    # a name MLflow's filter syntax cannot quote: no filter rather than a broken one
    assert "searchFilter" not in mlflow_ui.search_view("it's", "val_loss", [])
    assert mlflow_ui.search_view("s", "train_loss", [])["orderByKey"] == "metrics.`train_loss`"


def test_prepare_view_writes_the_shared_view_of_the_named_or_latest_search(
        tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = tracking.default_tracking_uri(tmp_path)
    first = _search(uri, tmp_path, "first")
    second = _search(uri, tmp_path, "second")
    client = MlflowClient(uri)
    # a search logged before the search tag existed: `ui` tags its runs
    child = client.search_runs([client.get_run(first).info.experiment_id],
                               f"tags.mlflow.parentRunId = '{first}'")[0]
    assert child.data.tags[mlflow_ui.SEARCH_TAG] == "first"
    client.delete_tag(child.info.run_id, mlflow_ui.SEARCH_TAG)

    exp_id, key, name = mlflow_ui.prepare_view(uri, None)
    assert name == "second" and key == f"tune-gpt-{second}"
    exp_id, key, name = mlflow_ui.prepare_view(uri, "first")
    assert name == "first" and key == f"tune-gpt-{first}"
    assert client.get_run(child.info.run_id).data.tags[mlflow_ui.SEARCH_TAG] == "first"
    view = json.loads(client.get_experiment(exp_id).tags[mlflow_ui.SHARED_VIEW_PREFIX + key])
    assert "params.`learning_rate`" in view["selectedColumns"]
    assert "params.`n_layer`" not in view["selectedColumns"]  # fixed, not tuned
    assert mlflow_ui.runs_url("http://127.0.0.1:5000", exp_id, key) == \
        f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?viewStateShareKey={key}"


def test_prepare_view_of_an_empty_store_is_none(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    tracking._client(uri).search_experiments()  # creates the store, holds no search
    assert mlflow_ui.prepare_view(uri, None) is None
