"""benchmarks/budget_best.py without training anything: the summary's paired differences
from synthetic cells, the FLOPs -> iterations of the recipe and the prior against
estimate(), the one-line error of a search without a final phase, and which `tune-gpt`
commands a cell (or a cell cut short) runs. The real run is a benchmark, not a test."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import budget_best as bb  # noqa: E402
from benchmarks.common import arms  # noqa: E402

VOCAB = 65
FLOPS = 3.7e13      # about what a quickstart search trains


def _cell(seed: int, search: float, recipe: float, prior: float) -> dict[str, Any]:
    return {"seed": seed, "search": search, "recipe": recipe, "prior": prior, "flops": FLOPS,
            "wall_s": {"search": 840.0, "recipe": 700.0, "prior": 900.0},
            "tokens": {"search": None, "recipe": 1000, "prior": 800}}


def _per_iter(knobs: dict[str, Any]) -> int:
    from tune_gpt.config import TrainConfig
    from tune_gpt.estimate import estimate

    cfg = TrainConfig(**knobs)
    return estimate(cfg, VOCAB).flops_per_token * cfg.tokens_per_iter()


# ----------------------------------------------------------------------------- summary maths

def test_paired_mean_and_standard_error_from_synthetic_cells() -> None:
    cells = [_cell(0, 1.60, 1.70, 1.65), _cell(1, 1.62, 1.69, 1.61), _cell(2, 1.58, 1.75, 1.66)]
    s = bb.summarize(cells, "input.txt")
    for other in ("recipe", "prior"):
        d = [c["search"] - c[other] for c in cells]
        got = s["summary"][f"search_minus_{other}"]
        assert got["n"] == 3
        assert got["mean"] == pytest.approx(statistics.fmean(d))
        assert got["se"] == pytest.approx(statistics.stdev(d) / math.sqrt(3))
    assert s["data"] == "input.txt" and [c["seed"] for c in s["seeds"]] == [0, 1, 2]


def test_one_seed_has_no_standard_error_and_the_json_has_no_nan(tmp_path: Path) -> None:
    s = bb.summarize([_cell(4, 1.6, 1.7, float("nan"))], "d")
    assert s["summary"]["search_minus_recipe"] == {"mean": pytest.approx(-0.1), "se": None,
                                                   "n": 1}
    # a loss that is not a number is left out of the pairs, and written as null
    assert s["summary"]["search_minus_prior"] == {"mean": None, "se": None, "n": 0}
    text = json.dumps(s, allow_nan=False)
    assert json.loads(text)["seeds"][0]["prior"] is None
    assert bb.markdown(s).startswith("# ")


# ----------------------------------------------------------------------------- FLOPs -> iterations

def test_recipe_trains_the_search_flops_as_estimate_counts_them() -> None:
    knobs = bb.recipe_knobs(7, FLOPS, VOCAB)
    per_iter = _per_iter(knobs)
    assert abs(knobs["max_iters"] * per_iter - FLOPS) <= per_iter / 2
    assert {k: knobs[k] for k in bb.RECIPE} == bb.RECIPE | {"warmup_iters": 100}
    assert (knobs["n_layer"], knobs["n_embd"], knobs["batch_size"]) == (4, 128, 12)
    assert knobs["seed"] == 7 and knobs["lr_decay_iters"] == knobs["max_iters"]
    assert knobs["eval_interval"] == knobs["max_iters"] // 40 and knobs["eval_iters"] == 20
    assert 38 <= knobs["max_iters"] // knobs["eval_interval"] <= 42


def test_prior_keeps_its_knobs_and_trains_the_same_flops() -> None:
    prior = {"n_layer": 4, "n_head": 4, "n_embd": 192, "block_size": 64, "batch_size": 12,
             "learning_rate": 2.5e-3, "min_lr": 1e-3, "max_iters": 2604, "lr_decay_iters": 2604,
             "eval_interval": 326, "warmup_iters": 100, "weight_decay": 0.1, "seed": 99,
             "dataset": "/somewhere/else.txt", "out_dir": "/tmp/trial", "device": "cpu",
             "trial_id": "abc"}    # not a knob: left out
    knobs = bb.prior_knobs(prior, 3, FLOPS, VOCAB)
    per_iter = _per_iter(knobs)
    assert abs(knobs["max_iters"] * per_iter - FLOPS) <= per_iter / 2
    assert knobs["max_iters"] != 2604 and knobs["lr_decay_iters"] == knobs["max_iters"]
    assert knobs["min_lr"] == pytest.approx(2.5e-4) and knobs["seed"] == 3
    assert knobs["eval_interval"] == knobs["max_iters"] // 40
    assert (knobs["n_embd"], knobs["learning_rate"], knobs["device"]) == (192, 2.5e-3, "cpu")
    assert not {"dataset", "out_dir", "trial_id"} & set(knobs)
    # the same FLOPs buy the wider prior fewer iterations than the recipe
    assert knobs["max_iters"] < bb.recipe_knobs(3, FLOPS, VOCAB)["max_iters"]


def test_a_tiny_budget_caps_warmup_at_a_tenth_of_the_run() -> None:
    knobs = bb.recipe_knobs(0, 200 * _per_iter(bb.recipe_knobs(0, FLOPS, VOCAB)), VOCAB, 10, 4)
    assert knobs["max_iters"] == 200 and knobs["warmup_iters"] == 20
    assert knobs["eval_interval"] == 20 and knobs["eval_iters"] == 4


# ----------------------------------------------------------------------------- the search arm

def _finished_search(work: Path, seed: int, meta: dict[str, Any]) -> Path:
    folder = work / "runs" / f"bb-seed-{seed}"
    (folder / "results").mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"name": folder.name, "finished": True}))
    (folder / "results" / "meta.json").write_text(json.dumps(meta))
    return folder


def test_a_search_without_a_final_phase_fails_the_cell_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(arms.ArmFailed, match="no final phase: add `final:` to the space"):
        bb.read_final(_finished_search(tmp_path / "a", 0, {"best": {}}) / "results" /
                      "meta.json")
    with pytest.raises(arms.ArmFailed, match="records no flops_total"):
        bb.read_final(_finished_search(tmp_path / "b", 0, {"final": {
            "checkpoint": "x.pt", "wall_s_total": 1.0, "prior_config": {}}}) / "results" /
            "meta.json")
    # a space that asked for a final phase which then trained nothing: said as such
    folder = _finished_search(tmp_path / "c", 0, {"final": None})
    (folder / "space.yaml").write_text("name: beginner\nfinal:\n  explore_share: 0.5\n")
    with pytest.raises(arms.ArmFailed, match="final phase trained no model"):
        bb.read_final(folder / "results" / "meta.json")
    # through the command line: no figures invented, no cell written, exit status 1
    data = tmp_path / "input.txt"
    data.write_text("hello world\n" * 100)
    out = tmp_path / "out"
    _finished_search(out / "work" / "seed_5", 5, {"best": {}})
    rc = bb.main(["--data", str(data), "--seeds", "5", "--out", str(out)])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert rc == 1 and err == ["error: seed 5: " + bb.NO_FINAL]
    assert not (out / "cells" / "seed_5.json").exists()
    assert json.loads((out / "summary.json").read_text())["seeds"] == []


def test_which_search_command_a_cell_runs(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def fake_run(cmd: list[str], log: Path, cwd: Path) -> None:
        ran.append(cmd)

    monkeypatch.setattr(bb, "run_logged", fake_run)
    monkeypatch.setattr(bb, "flags_of", lambda command, wanted: {"--quiet"})
    with pytest.raises(arms.ArmFailed, match="wrote no"):
        bb.search_arm(7, "/s/beginner.yaml", "/d/input.txt", tmp_path / "new", bb.QUICK_SETS)
    cmd = ran.pop()
    assert cmd[cmd.index("search"):cmd.index("search") + 2] == ["search", "/s/beginner.yaml"]
    for flag, value in (("--seed", "7"), ("--name", "bb-seed-7"), ("--data", "/d/input.txt"),
                        ("--storage-path", str(tmp_path / "new" / "runs"))):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--quiet" in cmd and "--reports-dir" not in cmd
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"] == bb.QUICK_SETS
    # cut short while searching: resumed, never started again
    folder = tmp_path / "cut" / "runs" / "bb-seed-7"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"name": "bb-seed-7", "finished": False}))
    with pytest.raises(arms.ArmFailed):
        bb.search_arm(7, "/s/beginner.yaml", "/d/input.txt", tmp_path / "cut", [])
    cmd = ran.pop()
    assert cmd[cmd.index("resume"):] == ["resume", "bb-seed-7", "--storage-path",
                                         str(tmp_path / "cut" / "runs")]


def test_a_finished_search_is_scored_from_its_final_phase(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _finished_search(tmp_path, 2, {"final": {
        "checkpoint": "final/ckpt.pt", "flops_total": FLOPS, "wall_s_total": 830.5,
        "prior_config": {"n_layer": 4, "n_embd": 192}, "tokens": 3e6,
        "explore": {"tokens": 9e6}}})
    (folder / "final").mkdir()
    (folder / "final" / "ckpt.pt").write_bytes(b"x")
    monkeypatch.setattr(bb, "run_logged", lambda *a: pytest.fail("a finished search reran"))
    scored: list[Path] = []
    monkeypatch.setattr(bb, "score", lambda ckpt, *a: scored.append(ckpt) or
                        {"val_loss": 1.61, "tokens": 111_539})
    arm = bb.search_arm(2, "s.yaml", "d.txt", tmp_path, [])
    assert scored == [folder / "final" / "ckpt.pt"]
    assert (arm["val_loss"], arm["flops"], arm["wall_s"]) == (1.61, FLOPS, 830.5)
    assert arm["tokens"] == 12e6 and arm["prior_config"] == {"n_layer": 4, "n_embd": 192}
    # saved: a resumed cell does not score it again
    monkeypatch.setattr(bb, "score", lambda *a: pytest.fail("scored twice"))
    assert bb.search_arm(2, "s.yaml", "d.txt", tmp_path, [])["val_loss"] == 1.61


def test_a_searched_model_with_a_longer_block_is_also_read_in_the_recipes_windows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe reads 64-token windows; a block-128 final model is scored both ways, so
    search - recipe can be told apart from what the longer context alone buys."""
    contexts: list[int | None] = []

    def fake_score(ckpt: Path, data: str, log: Path, cwd: Path, context: int | None = None
                   ) -> dict[str, Any]:
        contexts.append(context)
        return {"val_loss": 1.50 if context is None else 1.52, "tokens": 10}

    monkeypatch.setattr(bb, "score", fake_score)
    monkeypatch.setattr(bb, "run_logged", lambda *a: pytest.fail("a finished search reran"))
    for seed, block, want in ((3, 128, 1.52), (4, 64, 1.50)):
        folder = _finished_search(tmp_path / f"w{seed}", seed, {"final": {
            "checkpoint": "ckpt.pt", "flops_total": FLOPS, "wall_s_total": 1.0,
            "prior_config": {}, "config": {"block_size": block}}})
        (folder / "ckpt.pt").write_bytes(b"x")
        contexts.clear()
        arm = bb.search_arm(seed, "s.yaml", "d.txt", tmp_path / f"w{seed}", [])
        assert contexts == ([None, 64] if block > 64 else [None])
        assert (arm["val_loss"], arm["val_loss_at_recipe_context"]) == (1.50, want)
    cells = [{**_cell(0, 1.50, 1.53, 1.6), bb.AT_CONTEXT: 1.52},
             {**_cell(1, 1.49, 1.51, 1.6), bb.AT_CONTEXT: 1.50}, _cell(2, 1.5, 1.6, 1.6)]
    s = bb.summarize(cells, "d")
    got = s["summary"]["search_at_recipe_context_minus_recipe"]
    assert got["n"] == 2 and got["mean"] == pytest.approx(-0.01)
    assert "| 0 | 1.5000 | 1.5200 | 1.5300 |" in bb.markdown(s)


