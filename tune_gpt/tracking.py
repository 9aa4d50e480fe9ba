"""MLflow: one parent run per search, one nested run per trial.

Everything MLflow-specific lives here. Logging happens in the search's driver, from a Ray
Tune callback that sees every trial's results, so that:
- the outcome of a trial stopped by ASHA is known (the trial itself never learns it);
- a resumed search finds each trial's existing run (by the `ray.trial_id` tag under the
  parent) and continues it, so the tree holds exactly one run per trial;
- trials on other nodes need no route to the tracking store of their own.

The default store is an SQLite file under the storage path (MLflow's own embedded store);
`--tracking-uri http://host:5000` logs to a tracking server instead.
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tune_gpt import trial as contract
from tune_gpt.config import FIELD_TYPES, KNOBS, coerce
from tune_gpt.errors import UserError, check_writable, note
from tune_gpt.trial import METRIC_KEYS, TrialPlan, knobs_of

# Model training, not GenAI. The MLflow 3.17 UI still opens on its GenAI "Overview" page:
# `tune-gpt ui` prints the runs table's address instead (tune_gpt.mlflow_ui).
EXPERIMENT_KIND = "custom_model_development"
TRIAL_TAG = "ray.trial_id"
SEARCH_TAG = "tune_gpt.search"  # the search's name, on its parent and on every trial's run


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def default_tracking_uri(storage: Path) -> str:
    return f"sqlite:///{(storage / 'mlflow.db').resolve()}"


def check_tracking_uri(uri: str) -> None:
    """Fail fast (before any trial) on a store that cannot be reached or written."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as r:
                if r.status != 200:
                    raise OSError(f"HTTP {r.status}")
        except (OSError, urllib.error.URLError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"MLflow tracking server {uri} is unreachable ({reason}); start it "
                            f"(tune-gpt ui --serve) or pass a reachable --tracking-uri") from None
    elif uri.startswith("sqlite:///"):
        check_writable(Path(uri[len("sqlite:///"):]).parent, "MLflow store folder",
                       "pass a writable --storage-path or --tracking-uri")
    elif "://" not in uri:
        raise UserError(f"tracking URI {uri!r} is not a URI; use http://host:port or "
                        f"sqlite:////absolute/path/mlflow.db")


def _client(uri: str) -> Any:
    import logging

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow.tracking import MlflowClient

    # After the import (MLflow sets up its loggers then): its INFO lines (creating tables,
    # migrations) are not the user's business.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def start_parent(uri: str, experiment: str, search_name: str, tags: dict[str, str],
                 params: dict[str, Any], artifacts: list[Path], artifact_root: Path | None
                 ) -> str:
    """Create the search's parent run (and its experiment, the first time); return its id."""
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = artifact_root.resolve().as_uri() if artifact_root else None
        exp_id = client.create_experiment(experiment, artifact_location=location,
                                          tags={"mlflow.experimentKind": EXPERIMENT_KIND})
    else:
        exp_id = exp.experiment_id
    run = client.create_run(exp_id, run_name=search_name,
                            tags={**tags, "tune_gpt.role": "search", SEARCH_TAG: search_name})
    _log_params(client, run.info.run_id, params)
    for path in artifacts:
        client.log_artifact(run.info.run_id, str(path))
    return run.info.run_id


def reopen_parent(uri: str, run_id: str) -> None:
    """A resumed search's parent run is RUNNING again."""
    _client(uri).update_run(run_id, status="RUNNING")


def finish_parent(uri: str, run_id: str, best: dict[str, Any] | None, counts: dict[str, int],
                  status: str = "FINISHED", confirm: dict[str, Any] | None = None,
                  final: dict[str, Any] | None = None) -> None:
    from mlflow.entities import Metric

    client = _client(uri)
    now = int(time.time() * 1000)
    metrics = [Metric(f"trials_{k}", float(v), now, 0) for k, v in counts.items()]
    if best:
        client.set_tag(run_id, "best_trial_id", str(best["trial_id"]))
        child = TrialRunLogger(uri, None, run_id).find(str(best["trial_id"]))
        if child:
            client.set_tag(run_id, "best_mlflow_run_id", child)
        metrics.append(Metric(f"best_{best['metric'].removeprefix('best_')}",
                              float(best["value"]), now, 0))
        if best["metric"] != "best_val_loss" and math.isfinite(best.get("best_val_loss", math.nan)):
            metrics.append(Metric("best_val_loss", float(best["best_val_loss"]), now, 0))
        _log_params(client, run_id, {f"best.{k}": v for k, v in best["config"].items()})
    if confirm and confirm.get("winner"):
        client.set_tag(run_id, "confirm_winner", str(confirm["winner"]))
        client.set_tag(run_id, "confirm_winner_is_real", str(confirm.get("winner_is_real")))
        if math.isfinite(confirm.get("noise", math.nan)):
            metrics.append(Metric("confirm_noise", float(confirm["noise"]), now, 0))
    if final:  # the final phase: the model the search hands back, and what each phase cost
        client.set_tag(run_id, "final_of", str(final.get("of")))
        if final.get("checkpoint"):
            client.set_tag(run_id, "final_checkpoint", str(final["checkpoint"]))
        for key, value in (("final_val_loss", final.get("best_val_loss")),
                           ("final_tokens", final.get("tokens")),
                           ("final_wall_s", final.get("wall_s")),
                           ("explore_wall_s", final["explore"].get("wall_s")),
                           ("flops_total", final.get("flops_total"))):
            if isinstance(value, (int, float)) and math.isfinite(value):
                metrics.append(Metric(key, float(value), now, 0))
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id, status=status)


