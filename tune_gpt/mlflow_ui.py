"""The MLflow UI, opened on a search's runs table with the columns a tuner reads.

MLflow 3.17's UI opens an experiment on its GenAI "Overview" page (traces), and its runs
table shows no metric by default. What it does offer (read in its 3.17.2 JS bundle):
- the runs table has its own address, `#/experiments/<id>/runs`;
- the URL's search facets (`searchFilter`, `orderByKey`, `orderByAsc`, `startTime`,
  `lifecycleFilter`, `modelVersionFilter`, `datasetsFilter`) set the filter and the order,
  but not the columns: those live in the browser's local storage;
- a shared view: `#/experiments/<id>/runs?viewStateShareKey=K` loads the experiment tag
  `mlflow.sharedViewState.K`, a JSON object of those facets plus the table's UI state
  (`selectedColumns`, `columnOrder`, ...; never `runsExpanded`). It is what the UI's own
  "Share" button writes, and the one way to choose the columns from outside the browser.

So `tune-gpt ui` writes one such view per search (filter: the search's runs; order: best
first; columns: val_loss, best_val_loss, outcome and the tuned knobs) and prints its address.
Ordering by a metric also makes the table flat, so the trials are listed without an
expander to open (the UI nests children only when ordered by start time).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tune_gpt import tracking
from tune_gpt.errors import UserError

SEARCH_TAG = tracking.SEARCH_TAG
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # the UI's constant
SHARE_PARAM = "viewStateShareKey"


def _col(kind: str, key: str) -> str:
    """A column key the way the UI writes it: attributes | params | metrics | tags."""
    return f"{kind}.`{key}`"


def search_view(search_name: str, metric: str, tuned: list[str]) -> dict[str, Any]:
    """The runs-table view of one search (pure): its runs, best first, the tuner's columns."""
    score = "train_loss" if metric == "train_loss" else "best_val_loss"
    metrics = ["val_loss", "best_val_loss"] + (["train_loss"] if score == "train_loss" else [])
    columns = ([_col("metrics", m) for m in metrics]
               + [_col("tags", "outcome"), _col("tags", "stopped_at_iter")]
               + [_col("params", k) for k in tuned] + [_col("attributes", "Duration")])
    view: dict[str, Any] = {"orderByKey": _col("metrics", score), "orderByAsc": True,
                            "selectedColumns": columns, "columnOrder": columns,
                            "startTime": "ALL", "lifecycleFilter": "Active"}
    if "'" not in search_name:  # MLflow's filter strings cannot escape a quote
        view["searchFilter"] = f"tags.`{SEARCH_TAG}` = '{search_name}'"
    return view


def runs_url(base: str, experiment_id: str | None, share_key: str | None = None) -> str:
    """The address of an experiment's runs table (of the UI's start page without one)."""
    if experiment_id is None:
        return f"{base}/"
    url = f"{base}/#/experiments/{experiment_id}/runs"
    return f"{url}?{SHARE_PARAM}={share_key}" if share_key else url


def latest_parent(uri: str) -> Any | None:
    """The parent run of the most recently started search in the store, if any."""
    client = tracking._client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(experiments, filter_string="tags.`tune_gpt.role` = 'search'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def prepare_view(uri: str, search: str | None) -> tuple[str, str, str] | None:
    """Write the search's view into its experiment; return (experiment id, share key,
    search name), or None when the store holds no search yet (and no name was given)."""
    parent = tracking.find_parent(uri, search) if search else latest_parent(uri)
    if parent is None:
        return None
    client = tracking._client(uri)
    name, pid = parent.info.run_name, parent.info.run_id
    exp_id = parent.info.experiment_id
    # Searches logged before the tag existed get it now: the view's filter needs it.
    runs = [parent] + client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{pid}'",
                                         max_results=10000)
    for run in runs:
        if run.data.tags.get(SEARCH_TAG) != name:
            client.set_tag(run.info.run_id, SEARCH_TAG, name)
    tuned = sorted(k.removeprefix("space.") for k in parent.data.params
                   if k.startswith("space."))
    view = search_view(name, parent.data.tags.get("metric", "val_loss"), tuned)
    key = f"tune-gpt-{pid}"  # one view per search, rewritten by every `tune-gpt ui`
    client.set_experiment_tag(exp_id, SHARED_VIEW_PREFIX + key, json.dumps(view))
    return exp_id, key, name


def _open_when_up(base: str, url: str, timeout_s: float = 120) -> None:
    """Open `url` in the user's browser once the server answers, from a detached process
    (this one becomes the server). Only where a graphical browser is registered: a console
    browser (lynx, w3m) would fight the server's log for the terminal."""
    import webbrowser

    graphical = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    try:
        if not graphical or webbrowser.get() is None:
            return
    except webbrowser.Error:
        return
    if not hasattr(os, "fork"):  # Windows: open now; the page retries its own requests
        webbrowser.open(url)
        return
    if os.fork():  # parent: reap the first child, which exits at once
        os.wait()
        return
    if os.fork():  # first child: exit, so the grandchild belongs to init, not the server
        os._exit(0)
    import time
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                webbrowser.open(url)
                break
        except OSError:
            time.sleep(0.5)
    os._exit(0)


def run_ui(tracking_uri: str | None, host: str = "127.0.0.1", port: int = 5000,
           serve: bool = False, storage_path: str | None = None, name: str | None = None,
           browser: bool = True) -> int:
    """Start `mlflow ui` (or `mlflow server` with --serve) on the searches' store, after
    printing (and opening) the address of a search's runs table: `name`'s, else the latest."""
    storage = Path(storage_path or "runs")
    uri = tracking_uri or tracking.default_tracking_uri(storage)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise UserError(f"no MLflow store at {uri}; run a search first or pass --tracking-uri")
    view = prepare_view(uri, name)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    url = runs_url(base, *view[:2]) if view else runs_url(base, None)
    cmd = [sys.executable, "-m", "mlflow", "server" if serve else "ui",
           "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]
    if serve:
        cmd += ["--serve-artifacts",
                "--artifacts-destination", str((storage / "mlartifacts").resolve())]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    what = f"search '{view[2]}'" if view else "no search yet"
    print(f"MLflow {'server' if serve else 'UI'} (store: {uri}); Ctrl-C to stop\n"
          f"  {what}: {url}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: bound to {host}: anyone who can reach this port can read and write "
              f"the runs", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if browser:
        _open_when_up(base, url)
    # Become the MLflow process: Ctrl-C and kill reach the server itself, nothing is orphaned.
    os.execve(sys.executable, cmd, env)
    return 0  # not reached
