"""`tune-gpt plan --measure`: the chosen config trained to 1/4, 1/2 and 1x its trial's tokens,
each a finished run scored on the whole validation split, and the loss predicted from them
(tune_gpt.measure) instead of from the search's mid-schedule curves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tune_gpt import measure
from tune_gpt.config import TrainConfig

DATA = os.environ.get("TUNE_GPT_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared"
                                                / "data" / "shakespeare_char" / "input.txt"))


def test_the_fit_recovers_the_data_term_and_says_how_much_noise_it_carries() -> None:
    E, A, a = 1.25, 60.0, measure.FINISHED_ALPHA
    pts = [(t, E + A * t ** -a) for t in (250_000, 500_000, 1_000_000)]
    got = measure.finished_predict(pts, 8_000_000)
    assert got.loss == pytest.approx(E + A * 8e6 ** -a, abs=1e-9) and not got.saturated
    assert got.alpha == pytest.approx(a, abs=0.01)
    # reading within the points barely amplifies their noise; 8x past them does
    near = measure.finished_predict(pts, 1_000_000)
    assert near.noise_x < 1 < got.noise_x < 3
    with pytest.raises(ValueError):
        measure.finished_predict([(1e6, 1.8)], 8e6)


def test_a_curve_that_bends_like_running_out_of_data_predicts_no_further_gain() -> None:
    """Licenses' finished runs fall 0.45 then 0.21 nats a doubling: an exponent of ~1, three
    times the data term's, and the runs past them gained 0.02-0.05, not the ~0.25 the fixed
    exponent promised. Such a curve is predicted flat past its last run."""
    pts = [(250_368, 2.3061), (500_736, 1.8608), (1_000_704, 1.6483)]
    got = measure.finished_predict(pts, 3_907_556)
    assert got.saturated and got.alpha > measure.SATURATED_ALPHA
    assert got.loss == 1.6483 and "running out" in got.why()
    fixed = sum(w * v for w, (_, v) in zip(measure.finished_weights(
        [t for t, _ in pts], 3_907_556), pts))
    assert fixed < 1.4  # what the data term alone would have promised
    # the rule's doubt is its measured misses on the development corpora
    assert measure.FINISHED_SD == pytest.approx(
        (sum(e * e for e in measure.CHECK_ERRORS) / len(measure.CHECK_ERRORS)) ** 0.5)
    assert max(abs(e) for e in measure.CHECK_ERRORS) < 0.05 and measure.FINISHED_DOF >= 3


def _search(folder: Path, data: str) -> None:
    """A finished search of one tiny config (40 iterations of 128 tokens), its curve a
    made-up mid-schedule one."""
    res = folder / "runs" / "s" / "results"
    res.mkdir(parents=True)
    knobs = {**TrainConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=4,
                           learning_rate=3e-3, min_lr=3e-4, max_iters=40, lr_decay_iters=40,
                           warmup_iters=4, eval_iters=4).to_dict(), "dataset": data}
    pts = [(k * 1280, 3.6 - 0.1 * k) for k in range(1, 5)]
    pd.DataFrame([{"trial_id": "t1", "outcome": "completed", **knobs, "best_val_loss": 3.2,
                   "final_val_loss": 3.2, "tokens": 5120, "tokens_per_iter": 128,
                   "wall_s": 10}]).to_csv(res / "trials.csv", index=False)
    pd.DataFrame([{"trial_id": "t1", "iter": t // 128, "tokens": t, "val_loss": v,
                   "train_loss": v} for t, v in pts]).to_csv(res / "curves.csv", index=False)
    (res / "meta.json").write_text(json.dumps({"name": "s", "metric": "val_loss"}))


def _plan(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tune_gpt.cli", "plan", "s", "--tokens",
                           "20480", "--storage-path", str(tmp_path / "runs"), "--out",
                           str(tmp_path / "out"), "--json", *extra],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)


def test_plan_measure_trains_finished_runs_and_predicts_from_them(tmp_path: Path) -> None:
    if not Path(DATA).is_file():
        pytest.fail(f"no test corpus at {DATA}: set TUNE_GPT_TEST_DATA")
    _search(tmp_path, DATA)
    plain = _plan(tmp_path)
    assert plain.returncode == 0, plain.stderr
    proc = _plan(tmp_path, "--measure")
    assert proc.returncode == 0, proc.stderr
    p, before = json.loads(proc.stdout), json.loads(plain.stdout)
    runs = tmp_path / "out" / "measure-t1"
    cells = [json.loads((runs / f"f{f:g}.json").read_text()) for f in measure.FRACTIONS]
    assert [c["tokens"] for c in cells] == [1280, 2560, 5120]
    assert all((runs / f"f{f:g}" / "ckpt.pt").is_file() for f in measure.FRACTIONS)
    want = measure.finished_predict([(c["tokens"], c["val_loss"]) for c in cells], 20480).loss
    assert p["predicted"] == pytest.approx(want)
    assert p["predicted"] != pytest.approx(before["predicted"])
    assert p["interval"][0] < p["predicted"] < p["interval"][1]
    assert any("finished runs of this config" in e for e in p["evidence"])
    assert not any("brought to" in e for e in p["evidence"])
    assert "for the rule" in p["noise"]
    # the config and learning rate are the plan's either way: --measure only predicts
    assert p["config"] == before["config"] and p["learning_rate"] == before["learning_rate"]
    # asked again, nothing is trained again
    stamps = {f: (runs / f"f{f:g}.json").stat().st_mtime_ns for f in measure.FRACTIONS}
    again = _plan(tmp_path, "--measure")
    assert again.returncode == 0 and json.loads(again.stdout)["predicted"] == p["predicted"]
    assert stamps == {f: (runs / f"f{f:g}.json").stat().st_mtime_ns for f in measure.FRACTIONS}
    assert "(kept)" in again.stderr


def test_plan_measure_without_the_searchs_data_is_one_line(tmp_path: Path) -> None:
    _search(tmp_path, str(tmp_path / "moved" / "input.txt"))
    proc = _plan(tmp_path, "--measure")
    assert proc.returncode == 2 and not proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not there" in lines[-1] and "--data" in lines[-1]
    assert not (tmp_path / "out" / "measure-t1" / "f0.25.json").exists()