def mark_interrupted(uri: str, parent_run_id: str) -> None:
    """Ctrl-C: the parent and the runs of unfinished trials become KILLED (a resume sets
    them RUNNING again), so the UI shows no run as RUNNING while nothing runs."""
    client = _client(uri)
    parent = client.get_run(parent_run_id)
    for run in client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                  max_results=10000):
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status="KILLED")
    client.set_terminated(parent_run_id, status="KILLED")


def log_folder(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    """Attach a folder (the report, the results tables) to a run as artifacts."""
    _client(uri).log_artifacts(run_id, str(folder), artifact_path=artifact_path)


def _log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=items[i:i + 100])


class TrialRunLogger:
    """Nested run per trial: params once, metric series at every eval, outcome at the end.

    Created in the driver; used by the Ray callback in tune_gpt.search."""

    def __init__(self, uri: str, experiment_id: str | None, parent_run_id: str):
        self.uri = uri
        self.parent = parent_run_id
        self._client = None
        self._runs: dict[str, str] = {}
        self._tagged: set[str] = set()
        self._experiment_id = experiment_id
        self._search_name: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client(self.uri)
            if self._experiment_id is None:
                self._experiment_id = self._client.get_run(self.parent).info.experiment_id
        return self._client

    @property
    def search_name(self) -> str:
        """The parent run's name: the search's, which the UI's view filters on."""
        if self._search_name is None:
            self._search_name = self.client.get_run(self.parent).info.run_name
        return self._search_name

    def run_for(self, trial_id: str, trial_name: str, config: dict[str, Any]) -> str:
        """The trial's run: found again after a resume, created once otherwise."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        client = self.client
        found = self._search(trial_id)
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
        else:
            tags = {"mlflow.parentRunId": self.parent, TRIAL_TAG: trial_id,
                    "outcome": contract.RUNNING, "tune_gpt.role": "trial",
                    SEARCH_TAG: self.search_name}
            plan = TrialPlan.of(config)
            if plan.final_of:
                tags["tune_gpt.role"] = "final"
            # a confirm re-run (new seed), an OOM rescue, the final run: each linked to the
            # search trial whose config it trains
            for key in ("confirm_of", "rescue_of", "final_of"):
                of = getattr(plan, key)
                if of:
                    tags[key] = of
                    original = self.find(of)
                    if original:
                        tags[f"{key}_run_id"] = original
            run = client.create_run(self._experiment_id, run_name=trial_name, tags=tags)
            run_id = run.info.run_id
            _log_params(client, run_id, knobs_of(config))
        self._runs[trial_id] = run_id
        return run_id

    def _search(self, trial_id: str) -> list[Any]:
        return self.client.search_runs(
            [self._experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent}' and "
                          f"tags.`{TRIAL_TAG}` = '{trial_id}'", max_results=1)

    def find(self, trial_id: str) -> str | None:
        """The MLflow run id of a trial, if it has one."""
        found = self._search(trial_id)
        return found[0].info.run_id if found else None

    def log_result(self, trial_id: str, trial_name: str, config: dict[str, Any],
                   result: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run_id = self.run_for(trial_id, trial_name, config)
        step = int(result.get("iter", 0))
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(result[k]), now, step) for k in METRIC_KEYS
                   if isinstance(result.get(k), (int, float)) and math.isfinite(result[k])]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
        if result.get("node_id") and trial_id not in self._tagged:
            self._tagged.add(trial_id)
            self.client.set_tag(run_id, "node", str(result.get("node", "")))
            self.client.set_tag(run_id, "node_id", str(result["node_id"]))

    def finish(self, trial_id: str, trial_name: str, config: dict[str, Any], outcome: str,
               last: dict[str, Any], why: str) -> None:
        run_id = self.run_for(trial_id, trial_name, config)
        client = self.client
        client.set_tag(run_id, "outcome", outcome)
        client.set_tag(run_id, "stopped_at_iter", str(int(last.get("iter", 0))))
        client.set_tag(run_id, "stop_reason", why[:5000])
        if last.get("error"):
            client.set_tag(run_id, "error", str(last["error"])[:5000])
        ok = outcome in contract.USABLE
        client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")


# ----------------------------------------------------------------------------- reading back

def find_parent(uri: str, search: str) -> Any:
    """The parent run of a search, by run id or by search name."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    as_id = ""  # why `search` is not a run id, when it looks like one
    if len(search) == 32 and all(c in "0123456789abcdef" for c in search):
        try:
            return client.get_run(search)
        except MlflowException as e:  # a search may be named like a run id: try the name
            as_id = f" (as a run id: {_first_line(e)})"
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.mlflow.runName = '{search}' and "
                                                          f"tags.`tune_gpt.role` = 'search'",
                              order_by=["attributes.start_time DESC"], max_results=1) \
        if experiments else []
    if not runs:
        raise UserError(f"no search '{search}' in the MLflow store {uri}{as_id}: give a search "
                        f"name or a parent run id, or pass the right --tracking-uri")
    return runs[0]


