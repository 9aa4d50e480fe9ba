"""The replay (benchmarks/common/replay/): snapping, the metrics, the simulator's controller
protocol, the CLI (both scripts that run it), and (e2e) the simulator against a real Ray Tune
run of the same searcher and scheduler."""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common.efficiency import GRACE_PERIOD, MANUAL_RUNS, manual_plan  # noqa: E402
from benchmarks.common.replay import methods, report, simulator  # noqa: E402
from benchmarks.common.replay.table import (  # noqa: E402
    GRID,
    GRID_SIZE,
    METRIC,
    MODE,
    PENALTY,
    Table,
)
from ray.tune.search import Searcher  # noqa: E402

TPI = 12 * 64                        # tokens per iteration at batch 12, block 64
EVAL_TOKENS = [min(163 * k, 2605) * TPI for k in range(1, 17)]   # record_curves' spacing


def _loss(lr: float, n_layer: int, n_embd: int, k: int) -> float:
    """A made-up curve: lr 1e-3 best, bigger models lower, falling with evaluations."""
    lr_pen = 0.15 * math.log10(lr / 1e-3) ** 2
    return round(1.5 + lr_pen + 0.1 * (6 - n_layer) / 4 + 0.1 * (192 - n_embd) / 128
                 + 1.2 / math.sqrt(k), 5)


def grid_line(batch: int, lr: float, n_layer: int, n_embd: int,
              diverge_at: int | None = None, n_points: int = 16) -> dict[str, Any]:
    pts = []
    for k in range(1, n_points + 1):
        tok = EVAL_TOKENS[k - 1] * batch // 12
        if diverge_at is not None and k == diverge_at:
            pts.append([tok, float("nan"), float("nan"), 10.0 * k * n_layer])
            break
        v = _loss(lr, n_layer, n_embd, k)
        pts.append([tok, v, v - 0.02, 10.0 * k * n_layer])
    cfg = {"batch_size": batch, "learning_rate": lr, "n_layer": n_layer, "n_embd": n_embd,
           "block_size": 64}
    return {"key": f"grid:b{batch}:lr{lr:.3g}:{n_layer}x{n_embd}", "kind": "grid",
            "config": cfg, "n_params": 1000 * n_layer * n_embd,
            "flops_per_token": 6000.0 * n_layer * n_embd, "tokens": pts[-1][0],
            "diverged": diverge_at is not None, "wall_s": pts[-1][3], "points": pts}


