"""Before a search on a cluster: does every node see the data set the driver checked?

A data set small enough travels to the trials through Ray's object store
(tune_gpt.data.folder.shipment) and needs nothing from the nodes. A bigger one (a 17 GB
openwebtext folder) is read where it lies, so each node must see it at the same path with
the same content. This asks every alive node, with one tiny Ray task pinned to it, and
names the nodes that cannot, before any trial starts:

    check_nodes_see(prepared)   # raises UserError naming the nodes; returns the node count
"""

from __future__ import annotations

from typing import Any

from tune_gpt.errors import UserError


def _look(path: str, sha256: str) -> str:
    """Runs on one node: '' when `path` holds the data set `sha256`, else why not."""
    import os

    from tune_gpt.data import prepare

    if not os.path.isdir(path):
        return f"no folder {path}"
    try:
        found = prepare(path).sha256
    except UserError as e:
        return str(e)
    return "" if found == sha256 else f"different data at {path} (identity {found[:12]})"


def check_nodes_see(prepared: Any, timeout_s: float = 120.0) -> int:
    """Ask every alive Ray node whether it sees the data at the driver's path; raise a
    UserError naming those that do not. Only for data sent by path (see shipment)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from tune_gpt.data.folder import ship_by_path

    path = ship_by_path(prepared)
    if path is None:
        return 0
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    look = ray.remote(num_cpus=0, max_retries=0)(_look)
    asks = {n.get("NodeManagerAddress") or n["NodeID"][:12]: look.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            path, prepared.sha256) for n in nodes}
    try:
        answers = dict(zip(asks, ray.get(list(asks.values()), timeout=timeout_s)))
    except ray.exceptions.GetTimeoutError:
        raise UserError(f"the cluster's nodes did not answer within {timeout_s:.0f} s whether "
                        f"they see {path}; check `ray status`") from None
    missing = {node: why for node, why in answers.items() if why}
    if missing:
        listed = "; ".join(f"node {node}: {why}" for node, why in sorted(missing.items()))
        raise UserError(f"the data set is read from {path} on every node (too big for Ray's "
                        f"object store), but {len(missing)} of {len(nodes)} node(s) cannot: "
                        f"{listed}; put the same folder at that path on every node (shared "
                        f"or copied)")
    return len(nodes)
