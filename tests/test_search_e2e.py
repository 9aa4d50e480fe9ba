"""End to end on the real stack: local Ray, Optuna's TPE, ASHA, a real `mlflow server`,
torch — with search_spaces/smoke.yaml. Slow (about a minute); marked e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt import trial as outcomes

from servers import mlflow_server  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_smoke_search_on_the_real_stack(tmp_path: Path, shakespeare_path: Path,
                                        mlflow_server: str, capsys, monkeypatch) -> None:  # noqa: F811
    from mlflow.tracking import MlflowClient

    from tune_gpt.search import SearchOptions, run_search
    from tune_gpt.search import run as run_mod

    sessions: list[str] = []
    real_connect = run_mod.connect_ray
    monkeypatch.setattr(run_mod, "connect_ray", lambda address, temp_dir:
                        (sessions.append(temp_dir), real_connect(address, temp_dir))[1])
    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="smoke-e2e", storage_path=str(tmp_path / "runs"), tracking_uri=mlflow_server,
        reports_dir=str(tmp_path / "reports")))
    out = capsys.readouterr().out
    assert len(sessions) == 1 and Path(sessions[0]).name.startswith("tgray-")
    assert not Path(sessions[0]).exists()  # Ray's session folder removed once the search ended

    # the live view and the final summary
    assert "search 'smoke-e2e'" in out and "best val_loss" in out and "left" in out

    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sampler"] == "tpe" and parent.data.tags["scheduler"] == "asha"
    assert "best_val_loss" in parent.data.metrics
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(children) == 6  # one nested run per trial, no duplicates
    assert len({c.data.tags["ray.trial_id"] for c in children}) == 6
    by_outcome: dict[str, list] = {}
    for c in children:
        by_outcome.setdefault(c.data.tags["outcome"], []).append(c)
        assert c.info.status in ("FINISHED", "FAILED")
        assert {"learning_rate", "batch_size", "n_embd", "max_iters"} <= set(c.data.params)
        history = client.get_metric_history(c.info.run_id, "val_loss")
        assert len(history) >= 2, "a metric series, not a single value"
        assert [m.step for m in history] == sorted(m.step for m in history)
    assert set(by_outcome) <= set(outcomes.ENDED)
    assert by_outcome.get(outcomes.STOPPED_EARLY), "ASHA stopped no trial"
    assert by_outcome.get(outcomes.COMPLETED)
    for c in by_outcome[outcomes.STOPPED_EARLY]:
        assert int(c.data.tags["stopped_at_iter"]) < int(c.data.params["max_iters"])
        assert "ASHA" in c.data.tags["stop_reason"]
    for c in by_outcome[outcomes.COMPLETED]:
        assert int(c.data.tags["stopped_at_iter"]) == int(c.data.params["max_iters"])
    best = min(children, key=lambda c: c.data.metrics.get("best_val_loss", 9e9))
    assert parent.data.tags["best_mlflow_run_id"] == best.info.run_id

    # results for the report, the Optuna study for optuna-dashboard
    folder = tmp_path / "runs" / "smoke-e2e"
    for name in ("trials.csv", "curves.csv", "meta.json"):
        assert (folder / "results" / name).is_file()
    import optuna

    study = optuna.load_study(study_name="smoke-e2e", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(study.trials) == 6
    # ASHA's stopped trials reach the sampler as PRUNED at the token steps they reached
    # (Ray's OptunaSearch alone records them COMPLETE), the finished ones as COMPLETE.
    import pandas as pd

    table = pd.read_csv(folder / "results" / "trials.csv")
    by_state = {s: [t for t in study.trials if t.state == s] for s in optuna.trial.TrialState}
    assert len(by_state[optuna.trial.TrialState.PRUNED]) == \
        int((table["outcome"] == outcomes.STOPPED_EARLY).sum()) > 0
    assert len(by_state[optuna.trial.TrialState.COMPLETE]) == \
        int((table["outcome"] == outcomes.COMPLETED).sum())
    for t in by_state[optuna.trial.TrialState.PRUNED]:
        steps = sorted(t.intermediate_values)
        assert steps[0] >= 5_000 and all(s % 1 == 0 for s in steps)  # token counts
        assert t.value == t.intermediate_values[steps[-1]]
    assert result.best is not None and result.best["best_val_loss"] < 3.3
    assert result.report is not None and result.report.is_file()

    # The best trial and the runner-up wrote a text sample from their checkpoints before
    # those were removed; the report shows both, decoded.
    import json

    samples = json.loads((folder / "results" / "samples.json").read_text(encoding="utf-8"))
    ranked = pd.read_csv(folder / "results" / "trials.csv", dtype={"trial_id": str})
    ranked = ranked[ranked["outcome"].isin(outcomes.USABLE)].sort_values("best_val_loss")
    assert samples["error"] == "" and not (folder / "checkpoints").exists()
    assert [s["trial_id"] for s in samples["samples"]] == list(ranked["trial_id"][:2])
    lines = []
    for s in samples["samples"]:
        assert s["error"] == "" and isinstance(s["text"], str) and len(s["text"]) == 300
        lines.append(s["text"].strip().splitlines()[0])
    assert "What the best trials write" in result.report.read_text(encoding="utf-8")
    assert all(line in result.report.read_text(encoding="utf-8") for line in lines)

    # Ray Tune's saved state of each ended trial holds the running statistics of the
    # metric, ASHA's time attribute and the iteration only (the driver's memory
    # per trial), and still ranks the trials as trials.csv does.
    state = json.loads(max((folder / "tune").glob("experiment_state-*.json")).read_text())
    ranked_by_ray = {}
    for _, meta in state["trial_data"]:
        meta = json.loads(meta)
        kept = meta["metric_analysis"]
        assert set(kept) <= {"val_loss", "tokens", "training_iteration"} and "tokens" in kept
        if "val_loss" in kept:
            ranked_by_ray[meta["last_result"]["trial_id"]] = kept["val_loss"]["min"]
    assert len(state["trial_data"]) == 6 and len(ranked_by_ray) >= 4
    assert min(ranked_by_ray, key=ranked_by_ray.get) == result.best["trial_id"]

    # The report is regenerated from MLflow alone once the Ray results are gone, in Chinese.
    import shutil

    from tune_gpt.report import write_report_for

    shutil.rmtree(folder)
    zh = write_report_for(result.parent_run_id, tracking_uri=mlflow_server, lang="zh",
                          out=tmp_path / "zh")
    text = zh.read_text(encoding="utf-8")
    assert "显存" in text and "过拟合" in text
    assert "最好的试验写出了什么" in text and all(line in text for line in lines)  # from MLflow
    assert f"{result.best['best_val_loss']:.3f}" in text
    assert (tmp_path / "zh" / "curves.png").stat().st_size > 10_000
    en = result.report.read_text(encoding="utf-8")
    assert "## 3." in en and "Out of memory" in en and f"{result.best['best_val_loss']:.3f}" in en


def test_failing_and_diverging_trials_do_not_sink_the_search(tmp_path: Path,
                                                             shakespeare_path: Path,
                                                             monkeypatch, capsys) -> None:
    """Through the CLI, with MLflow's embedded SQLite store: a trial that fails (float16 is
    refused on CPU) and one that diverges (absurd learning rate) are recorded with their
    outcome; the healthy one completes; exit status 0."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from tune_gpt.cli import main

    space = tmp_path / "faults.yaml"
    space.write_text("""
name: faults
params:
  learning_rate: {choice: [1.0e-3, 1000.0]}
  dtype: {choice: [float32, float16]}
fixed: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 32, batch_size: 8, grad_clip: 0.0,
        warmup_iters: 0, max_iters: 60, eval_interval: 20, eval_iters: 2, weight_decay: 0.0}
sampler: {type: grid}
scheduler: {type: none}
""")
    monkeypatch.chdir(tmp_path)
    code = main(["search", str(space), "--data", str(shakespeare_path), "--name", "faults",
                 "--no-report"])
    assert code == 0
    trials = pd.read_csv(tmp_path / "runs" / "faults" / "results" / "trials.csv")
    got = {(r.learning_rate, r.dtype): r.outcome for r in trials.itertuples()}
    assert got[(1e-3, "float32")] == outcomes.COMPLETED
    assert got[(1000.0, "float32")] == outcomes.DIVERGED
    assert got[(1e-3, "float16")] == outcomes.FAILED
    assert got[(1000.0, "float16")] == outcomes.FAILED
    failed = trials[trials.outcome == outcomes.FAILED]
    assert failed["error"].str.contains("float16").all()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tune-gpt-faults")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and len(runs) == 5
    assert sorted(c.data.tags["outcome"] for c in children) == sorted(got.values())
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"



