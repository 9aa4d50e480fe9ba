"""Real servers for end-to-end tests, started on loopback and stopped by process group:
an MLflow tracking server, a PostgreSQL instance and a two-node Ray cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(folder: Path, backend_uri: str):
    """Start `mlflow server` on a free loopback port; returns (process, uri) once healthy."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--serve-artifacts",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT, env=env,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2):
                return proc, uri
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop_group(proc)
                raise RuntimeError((folder / "server.log").read_text()[-2000:])
            time.sleep(0.5)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process we started in its own session and everything it left behind there
    (a crashed driver's Ray processes), then the Ray session folder of that driver, which a
    killed driver cannot remove itself (search/run.ray_session names it tgray-PID-...)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    import glob
    import shutil
    import tempfile

    for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"tgray-{proc.pid}-*")):
        shutil.rmtree(folder, ignore_errors=True)


def stop_group(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """Stop a process we started and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real MLflow tracking server (SQLite backend) on loopback."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    proc, uri = start_mlflow_server(folder, f"sqlite:///{folder / 'store.db'}")
    try:
        yield uri
    finally:
        stop_group(proc)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql "
                           f"(.ci/run does)")
    return str(found)


@pytest.fixture(scope="module")
def postgres_uri():
    """A private PostgreSQL instance (Debian's package) on a loopback port, in a temp dir.
    initdb refuses to run as root, so as root it runs as the 'postgres' user."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tg-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    port = _free_port()
    data = folder / "data"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "tg")
    run(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "pg.log"), "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        run(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tg", "mlflow")
        yield f"postgresql://tg@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server_postgres(tmp_path_factory: pytest.TempPathFactory, postgres_uri: str):
    """A real MLflow tracking server whose backend store is PostgreSQL."""
    folder = tmp_path_factory.mktemp("mlflow-pg")
    proc, uri = start_mlflow_server(folder, postgres_uri)
    try:
        yield uri
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def ray_cluster():
    """A real two-node Ray cluster started the way users start one (`ray start --head`,
    then `ray start --address` for a second node), each node with 1 CPU, on loopback.
    Token authentication is on (Ray 2.60 refuses a second node otherwise), with a token of
    this test's own. Each `ray start` runs in its own process group, which is how the
    fixture stops exactly the processes it started — never `ray stop`."""
    import secrets
    import tempfile

    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="tgc-", dir="/tmp")  # short: Ray's socket paths live here
    port = _free_port()
    address = f"127.0.0.1:{port}"
    started: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        proc = subprocess.Popen([ray_bin, "start", *args, "--num-cpus=1",
                                 "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        started.append(proc)
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(out.decode()[-3000:])

    try:
        start("--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false")
        start(f"--address={address}")
        yield address, {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    finally:
        for proc in reversed(started):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)
