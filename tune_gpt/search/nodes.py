"""Before a search: can the machines run it? A space that needs a GPU per trial refuses on
a machine (or cluster) without one, with what a trial would cost on the CPU instead. And on
a cluster: does every node see the data set the driver checked? And first: is there a
cluster at the address given (`check_ray_address`), and the connection to it or to a local
Ray (`connect_ray`).

A data set small enough travels to the trials through Ray's object store
(tune_gpt.data.folder.shipment) and needs nothing from the nodes. A bigger one (a 17 GB
openwebtext folder) is read where it lies, so each node must see it at the same path with
the same content. This asks every alive node, with one tiny Ray task pinned to it, and
names the nodes that cannot, before any trial starts:

    check_nodes_see(prepared)   # raises UserError naming the nodes; returns the node count
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tune_gpt.errors import UserError


def _look(path: str, sha256: str) -> str:
    """Runs on one node: '' when `path` holds the data set `sha256`, else why not."""
    from tune_gpt.data.folder import read_shipped_path

    try:
        read_shipped_path(path, sha256)
    except UserError as e:
        return str(e)
    return ""


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
    # keyed by node id: several raylets of one machine share its address
    asks = {f"{n.get('NodeManagerAddress', '?')} ({n['NodeID'][:8]})": look.options(
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


def check_gpu_needed(space: Any, vocab_size: int, address: str | None) -> None:
    """A space whose trials each need a GPU, run locally on a machine without one: refuse,
    with a lower bound on what one trial would take on this CPU (at its measured peak)."""
    import os

    from tune_gpt.space.load import detect_profile

    need = float(space.resources.get("gpu", 0) or 0)
    if need <= 0 or address or os.environ.get("RAY_ADDRESS") or detect_profile() == "gpu":
        return
    from tune_gpt.estimate import cpu_peak_flops
    from tune_gpt.search.tuner import largest_model

    n_params, per_token = largest_model(space, vocab_size)
    cores = os.cpu_count() or 1
    peak = cpu_peak_flops(cores)
    tokens = space.budget.tokens_per_trial or 1_000_000
    seconds = tokens * per_token / peak
    cost = f"{seconds / 86400:.1f} days" if seconds > 2 * 86400 else \
        f"{seconds / 3600:.1f} h" if seconds > 2 * 3600 else f"{seconds / 60:.0f} min"
    what = f"{tokens / 1e6:,.0f}M tokens" if space.budget.tokens_per_trial else "1M tokens"
    raise UserError(
        f"{space.source} needs a GPU per trial (resources.gpu: {need:g}) and this machine has "
        f"none; on its CPU one trial ({what} of a {n_params / 1e6:.0f}M-parameter model, "
        f"{per_token / 1e9:.2f} GFLOP a token) would take at least {cost}, even at the "
        f"CPU's full measured peak ({peak / 1e9:.0f} GFLOP/s on {cores} cores); run it on a GPU "
        f"machine or a GPU cluster (--address), or pick a space with a CPU profile "
        f"(beginner.yaml)")


def check_cluster_gpus(space: Any, address: str | None) -> None:
    """On a cluster (after ray.init): refuse when no node can give a trial its GPUs, which
    would otherwise leave every trial pending for ever."""
    import ray

    need = float(space.resources.get("gpu", 0) or 0)
    if need <= 0:
        return
    best = max((float(n.get("Resources", {}).get("GPU", 0)) for n in ray.nodes()
                if n.get("Alive")), default=0.0)
    if best < need:
        where = f"the Ray cluster at {address}" if address else "the local Ray"
        raise UserError(f"{space.source}: each trial needs {need:g} GPU, but no node of {where} "
                        f"has that many (largest: {best:g}); add GPU nodes, or lower "
                        f"resources.gpu")


def check_ray_address(address: str | None) -> None:
    """Fail fast on a cluster address nobody answers at (ray.init would wait a minute)."""
    import socket

    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r} must look like HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise UserError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one "
                        f"with `ray start --head`, or leave --address out for a local Ray") \
            from None


def connect_ray(address: str | None, temp_dir: str) -> None:
    """ray.init for the search's driver: the cluster at `address` (or RAY_ADDRESS), or a
    local Ray; with glibc's malloc arenas limited first (search/driver_memory.py)."""
    from tune_gpt.search.driver_memory import limit_malloc_arenas

    limit_malloc_arenas()  # before Ray starts the driver's threads
    import ray

    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR,
                                  configure_logging=True)
    address = address or os.environ.get("RAY_ADDRESS")
    env = {k: os.environ[k] for k in ("TUNE_GPT_CACHE_DIR",) if k in os.environ}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, _temp_dir=temp_dir, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address} ({first}); check "
                        f"`ray status` there, or leave --address out for a local Ray") from None