def test_metric_train_loss_and_confirm_runs(tmp_path: Path, shakespeare_path: Path,
                                            capsys) -> None:
    """metric: train_loss: ASHA/Optuna compare train_loss, and the best trial, the summary,
    the MLflow parent and meta.json follow it (they used to stay on val_loss). With
    confirm, the top 2 configs train again on two new seeds each, as MLflow runs tagged
    confirm_of, and meta.json / the summary say whether the winner is real."""
    import json

    import optuna
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from tune_gpt.search import SearchOptions, run_search

    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="by-train", storage_path=str(tmp_path / "runs"), report=False,
        sets=["metric=train_loss", "budget.num_samples=3", "budget.tokens_per_trial=20k",
              "scheduler.type=none", "confirm.top_k=2", "confirm.seeds=2"]))
    out = capsys.readouterr().out
    folder = tmp_path / "runs" / "by-train"
    trials = pd.read_csv(folder / "results" / "trials.csv", dtype={"trial_id": str})
    winner = trials.loc[trials["best_train_loss"].idxmin()]
    assert result.best["metric"] == "train_loss"
    assert result.best["trial_id"] == winner["trial_id"]
    assert result.best["value"] == pytest.approx(winner["best_train_loss"])
    assert f"best train_loss: {winner['best_train_loss']:.4f}" in out
    meta = json.loads((folder / "results" / "meta.json").read_text())
    assert meta["metric"] == "train_loss" and meta["best"]["trial_id"] == winner["trial_id"]
    parent = MlflowClient(result.tracking_uri).get_run(result.parent_run_id)
    assert parent.data.metrics["best_train_loss"] == pytest.approx(winner["best_train_loss"])
    assert parent.data.tags["metric"] == "train_loss"
    # the sampler was told each trial's last train_loss
    study = optuna.load_study(study_name="by-train", storage=f"sqlite:///{folder / 'optuna.db'}")
    told = sorted(round(t.value, 6) for t in study.trials)
    assert told == sorted(round(v, 6) for v in trials["final_train_loss"])

    # confirm: 2 configs x 2 new seeds, nested under the parent, linked to their trial
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([parent.info.experiment_id],
                              f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    confirms = [r for r in runs if "confirm_of" in r.data.tags]
    assert len(runs) == 7 and len(confirms) == 4
    top2 = list(trials.sort_values("best_train_loss")["trial_id"][:2])
    assert sorted(r.data.tags["confirm_of"] for r in confirms) == sorted(top2 * 2)
    for r in confirms:
        assert int(r.data.params["seed"]) != int(trials["seed"].iloc[0])
        assert r.data.tags["outcome"] == outcomes.COMPLETED
    c = meta["confirm"]
    assert [x["trial_id"] for x in c["configs"]] == top2 and c["metric"] == "train_loss"
    # the re-runs only: the search's own run of a config was picked for being good
    assert all(x["n"] == 2 and len(x["values"]) == 2 for x in c["configs"])
    assert c["dof"] == 2 and c["winner_is_real"] in (True, False) and c["noise"] > 0
    assert "confirmed winner" in out
    assert (folder / "results" / "confirm.csv").is_file()
    assert parent.data.tags["confirm_winner"] == c["winner"]


def test_flops_rungs_and_flops_budget_on_the_real_stack(tmp_path: Path,
                                                       shakespeare_path: Path) -> None:
    """ASHA's rungs and the search's budget counted in training FLOPs (6N + 12LCT per
    token): the search stops once its trials together spent budget.total_flops, and the
    sampler's intermediate values are at FLOP steps."""
    import optuna
    import pandas as pd

    from tune_gpt.search import SearchOptions, run_search

    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="flops", storage_path=str(tmp_path / "runs"), report=False, quiet=True,
        sets=["scheduler.time_attr=flops", "scheduler.grace_period=4e9",
              "budget.total_flops=6e10", "budget.num_samples=20",
              "budget.max_concurrent_trials=2"]))
    folder = tmp_path / "runs" / "flops"
    curves = {}
    for f in (folder / "tune").glob("*/progress.csv"):
        df = pd.read_csv(f)
        curves[str(df["trial_id"].iloc[0])] = df
    spent = sum(float(df["flops"].max()) for df in curves.values())
    assert len(curves) < 20, "the FLOP budget ended the search"
    assert 6e10 <= spent < 6e10 * 1.6  # overshoot: at most one eval per running trial
    for df in curves.values():
        fpt = float(df["flops_per_token"].iloc[0])
        assert (df["flops"] == df["tokens"] * fpt).all()
    study = optuna.load_study(study_name="flops", storage=f"sqlite:///{folder / 'optuna.db'}")
    measured = [t for t in study.trials if t.intermediate_values]
    assert measured and all(min(t.intermediate_values) > 1e8 for t in measured)  # FLOP steps
    # every trial ended completed or stopped (one the budget stopped before its first report
    # has no progress.csv, so the trials table, not the progress files, is the count)
    trials = pd.read_csv(folder / "results" / "trials.csv")
    assert result.counts["completed"] + result.counts["stopped_early"] == len(trials)
    assert len(curves) <= len(trials)