def load_search(uri: str, search: str) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild a search's tables (one row per trial, one per eval) and meta from MLflow alone,
    so a report can be written after the Ray results are gone. A finished search logged its
    tables on the parent run: they are read in one download. An interrupted one is rebuilt
    from its trials' runs and metric histories."""
    import json
    import tempfile

    import pandas as pd

    client = _client(uri)
    parent = find_parent(uri, search)
    pid = parent.info.run_id
    tables = ("trials.csv", "curves.csv", "meta.json")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(client.download_artifacts(pid, "results", tmp))
            lacking = [f for f in tables if not (folder / f).is_file()]
            missing = f"its results lack {', '.join(lacking)}" if lacking else ""
        except Exception as e:  # noqa: BLE001 — MLflow says "not there" in several types
            missing = f"no results tables logged ({_first_line(e)})"
        if not missing:
            meta = json.loads((folder / "meta.json").read_text())
            meta.update(tracking_uri=uri, mlflow_parent_run_id=pid)
            trials = pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})
            return trials, pd.read_csv(folder / "curves.csv", dtype={"trial_id": str}), meta
    name = parent.info.run_name
    note(f"search '{name}': {missing}; its tables are rebuilt from its trials' runs (an "
          f"interrupted search has logged none)")
    tags = parent.data.tags
    defaults = {"metric": "val_loss", "mode": "min"}
    untagged = [k for k in defaults if k not in tags]
    if untagged:
        note(f"search '{name}': its parent run has no {' or '.join(untagged)} tag; read as "
              + ", ".join(f"{k} {defaults[k]}" for k in untagged))
    meta = {"name": name, "sampler": {"type": tags.get("sampler")},
            "scheduler": {"type": tags.get("scheduler")}, "profile": tags.get("profile"),
            "data": tags.get("dataset"), "space_file": tags.get("space_file"),
            **{k: tags.get(k, v) for k, v in defaults.items()},
            "tracking_uri": uri, "mlflow_parent_run_id": pid}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{pid}'",
                                  max_results=10000)
    rows, curves = [], []
    for run in children:
        tags = run.data.tags
        if tags.get("tune_gpt.role") == "final":  # not a trial of the search: meta.final
            continue
        trial_id, config, evals, last = _trial_from_run(client, run)
        rows.append(contract.trial_row(trial_id, contract.recorded_outcome(tags.get("outcome")),
                                       tags.get("error", ""), config, evals, last, KNOBS))
        curves += [contract.curve_point(trial_id, e) for e in evals]
    return pd.DataFrame(rows), pd.DataFrame(curves, columns=list(contract.CURVE_COLUMNS)), meta


def load_samples(uri: str, parent_run_id: str) -> dict[str, Any] | None:
    """The best trials' text samples a finished search logged with its results
    (results/samples.json); None when it has none (older or interrupted searches)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(_client(uri).download_artifacts(parent_run_id, "results/samples.json", tmp))
            data = json.loads(path.read_text(encoding="utf-8"))
        except Exception as e:  # noqa: BLE001 — MLflow says "not there" in several types
            note(f"run {parent_run_id}: no text samples logged ({_first_line(e)}); the report "
                  f"goes without them")
            return None
    if not isinstance(data, dict):
        note(f"run {parent_run_id}: results/samples.json is not a mapping; the report goes "
              f"without samples")
        return None
    return data


def _trial_from_run(client: Any, run: Any) -> tuple[str, dict, list[dict], dict]:
    """A trial's id, knobs, evaluations and last report, from its MLflow run. Only the
    metrics the run has are read (one history each)."""
    config = {}
    for k, v in run.data.params.items():
        if k in FIELD_TYPES:
            try:
                config[k] = coerce(k, v)
            except UserError as e:
                note(f"MLflow run {run.info.run_id}: param {k}={v!r} is not a valid {k} "
                      f"({e}); kept as written")
                config[k] = v
    by_step: dict[int, dict[str, Any]] = {}
    for key in (k for k in METRIC_KEYS if k in run.data.metrics
                and k not in contract.TRIAL_CONSTANTS):
        for m in client.get_metric_history(run.info.run_id, key):
            by_step.setdefault(int(m.step), {"iter": int(m.step)})[key] = m.value
    evals = [by_step[s] for s in sorted(by_step)]
    tags = run.data.tags
    last = {**(evals[-1] if evals else {}), "iter": int(tags.get("stopped_at_iter", 0)),
            "node": tags.get("node", "")}
    for k in contract.TRIAL_CONSTANTS:  # the same at every step: the latest value is enough
        if k in run.data.metrics:
            last[k] = run.data.metrics[k]
    return tags.get(TRIAL_TAG, run.info.run_id), config, evals, last
