"""Searches on nanoGPT data folders, end to end through `tune-gpt search` (local Ray,
Optuna, ASHA, embedded MLflow, torch): the char-level folder nanoGPT's prepare.py wrote,
shipped to the trials through Ray's object store, and a BPE folder read where it lies
(the route of data too big to ship), with the driver asking every node first."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tune_gpt.cli import main
from tune_gpt.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")
pytestmark = pytest.mark.e2e


def _search(tmp_path: Path, data: Path, name: str, *sets: str) -> None:
    code = main(["search", SMOKE, "--data", str(data), "--name", name,
                 "--storage-path", str(tmp_path / "runs"), "--set", "budget.num_samples=2",
                 "--set", "sampler.n_startup_trials=2", *[a for s in sets for a in ("--set", s)]])
    assert code == 0


def test_search_on_nanogpts_own_folder(tmp_path: Path, nanogpt_char: Path, shakespeare,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    from mlflow.tracking import MlflowClient

    from tune_gpt.data import prepare

    folder = nanogpt_char
    monkeypatch.chdir(tmp_path)  # the report goes to ./reports
    _search(tmp_path, folder, "folder-e2e")
    out = capsys.readouterr().out
    # the data doctor before the search
    assert f"data set nanogpt_shakespeare_char ({folder.resolve()})" in out
    assert "tokenizer char, vocab 65" in out and "60,000 tokens = 0.06 epochs" in out

    results = tmp_path / "runs" / "folder-e2e" / "results"
    meta = json.loads((results / "meta.json").read_text())
    assert meta["counts"]["completed"] + meta["counts"]["stopped_early"] == 2
    assert meta["data_doctor"]["n_train"] == shakespeare.n_train
    assert meta["data_doctor"]["tokenizer"] == "char"
    import pandas as pd

    trials = pd.read_csv(results / "trials.csv")
    assert trials["best_val_loss"].notna().all() and (trials["best_val_loss"] < 4.2).all()

    # the data's identity (of the folder, not of 1 MB of text) keys MLflow
    client = MlflowClient(tracking_uri=meta["tracking_uri"])
    parent = client.get_run(meta["mlflow_parent_run_id"])
    identity = prepare(str(folder)).sha256
    assert parent.data.params["data.identity"] == identity == parent.data.tags["dataset_sha256"]
    assert parent.data.params["data.vocab_size"] == "65"
    assert parent.data.params["data.train_tokens"] == str(shakespeare.n_train)
    assert parent.data.tags["dataset"] == str(folder.resolve())

    report = (tmp_path / "reports" / "folder-e2e" / "report.md").read_text()
    assert "Data: char tokens, vocab 65; 1,003,854 training and 111,540 validation tokens" \
        in report
    assert "4.174 for guessing uniformly" in report and "60,000 tokens = 0.06 epochs" in report


def test_search_on_a_bpe_folder_read_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    from tune_gpt.data import folder as folder_mod

    owt = tmp_path / "openwebtext"
    owt.mkdir()
    rng = np.random.default_rng(0)
    rng.integers(0, 50257, 30_000, dtype=np.uint16).tofile(owt / "train.bin")
    rng.integers(0, 50257, 6_000, dtype=np.uint16).tofile(owt / "val.bin")
    # "too big to ship" = over 1 kB here: the trials read the folder where it lies
    monkeypatch.setattr(folder_mod, "SHIP_LIMIT_BYTES", 1_000)
    monkeypatch.chdir(tmp_path)
    _search(tmp_path, owt, "bpe-e2e", "budget.tokens_per_trial=6k", "budget.tokens_per_eval=2k",
            "scheduler.grace_period=2k")
    out = capsys.readouterr().out
    assert "tokenizer gpt2, vocab 50,304" in out
    assert "6,000 tokens = 0.20 epochs" in out
    meta = json.loads((tmp_path / "runs" / "bpe-e2e" / "results" / "meta.json").read_text())
    assert meta["counts"]["completed"] + meta["counts"]["stopped_early"] == 2
    assert meta["data_doctor"]["vocab_size"] == 50304


def test_the_driver_names_a_node_that_lacks_the_data(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from tune_gpt.data import folder as folder_mod
    from tune_gpt.data import prepare
    from tune_gpt.search.nodes import check_nodes_see

    owt = tmp_path / "owt"
    owt.mkdir()
    np.arange(4_000, dtype=np.uint16).tofile(owt / "train.bin")
    np.arange(1_000, dtype=np.uint16).tofile(owt / "val.bin")
    data = prepare(str(owt))
    temp = tempfile.mkdtemp(prefix="tgray-")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    try:
        assert check_nodes_see(data) == 0  # small: shipped, nothing to ask
        monkeypatch.setattr(folder_mod, "SHIP_LIMIT_BYTES", 1_000)
        assert check_nodes_see(data) == 1  # the one node sees it
        elsewhere = dataclasses.replace(data, source=str(tmp_path / "not-on-this-node"))
        with pytest.raises(UserError, match=r"1 of 1 node\(s\) cannot: node [\d.]+ \(\w+\): no "
                                            r"data folder at .*not-on-this-node; put the same"):
            check_nodes_see(elsewhere)
        changed = dataclasses.replace(data, sha256="f" * 64)
        with pytest.raises(UserError, match=r"the data at .*owt differs from the driver's"):
            check_nodes_see(changed)
        # a space that needs a GPU per trial, on a cluster without one: refused, not pending
        from tune_gpt.search.nodes import check_cluster_gpus
        from tune_gpt.space import load_space

        gpt2 = load_space(ROOT / "search_spaces" / "gpt2_small.yaml")
        with pytest.raises(UserError, match=r"each trial needs 1 GPU, but no node of the Ray "
                                            r"cluster at 127.0.0.1:6379 has that many"):
            check_cluster_gpus(gpt2, "127.0.0.1:6379")
        check_cluster_gpus(load_space(SMOKE), None)  # no GPU asked: nothing to check
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