# ----------------------------------------------------------------------------- the training arms

def test_a_training_cut_short_is_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(bb, "run_logged", lambda cmd, log, cwd: ran.append(cmd))
    monkeypatch.setattr(bb, "score", lambda *a: {"val_loss": 1.7, "tokens": 10})
    knobs = bb.recipe_knobs(1, FLOPS, VOCAB)
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "last.pt").write_bytes(b"x")
    arm = bb.train_arm("recipe", knobs, "/d/input.txt", tmp_path)
    (cmd,) = ran
    assert cmd[cmd.index("train"):] == ["train", str(tmp_path / "recipe" / "config.yaml"),
                                        "--data", "/d/input.txt", "--threads", "2", "--resume"]
    import yaml

    written = yaml.safe_load((tmp_path / "recipe" / "config.yaml").read_text())
    assert written == {**knobs, "out_dir": str(tmp_path / "recipe")}
    assert arm["val_loss"] == 1.7 and arm["config"] == knobs


def test_an_attempt_cut_short_counts_until_its_last_saved_state(tmp_path: Path) -> None:
    clock, progress = tmp_path / "clock.json", tmp_path / "last.pt"
    t0 = time.time() - 100
    clock.write_text(json.dumps({"attempts": [[t0, t0 + 10], [t0 + 20, None]]}))
    progress.write_bytes(b"x")
    os.utime(progress, (t0 + 50, t0 + 50))   # the attempt cut short last saved 30 s after it began
    wall = arms.timed(clock, progress, lambda: None)
    assert 40.0 <= wall < 41.0
    assert all(end is not None for _, end in json.loads(clock.read_text())["attempts"])


def test_saved_cells_are_skipped_and_summarised(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "input.txt"
    data.write_text("hello\n")
    out = tmp_path / "out"
    for c in (_cell(0, 1.6, 1.7, 1.65), _cell(1, 1.7, 1.7, 1.6)):
        (out / "cells").mkdir(parents=True, exist_ok=True)
        (out / "cells" / f"seed_{c['seed']}.json").write_text(json.dumps(c))
    rc = bb.main(["--data", str(data), "--seeds", "0", "1", "--out", str(out), "--json",
                  str(tmp_path / "s.json")])
    said = capsys.readouterr().out.splitlines()
    assert rc == 0 and sum(x.startswith("seed ") and x.endswith(", skipped") for x in said) == 2
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["data"] == str(data) and [c["seed"] for c in s["seeds"]] == [0, 1]
    assert s["summary"]["search_minus_recipe"]["mean"] == pytest.approx(-0.05)
    assert s["summary"]["search_minus_prior"]["se"] == pytest.approx(0.075)
    assert (tmp_path / "s.md").read_text().startswith("# ")
    assert json.loads((out / "summary.json").read_text()) == s
