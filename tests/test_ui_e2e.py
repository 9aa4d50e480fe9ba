"""`tune-gpt ui` in a real browser: a finished smoke search, the UI started the way a user
starts it, the printed address loaded in headless Chromium. The rendered page must be the
search's runs table (not MLflow's GenAI "Overview") with val_loss, outcome and the tuned
knobs as columns. Needs Debian's `chromium` (.ci/run installs it); skipped without it
except in CI. Slow (a search, a server, a browser); marked e2e."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from servers import _free_port, stop_group

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1920,1080",
                  "--virtual-time-budget=15000")


def _chromium() -> str:
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                  if shutil.which(n)), None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


def _printed_url(proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = re.search(r"http://\S+/#/experiments/\S+", log.read_text())
        if found:
            return found.group(0)
        assert proc.poll() is None, f"tune-gpt ui exited:\n{log.read_text()[-2000:]}"
        time.sleep(0.5)
    raise AssertionError(f"tune-gpt ui printed no runs-table address:\n{log.read_text()}")


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                return
        except OSError:
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)


def _page_text(chromium: str, url: str) -> str:
    """The page as rendered (scripts run), reduced to its visible text."""
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                              "--dump-dom", url], capture_output=True, text=True,
                             timeout=180, check=True).stdout
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


def test_ui_opens_on_the_searchs_runs_table(tmp_path: Path, shakespeare_path: Path) -> None:
    chromium = _chromium()
    from mlflow.tracking import MlflowClient

    from tune_gpt.search import SearchOptions, run_search

    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="ui-e2e", storage_path=str(tmp_path / "runs"), report=False,
        sets=["budget.num_samples=3", "budget.tokens_per_trial=10k",
              "budget.tokens_per_eval=5k", "scheduler.type=none"]))
    client = MlflowClient(result.tracking_uri)
    exp_id = client.get_run(result.parent_run_id).info.experiment_id
    trials = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(trials) == 3
    losses = [t.data.metrics["val_loss"] for t in trials]

    # The user's command, on its own loopback port; no display, so no browser is opened
    # (and `ui` must not fail for want of one).
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    log = tmp_path / "ui.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tune_gpt.cli", "ui", "--storage-path", str(tmp_path / "runs"),
         "--port", str(port)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = _printed_url(proc, log)
        base = f"http://127.0.0.1:{port}"
        assert url.startswith(f"{base}/#/experiments/{exp_id}/runs?viewStateShareKey=")
        _wait_healthy(base, proc, log)
        text = _page_text(chromium, url)
    finally:
        stop_group(proc)  # the server we started and its workers (its own session)

    assert "matching runs" in text, f"not the runs table: {text[:1500]}"
    assert "ui-e2e" in text  # the parent run
    for column in ("val_loss", "outcome", "learning_rate", "n_embd", "batch_size"):
        assert column in text, f"no {column} column: {text[:3000]}"
    shown = [float(x) for x in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text)]
    for loss in losses:  # the UI rounds metrics for display
        assert any(abs(v - loss) < 5e-3 for v in shown), f"val_loss {loss} not shown: {text}"