def manual_line(i: int, losses: list[float], tokens_each: int) -> dict[str, Any]:
    pts = [[tokens_each * (j + 1) // len(losses), v, v, 5.0 * (j + 1)]
           for j, v in enumerate(losses)]
    cfg = {"batch_size": 12, "learning_rate": 1e-3, "n_layer": 4, "n_embd": 128,
           "max_iters": 2000 + i, "block_size": 64}
    return {"key": f"manual:{i}", "kind": "manual", "config": cfg, "n_params": 1,
            "flops_per_token": 1.0, "tokens": tokens_each, "diverged": False, "wall_s": 1.0,
            "points": pts}


def write_table(path: Path, lines: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail)
    return path


FULL = {"batch_size": [12, 32], "learning_rate": [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2],
        "n_layer": [2, 4, 6], "n_embd": [64, 128, 192]}
MANUAL = [manual_line(0, [2.5, 2.1, 1.95], 3_000_000),
          manual_line(1, [2.4, 1.9, 1.80], 3_000_000),   # the target: 1.80
          manual_line(2, [2.6, 2.3, 2.20], 3_000_000)]


def full_table() -> Table:
    lines = [grid_line(*c) for c in itertools.product(*FULL.values())]
    return Table(lines + MANUAL)


# ----------------------------------------------------------------------------- snapping

def test_snap_goes_to_the_nearest_recorded_config() -> None:
    t = full_table()
    snap = lambda **kw: t.snap({"batch_size": 12, "learning_rate": 1e-3, "n_layer": 4,  # noqa
                                "n_embd": 128, **kw}).knobs
    assert snap() == {"batch_size": 12, "learning_rate": 1e-3, "n_layer": 4, "n_embd": 128}
    # learning rate on a log scale: the geometric midpoint of 1e-4 and 3.16e-4 is 1.78e-4
    assert snap(learning_rate=1.7e-4)["learning_rate"] == 1e-4
    assert snap(learning_rate=1.9e-4)["learning_rate"] == 3.16e-4
    assert snap(learning_rate=9.9e-3)["learning_rate"] == 1e-2
    assert snap(batch_size=16)["batch_size"] == 12       # log(16/12) < log(32/16)
    assert snap(batch_size=64)["batch_size"] == 32
    assert snap(n_layer=3)["n_layer"] == 2               # ties go to the smaller value
    assert snap(n_layer=5)["n_layer"] == 4
    assert snap(n_layer=6, n_embd=192) == {"batch_size": 12, "learning_rate": 1e-3,
                                           "n_layer": 6, "n_embd": 192}


def test_snap_on_a_partial_table_uses_only_configs_present() -> None:
    lines = [grid_line(12, lr, nl, 64)
             for lr, nl in itertools.product([3.16e-4, 1e-3, 3.16e-3], [2, 4])
             if (lr, nl) != (1e-3, 4)]
    t = Table(lines + MANUAL)
    assert len(t.grid) == 5 and len(t.manual) == 3
    got = t.snap({"batch_size": 64, "learning_rate": 1e-3, "n_layer": 4, "n_embd": 192}).knobs
    # batch 12 and width 64 are all there is; (1e-3, 4) is missing: half a decade of
    # learning rate (1/4 of its range) is nearer than 2 layers (1/2 of theirs), and
    # 3.16e-3 is a hair nearer to 1e-3 than 3.16e-4 is
    assert got == {"batch_size": 12, "learning_rate": 3.16e-3, "n_layer": 4, "n_embd": 64}


def test_coarseness_of_the_full_grid() -> None:
    c = full_table().coarseness(n=20_000)
    lr = c["learning_rate"]
    assert lr["unit"] == "factor"
    assert lr["max"] == pytest.approx(math.sqrt(1e-3 / 3.16e-4), rel=0.01)   # ~1.78
    assert lr["median"] == pytest.approx(10 ** 0.125, rel=0.02)              # ~1.33
    assert c["batch_size"]["max"] == pytest.approx(2.0)                      # 64 -> 32
    assert c["batch_size"]["exact_share"] == pytest.approx(0.5, abs=0.02)    # 12, 32
    assert c["n_layer"]["max"] == 1 and c["n_layer"]["exact_share"] == pytest.approx(0.6,
                                                                                   abs=0.02)
    assert c["n_embd"]["max"] == 0 and c["n_embd"]["exact_share"] == 1


# ----------------------------------------------------------------------------- table, metrics

def test_table_reads_a_growing_file_and_the_manual_target(tmp_path: Path) -> None:
    lines = [grid_line(12, 1e-3, 2, 64), grid_line(12, 1e-2, 4, 64, diverge_at=3)] + MANUAL
    path = write_table(tmp_path / "curves.jsonl", lines, tail='{"key": "grid:cut-sho')
    t = Table.load(path)
    assert len(t.grid) == 2 and len(t.manual) == 3
    assert t.manual_tokens == 9_000_000
    assert t.manual_best == 1.80
    curve = t.manual_curve()      # runs one after another: compute adds up
    assert curve[-1] == [9_000_000, 1.80] and curve[3] == [4_000_000, 1.95]
    div = next(c for c in t.grid if c.diverged)
    assert [r["outcome"] for r in div.reports] == ["running", "running", "diverged"]
    assert div.reports[-1]["val_loss"] == PENALTY
    ok = next(c for c in t.grid if not c.diverged)
    assert ok.reports[-1]["outcome"] == "completed" and len(ok.reports) == 16


def test_an_exploded_training_loss_counts_as_diverged() -> None:
    line = grid_line(12, 1e-2, 2, 64)
    line["points"][4][2] = 50.0   # finite, but > 3 ln(65)
    c = Table([line]).grid[0]
    assert len(c.reports) == 5 and c.reports[-1]["outcome"] == "diverged"


def test_wilson_interval() -> None:
    assert report.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert report.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert report.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def test_summary_metrics_on_hand_made_curves() -> None:
    def run(curve: list[list[float]]) -> simulator.SimResult:
        return simulator.SimResult([], curve, [0.0] * len(curve), curve[-1][0], 0.0, 0.0)

    manual, target = 9e6, 1.8
    runs = [run([[1e6, 2.0], [2e6, 1.79], [9e6, 1.7]]),      # reaches at 2e6: 0.22x, success
            run([[1e6, 2.1], [5e6, 1.8], [9e6, 1.8]]),       # 0.56x: after 1/3
            run([[1e6, 2.2], [4e6, 2.0], [9e6, 1.9]])]       # never
    s = report.summarize_method(runs, target, manual)
    assert s["successes"] == 1 and s["success_rate"] == pytest.approx(1 / 3)
    assert s["success_rate_ci95"] == pytest.approx(list(report.wilson(1, 3)))
    assert s["median_compute_ratio"] == pytest.approx(5 / 9)
    assert s["per_seed"]["compute_ratio"][2] == math.inf
    at_third = [1.79, 2.1, 2.2]                                # best by 3e6 tokens
    assert s["best_at_third_mean"] == pytest.approx(statistics.mean(at_third))
    assert s["best_at_third_sem"] == pytest.approx(statistics.stdev(at_third) / math.sqrt(3))
    assert report.summarize_method(runs[1:], target, manual)["median_compute_ratio"] == \
        math.inf                                               # half the seeds never reach it


# ----------------------------------------------------------------------------- simulator

class ScriptedSearcher(Searcher):
    """A Ray Searcher proposing fixed configs, recording the calls the controller makes."""

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        super().__init__(metric=METRIC, mode=MODE)
        self.todo, self.calls = list(configs), []

    def suggest(self, trial_id: str) -> Any:
        self.calls.append(("suggest", trial_id))
        return self.todo.pop(0) if self.todo else Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.calls.append(("result", trial_id, result["tokens"]))

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        self.calls.append(("complete", trial_id, result["tokens"], result["outcome"]))


def test_simulator_follows_the_controller_protocol() -> None:
    t = Table([grid_line(12, 1e-3, 2, 64), grid_line(12, 1e-2, 4, 64, diverge_at=4)] + MANUAL)
    cfgs = [{"batch_size": 12, "learning_rate": 1e-3, "n_layer": 2, "n_embd": 64},
            {"batch_size": 12, "learning_rate": 1e-2, "n_layer": 4, "n_embd": 64},
            {"batch_size": 12, "learning_rate": 1e-3, "n_layer": 2, "n_embd": 64}]
    s = ScriptedSearcher(cfgs)
    r = simulator.simulate(t, s, None, budget_tokens=math.inf)
    assert [x.outcome for x in r.trials] == ["completed", "diverged", "completed"]
    completes = [c for c in s.calls if c[0] == "complete"]
    assert len(completes) == 3 and len({c[1] for c in completes}) == 3
    # the diverged trial is told with its last (penalty) report; 3 evaluations before it
    div = next(c for c in completes if c[3] == "diverged")
    assert div[2] == EVAL_TOKENS[3]
    assert sum(c[0] == "result" and c[1] == div[1] for c in s.calls) == 4
    # the third trial is suggested only after one of the first two ended (2 at a time)
    third = next(i for i, c in enumerate(s.calls) if c[0] == "suggest" and c[1].endswith("2"))
    assert any(c[0] == "complete" for c in s.calls[:third])
    assert r.tokens_spent == 2 * EVAL_TOKENS[-1] + EVAL_TOKENS[3]
    assert r.curve[-1][1] == min(p[1] for p in grid_line(12, 1e-3, 2, 64)["points"])


def test_budget_stops_the_search_and_runs_are_reproducible() -> None:
    t = full_table()
    budget = t.manual_tokens
    a = simulator.simulate(t, *methods.METHODS["random"](3), budget)
    b = simulator.simulate(t, *methods.METHODS["random"](3), budget)
    assert [x.key for x in a.trials] == [x.key for x in b.trials] and a.curve == b.curve
    assert budget <= a.tokens_spent <= budget + EVAL_TOKENS[0] * 32 // 12  # one evaluation
    outcomes = [x.outcome for x in a.trials]
    assert set(outcomes) <= {"completed", "diverged", "budget_stopped"}
    assert 1 <= outcomes.count("budget_stopped") <= 2       # what ran when the budget ran out
    assert a.curve[-1][0] == pytest.approx(a.tokens_spent)
    assert all(c1[0] <= c2[0] and c1[1] >= c2[1] for c1, c2 in zip(a.curve, a.curve[1:]))
    assert a.flops[-1] > 0
    c = simulator.simulate(t, *methods.METHODS["asha_tpe"](3), budget)
    stopped = [x for x in c.trials if x.outcome == "stopped_early"]
    assert stopped and all(x.tokens >= GRACE_PERIOD for x in stopped)
    assert len(c.trials) > len(a.trials)


def test_register_method_is_one_call() -> None:
    methods.register_method("test_fifo_tpe", lambda seed: (
        methods.optuna_searcher(__import__("optuna").samplers.TPESampler(seed=seed)), None))
    try:
        with pytest.raises(ValueError):
            methods.register_method("test_fifo_tpe", lambda seed: (None, None))
        s = report.run_replay(["test_fifo_tpe"], [0], full_table())
        assert s["methods"]["test_fifo_tpe"]["seeds"] == 1
    finally:
        methods.METHODS.pop("test_fifo_tpe", None)


def test_cli_replay_writes_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from benchmarks import search_efficiency

    lines = [grid_line(*c) for c in itertools.product([12], FULL["learning_rate"], [2, 4, 6],
                                                      [64, 128, 192])]
    path = write_table(tmp_path / "curves.jsonl", lines + MANUAL)
    out = tmp_path / "out.json"
    argv = ["--replay", "--table", str(path), "--json", str(out)]
    assert search_efficiency.main(argv + ["--seeds", "2"]) == 2     # 3 of 9 manual lines
    assert search_efficiency.main(argv + ["--seeds", "2", "--partial-manual"]) == 0
    s = json.loads(out.read_text())
    assert s["seeds"] == [0, 1] and s["grid_configs_used"] == 45
    assert set(s["methods"]) >= {"random", "asha_random", "asha_tpe"}
    for row in s["methods"].values():
        assert {"success_rate", "success_rate_ci95", "median_compute_ratio",
                "best_at_third_mean"} <= set(row)
    assert s["coarseness"]["batch_size"]["max"] == pytest.approx(64 / 12)
    assert "| asha_tpe |" in out.with_suffix(".md").read_text()
    assert search_efficiency.main(argv + ["--seeds", "4", "7", "--partial-manual",
                                          "--methods", "random"]) == 0
    s = json.loads(out.read_text())
    assert s["seeds"] == [4, 7] and list(s["methods"]) == ["random"]
    assert "| random |" in capsys.readouterr().out
    with pytest.raises(SystemExit):          # real mode still checks its method names
        search_efficiency.main(["--methods", "asha_random"])


def _figures(path: Path) -> dict[str, Any]:
    """A replay summary without its wall times (the only part that varies run to run)."""
    s = json.loads(path.read_text())
    s.pop("wall_s")
    for row in s["methods"].values():
        row.pop("wall_s")
    return s


def test_replay_script_is_the_same_command(tmp_path: Path) -> None:
    """benchmarks/replay.py and search_efficiency.py --replay run one command: same figures;
    --quick replays two seeds."""
    from benchmarks import replay as replay_script
    from benchmarks import search_efficiency

    lines = [grid_line(12, lr, nl, 64) for lr, nl in itertools.product(FULL["learning_rate"],
                                                                      [2, 4])]
    path = write_table(tmp_path / "curves.jsonl", lines + MANUAL)
    common = ["--table", str(path), "--partial-manual", "--methods", "random", "asha_tpe"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert search_efficiency.main(["--replay", *common, "--seeds", "3", "--json", str(a)]) == 0
    assert replay_script.main([*common, "--seeds", "3", "--json", str(b)]) == 0
    assert _figures(a) == _figures(b) and _figures(a)["seeds"] == [0, 1, 2]
    assert b.with_suffix(".md").read_text().startswith("# Search efficiency, replayed")
    assert replay_script.main([*common, "--quick", "--json", str(b)]) == 0
    assert _figures(b)["seeds"] == [0, 1]
    assert replay_script.main([*common, "--seeds", "0"]) == 2       # no seeds: one line, 2


def test_recorded_grid_and_manual_plan_have_the_sizes_the_replay_checks() -> None:
    """GRID_SIZE (the "N of 90 grid configs" the replay prints) follows record_curves' grid,
    and MANUAL_RUNS (how many manual lines a full table has) the guide's experiments."""
    assert GRID == FULL and GRID_SIZE == len(list(itertools.product(*GRID.values()))) == 90
    assert len(manual_plan()) == MANUAL_RUNS == 9


# ----------------------------------------------------------------------------- e2e: real Ray

@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory):
    import ray

    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    patch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # the workers import benchmarks.common.replay.simulator (the replay trainable) from
    # the repository
    patch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()
    patch.undo()


def _e2e_table(path: Path) -> Path:
    lines = [grid_line(12, lr, nl, 64, diverge_at=5 if (lr, nl) == (1e-2, 4) else None)
             for lr, nl in itertools.product([1e-4, 1e-3, 1e-2], [2, 4])]
    return write_table(path, lines + MANUAL)


@pytest.mark.e2e
@pytest.mark.parametrize("method,seed", [("asha_tpe", 0), ("asha_tpe", 1), ("asha_random", 2)])
def test_simulator_matches_a_real_tuner_run(ray_local: None, tmp_path: Path, method: str,
                                            seed: int) -> None:
    from ray import tune

    n = 9
    path = _e2e_table(tmp_path / "curves.jsonl")
    table = Table.load(path)
    sim = simulator.simulate(table, *methods.METHODS[method](seed), budget_tokens=math.inf,
                          concurrency=1, max_trials=n)
    searcher, scheduler = methods.METHODS[method](seed)
    grid = tune.Tuner(
        tune.with_parameters(simulator.replay_trainable, table_path=str(path)),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE,
                                    search_alg=searcher, scheduler=scheduler, num_samples=n,
                                    max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(name=f"replay-{method}-{seed}", verbose=0,
                                  storage_path=str(tmp_path / "runs"))).fit()
    assert grid.num_errors == 0
    real = sorted((r.metrics for r in grid),
                  key=lambda m: int(str(m["experiment_tag"]).split("_")[0]))
    got = [(m["table_key"], m["tokens"], m["training_iteration"]) for m in real]
    want = [(x.key, x.tokens, x.reports) for x in sim.trials]
    assert got == want
    # the run is not trivial: ASHA stopped some trials early and let some finish
    outcomes = {x.outcome for x in sim.trials}
    assert "stopped_early" in outcomes and "completed" in outcomes


# ------------------------------------------------------------------ other data, shortened runs

SWEEPS = ["batch_size"] * 3 + ["learning_rate"] * 3 + ["model_size"] * 3


def _nine_manual(shorten: int = 1) -> list[dict[str, Any]]:
    """The nine manual runs of a table whose runs are `shorten` times shorter (tokens and
    iterations divided), each naming its sweep as record_curves.py writes it."""
    lines = []
    for i, sweep in enumerate(SWEEPS):
        line = manual_line(i, [2.6 - 0.02 * i, 2.2 - 0.02 * i, 1.95 - 0.02 * i],
                           1_536_000 if sweep == "model_size" else 768_000)
        line["experiment"] = sweep
        line["config"]["max_iters"] = (2000 if sweep == "model_size" else 1000) // shorten
        lines.append(line)
    return lines


def _shortened(line: dict[str, Any], by: int) -> dict[str, Any]:
    assert line["tokens"] % by == 0 and all(p[0] % by == 0 for p in line["points"])
    return {**line, "tokens": line["tokens"] // by,
            "points": [[p[0] // by, *p[1:]] for p in line["points"]]}


def _table_folder(folder: Path, lines: list[dict[str, Any]], data: Path, factor: float
                  ) -> Path:
    from benchmarks.common.replay import recording

    folder.mkdir()
    write_table(folder / "curves.jsonl", lines)
    plan = recording.Plan("quick", {k: FULL[k] for k in FULL}, factor=factor, evals_per_run=16)
    recording.write_meta(folder, recording.meta_for(plan, recording.data_identity(data), 65))
    return folder


def test_replay_reads_a_shortened_table_in_full_length_tokens(tmp_path: Path) -> None:
    """A table recorded at factor 1/4 (every run, the manual sweeps' included, 4 times
    shorter) replays exactly as the same curves at full length: same budget, same target,
    same figures. Its nine shortened manual runs are accepted (no --partial-manual)."""
    from benchmarks import search_efficiency

    data = tmp_path / "input.txt"
    data.write_text("some corpus\n" * 50)
    grid = [grid_line(b, lr, nl, ne) for b, lr, nl, ne in
            itertools.product([12, 32], FULL["learning_rate"], [2, 4], [64, 192])]
    full = _table_folder(tmp_path / "full", grid + _nine_manual(), data, 1.0)
    short = _table_folder(tmp_path / "short", [_shortened(x, 4) for x in grid]
                          + [_shortened(x, 4) for x in reversed(_nine_manual(4))], data, 0.25)
    got = {}
    for name, folder in (("full", full), ("short", short)):
        out = tmp_path / f"{name}.json"
        assert search_efficiency.main(["--replay", "--table", str(folder), "--data", str(data),
                                       "--seeds", "3", "--methods", "random", "asha_tpe",
                                       "default", "--json", str(out)]) == 0
        got[name] = _figures(out)
    full_s, short_s = got["full"], got["short"]
    assert short_s["fidelity_factor"] == 0.25 and short_s["manual_lines"] == 9
    assert short_s["budget_tokens"] == full_s["budget_tokens"] == 9_216_000
    assert short_s["manual_best"] == full_s["manual_best"] == pytest.approx(1.79)
    assert short_s["methods"] == full_s["methods"]
    assert {"success_rate", "median_compute_ratio"} <= set(short_s["methods"]["default"])
    # the manual curve follows the guide's order by the sweep each line names (written
    # last-first here; shortened runs are not the 1,000 iterations the older rule looks for)
    assert short_s["manual_curve"][0][1] in (2.6, 2.58, 2.56)
    assert "0.25 of its length" in (tmp_path / "short.md").read_text()


def test_replay_refuses_a_table_recorded_on_other_data(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from benchmarks import replay as replay_script
    from benchmarks import search_efficiency

    data, other = tmp_path / "input.txt", tmp_path / "other.txt"
    data.write_text("some corpus\n" * 50)
    other.write_text("another corpus\n" * 50)
    grid = [grid_line(12, lr, 2, 64) for lr in FULL["learning_rate"]]
    folder = _table_folder(tmp_path / "t", grid + _nine_manual(), data, 1.0)
    for main in (search_efficiency.main, lambda a: replay_script.main(a[1:])):
        capsys.readouterr()
        assert main(["--replay", "--table", str(folder), "--data", str(other),
                     "--seeds", "1", "--methods", "random"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"recorded on {data}" in err and f"--data {data}" in err
    assert search_efficiency.main(["--replay", "--table", str(folder), "--data", str(data),
                                   "--seeds", "1", "--methods", "random"]) == 0


def test_record_plans_the_committed_table_and_the_quick_grid() -> None:
    """The full plan is the committed table's configs (so it resumes); the quick plan is 40
    grid configs and the nine manual runs, every run 0.2 as long."""
    from benchmarks import record_curves
    from benchmarks.common.replay.recording import PLANS

    committed = Table.load()
    keys = {record_curves.key_of(k, c) for k, c, _ in record_curves.plan_items(PLANS["full"])}
    assert keys == {c.key for c in committed.grid + committed.manual}
    assert committed.meta["plan"] == "full" and committed.factor == 1.0
    quick = record_curves.plan_items(PLANS["quick"])
    grid = [c for k, c, _ in quick if k == "grid"]
    manual = [(c, e) for k, c, e in quick if k == "manual"]
    assert len(grid) == PLANS["quick"].size == 40 and len(manual) == MANUAL_RUNS
    for c in grid:
        tokens = c["max_iters"] * c["batch_size"] * c["block_size"]
        assert 400_000 <= tokens < 400_000 + c["batch_size"] * c["block_size"]
    full_manual = [r for r in manual_plan() if r]
    for (c, e), r in zip(manual, full_manual):
        assert e == r["experiment"] and c["max_iters"] * 5 == r["max_iters"]
        assert c["eval_interval"] * 5 == r["eval_interval"] and c["warmup_iters"] == 20
