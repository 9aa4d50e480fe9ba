"""Scale out: a search on an existing two-node Ray cluster (`--address`), logging to one
MLflow tracking server whose backend store is PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers import mlflow_server_postgres, postgres_uri, ray_cluster  # noqa: F401,F811  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_search_on_a_two_node_cluster_logs_to_a_postgres_backed_server(
        tmp_path: Path, shakespeare_path: Path, ray_cluster,  # noqa: F811
        mlflow_server_postgres: str) -> None:  # noqa: F811
    import json
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    address, env = ray_cluster
    # The driver runs as users run it: `tune-gpt search --address`, in its own process
    # (with the cluster's token in its environment, as on every node of such a cluster).
    proc = subprocess.run(
        [sys.executable, "-m", "tune_gpt.cli", "search",
         str(ROOT / "search_spaces" / "smoke.yaml"),
         "--data", str(shakespeare_path), "--name", "on-cluster", "--storage-path",
         str(tmp_path / "runs"), "--address", address, "--tracking-uri", mlflow_server_postgres,
         "--no-report"], capture_output=True, text=True, cwd=tmp_path, timeout=400,
        env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((tmp_path / "runs" / "on-cluster" / "state.json").read_text())

    client = MlflowClient(tracking_uri=mlflow_server_postgres)
    parent = client.get_run(state['parent_run_id'])
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{state['parent_run_id']}'")
    assert len(children) == 6
    nodes = {c.data.tags.get("node_id") for c in children}
    assert len(nodes) == 2 and "" not in nodes and None not in nodes, nodes
    assert all(c.data.tags["outcome"] in ("completed", "stopped_early") for c in children)
    assert parent.info.status == "FINISHED"
