"""Scale out: a search on an existing two-node Ray cluster (`--address`), logging to one
MLflow tracking server whose backend store is PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers import mlflow_server_postgres, postgres_uri, ray_cluster  # noqa: F401,F811  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_search_on_a_two_node_cluster_logs_to_a_postgres_backed_server(
        tmp_path: Path, shakespeare_path: Path, ray_cluster, mlflow_server_postgres: str,  # noqa: F811
        monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    from tune_gpt.search import SearchOptions, run_search

    address, env = ray_cluster
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="on-cluster", storage_path=str(tmp_path / "runs"), address=address,
        tracking_uri=mlflow_server_postgres, report=False, quiet=True))

    client = MlflowClient(tracking_uri=mlflow_server_postgres)
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(children) == 6
    nodes = {c.data.tags.get("node_id") for c in children}
    assert len(nodes) == 2 and "" not in nodes and None not in nodes, nodes
    assert all(c.data.tags["outcome"] in ("completed", "stopped_early") for c in children)
    assert parent.info.status == "FINISHED"
