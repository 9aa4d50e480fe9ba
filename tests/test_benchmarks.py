"""The benchmark scripts: their --quick modes, so they do not rot (e2e: they print figures;
these tests check that they run and that the JSON they write agrees with what they measured,
never how fast anything was), and what every script shares (benchmarks/common/): one
command-line shape, atomic writes, a resume that never trusts a cell cut short."""

from __future__ import annotations

import ast
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


def _run(script: str, tmp_path: Path, *args: str, scratch: bool = False) -> dict:
    """Run a benchmark's --quick mode; with `scratch`, in a TMPDIR of its own that must be
    empty of its runs' folders afterwards (not for scripts that start Ray: its socket paths
    under a pytest folder would pass the length a Unix socket allows)."""
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if scratch:
        (tmp_path / "scratch").mkdir()
        env["TMPDIR"] = str(tmp_path / "scratch")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick",
                           "--json", str(out), *args], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    if scratch:
        assert not [p.name for p in (tmp_path / "scratch").iterdir()
                    if p.name.startswith(("rec-", "rung-reads-"))]
    assert out.with_suffix(".md").read_text().startswith("# ")  # the markdown summary
    return json.loads(out.read_text())


@pytest.mark.e2e
def test_rung_reads_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    """WSD trials read after cool-down branches against the cosine table's mid-schedule
    reads: every config trained, the reads happened and cost tokens, every rung compared."""
    s = _run("rung_reads", tmp_path, "--data", str(shakespeare_path), scratch=True)
    assert s["configs"] == 3 and 0 < s["read_cost"] < 0.5
    assert set(s["rungs"]) == {"250000", "750000"}
    for rung in s["rungs"].values():
        assert set(rung) == {"tokens", "cosine_mid_schedule", "wsd_read", "wsd_plateau"}
        assert all(v["spearman"] is not None for k, v in rung.items() if k != "tokens")
    # the finishes are the cells' own, and every WSD run learned (below ln 65 = 4.17)
    wsd = [c["wsd_final"] for c in s["cells"]]
    assert s["finish"]["paired"] == 3 and s["finish"]["best_wsd"] == min(wsd)
    assert s["finish"]["best_cosine"] == min(c["cosine_final"] for c in s["cells"])
    assert max(wsd) < 4.0


@pytest.mark.e2e
def test_train_throughput_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("train_throughput", tmp_path, "--threads", "1", "--data", str(shakespeare_path))
    (row,) = result["results"]
    assert row["threads"] == 1 and row["iters"] == 60
    side = row["side_by_side"]
    assert side["rounds"] == 2
    assert len(side["tune_gpt_rounds"]) == len(side["straightforward_rounds"]) == 2
    # the speed-up is the median of the per-round ratios the file also holds
    assert side["median_speedup"] == pytest.approx(statistics.median(
        r / o for o, r in zip(side["tune_gpt_rounds"], side["straightforward_rounds"])))
    assert [r["iters"] for r in result["small"]] == [40]


@pytest.mark.e2e
def test_search_overhead_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("search_overhead", tmp_path, "--data", str(shakespeare_path),
                  "--ab-driver-memory")
    # each arm in its own process: without the driver's memory measures, with the
    # compaction of finished trials, with both (as a search runs)
    assert [r["driver_memory_measures"] for r in result["rows"]] == [
        "none (Ray's and glibc's defaults)", "compaction", "compaction + 2 malloc arenas"]
    row = result["rows"][2]
    assert row["trials"] == 4 and 0 < row["training_share"] <= 1
    assert result["startup"]["help_imports_torch"] is False
    assert result["startup"]["validate_imports_ray"] is False


@pytest.mark.e2e
def test_scaling_quick(tmp_path: Path) -> None:
    result = _run("scaling", tmp_path)
    row = result["rows"][0]
    assert row["trials"] == 20 and row["report_s"] > 0
    # per logged evaluation of the 20 synthetic trials; both figures are rounded (0.01 s, 0.1 ms)
    evals = len(_synthetic_curves(20))
    assert row["mlflow_ms_per_eval"] == pytest.approx(
        1000 * row["mlflow_logging_s"] / evals, abs=0.05 + 1000 * 0.005 / evals)


def _synthetic_curves(n: int):
    from benchmarks.scaling import synthetic

    return synthetic(n)[1]


def test_scaling_times_real_mlflow_logging(tmp_path: Path) -> None:
    """What the scaling benchmark times is the product's own logging into a real store:
    one parent run, a nested run per trial with every evaluation and its outcome."""
    from mlflow.tracking import MlflowClient

    from benchmarks.scaling import synthetic, time_mlflow
    from tune_gpt import tracking

    trials, curves, _ = synthetic(5)
    seconds, evals = time_mlflow(5, tmp_path)
    assert seconds > 0 and evals == len(curves)
    client = MlflowClient(tracking_uri=tracking.default_tracking_uri(tmp_path))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(runs) == 6 and len(children) == 5
    for r in children:
        tid = r.data.tags.get("mlflow.runName")
        history = client.get_metric_history(r.info.run_id, "val_loss")
        assert len(history) == (curves.trial_id == tid).sum(), tid


@pytest.mark.e2e
def test_gpu_check_quick_runs_on_cpu(tmp_path: Path, shakespeare_path: Path) -> None:
    result = _run("gpu_check", tmp_path, "--data", str(shakespeare_path))
    assert result["shakespeare"]["iters"] == 30
    assert len(result["estimator"]) == 2
    for row in result["estimator"]:  # each error is its own row's prediction over measurement
        m = row["measured_bytes"]
        assert row["predicted_bytes"] > 0 and m == m and m > 0
        assert row["error"] == round(row["predicted_bytes"] / m - 1, 3)
    assert result["shakespeare"]["val_loss"] < math.log(65)  # it trained, it learned
    assert result["gpt2"]["vocab"] == 50304 and result["gpt2"]["iters"] == 4


@pytest.mark.e2e
def test_search_efficiency_quick(tmp_path: Path, shakespeare_path: Path) -> None:
    out = tmp_path / "eff"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_efficiency.py"),
                           "--quick", "--data", str(shakespeare_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["manual", "asha_tpe", "random",
                                                      "default"]
    manual_tokens = summary["manual_total_tokens"]
    assert manual_tokens == 140_800  # the nine runs of the guide's experiments at 1% length
    for cell in summary["cells"]:
        curve = json.loads((out / "cells" / f"{cell['method']}-s0.json").read_text())["curve"]
        assert curve, cell["method"]
        computes, bests = zip(*curve)
        assert list(computes) == sorted(computes) and list(bests) == sorted(bests, reverse=True)
        if cell["method"] != "manual":
            # budget.total_tokens stopped it: at most one evaluation interval over per slot
            assert 0.8 * manual_tokens <= cell["tokens_spent"] <= manual_tokens + 4 * 4096
    assert (out / "summary.md").read_text().count("\n| ") == 5
    assert (out / "curves.png").stat().st_size > 10_000
    # a second run finds every cell saved and only rebuilds the summary
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_efficiency.py"),
                            "--quick", "--data", str(shakespeare_path), "--out", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipped") == 4


def test_search_efficiency_curves() -> None:
    from benchmarks.common import curves as se

    plan = [{"batch_size": 12, "learning_rate": 1e-3, "n_layer": 2, "n_embd": 64,
             "max_iters": 10}, {"batch_size": 12, "learning_rate": 1e-2, "n_layer": 2,
                                "n_embd": 64, "max_iters": 10}]
    def rows(lr: float, losses: list[float]) -> list[dict]:
        out = [{"tokens": 100 * (i + 1), "val_loss": v, "outcome": "running"}
               for i, v in enumerate(losses)]
        out[0]["_config"] = {**plan[0], "learning_rate": lr}
        return out
    # the second run in the guide's order ran first: the curve follows the plan, not the clock
    trials = {"t2": rows(1e-2, [2.0, 1.5]), "t1": rows(1e-3, [3.0, 2.5])}
    points, spent = se.manual_curve(trials, plan)
    assert points == [[100.0, 3.0], [200.0, 2.5], [300.0, 2.0], [400.0, 1.5]] and spent == 400
    # two trials side by side: each one's tokens by the time of the other's evaluation count
    side = {"a": [{"timestamp": 110, "time_total_s": 10.0, "tokens": 1000, "val_loss": 2.0,
                   "outcome": "running"},
                  {"timestamp": 120, "time_total_s": 20.0, "tokens": 2000, "val_loss": 1.8,
                   "outcome": "completed"}],
            "b": [{"timestamp": 115, "time_total_s": 10.0, "tokens": 500, "val_loss": 2.2,
                   "outcome": "running"}]}
    points, spent = se.search_curve(side)
    assert spent == 2500
    assert points == [[1250.0, 2.0], [2000.0, 2.0], [2500.0, 1.8]]
    assert se.reach(points, 1.9) == 2500 and se.reach(points, 1.0) == float("inf")
    assert se.best_at(points, 2100) == 2.0


# ----------------------------------------------------------------------------- the shared shape

@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_takes_quick_and_json(script: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--quick" in proc.stdout and "--json" in proc.stdout, proc.stdout
    assert not list(tmp_path.iterdir())          # --help writes nothing


def test_no_script_imports_another() -> None:
    """Shared machinery lives in benchmarks/common/; a script is never another's library."""
    assert {"search_efficiency", "replay", "record_curves", "mup_transfer",
            "beginner_seeds", "gpu_check"} <= set(SCRIPTS)
    for name in SCRIPTS:
        others = set(SCRIPTS) - {name}
        found = set()
        for node in ast.walk(ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        bad = {m for m in found for o in others
               if m in (o, f"benchmarks.{o}") or m.startswith(f"benchmarks.{o}.")}
        assert not bad, f"benchmarks/{name}.py imports the script(s) {sorted(bad)}"


def test_an_atomic_write_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    from benchmarks.common.output import atomic_open, write_json

    f = tmp_path / "cell.json"
    write_json(f, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(f) as h:
        h.write('{"a": 2, "b')
        raise RuntimeError("killed mid-write")
    assert json.loads(f.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [f]       # no temporary file left behind


def test_saved_cell_trusts_only_a_whole_cell(tmp_path: Path, capsys: pytest.CaptureFixture
                                             ) -> None:
    from benchmarks.common.output import saved_cell, write_json

    f, keys = tmp_path / "c.json", ("seed", "val_loss")
    assert saved_cell(f, keys) is None and capsys.readouterr().out == ""   # none yet
    write_json(f, {"seed": 0, "val_loss": 1.5})
    assert saved_cell(f, keys) == {"seed": 0, "val_loss": 1.5}
    for text, why in (('{"seed": 0, "val_lo', "does not parse"), ("[0, 1.5]", "not a cell"),
                      ('{"seed": 0}', "no val_loss")):
        f.write_text(text)
        assert saved_cell(f, keys) is None
        said = capsys.readouterr().out.strip().splitlines()
        assert len(said) == 1 and why in said[0] and said[0].endswith("redone"), said


def _fake_beginner_cell(seed: int, data: str, out: Path, quick: bool = False) -> dict:
    return {"seed": seed, "best_val_loss": 1.70 + seed / 100, "counts": {"completed": 2},
            "best_config": {"batch_size": 12, "learning_rate": 1e-3, "n_layer": 4,
                            "n_embd": 192}, "wall_s": 1.0, "search": "runs/fake"}


def test_a_cell_cut_short_is_redone_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    """beginner_seeds resumes from its cells: the whole one is skipped, the one a kill cut
    short is run again (said in one line), and the summary counts both."""
    from benchmarks import beginner_seeds

    ran: list[int] = []
    monkeypatch.setattr(beginner_seeds, "run_cell",
                        lambda seed, *a, **k: ran.append(seed) or _fake_beginner_cell(seed, *a))
    data = tmp_path / "input.txt"
    data.write_text("to be or not to be\n")
    cells = tmp_path / "out" / "cells"
    cells.mkdir(parents=True)
    (cells / "s1.json").write_text(json.dumps(_fake_beginner_cell(1, "", tmp_path)))
    (cells / "s0.json").write_text(json.dumps(_fake_beginner_cell(0, "", tmp_path))[:50])
    summary = tmp_path / "summary.json"
    assert beginner_seeds.main(["--data", str(data), "--out", str(tmp_path / "out"),
                                "--seeds", "0", "1", "--json", str(summary)]) == 0
    assert ran == [0]
    out = capsys.readouterr().out
    assert out.count("redone") == 1 and "s0.json does not parse" in out
    assert "seed 1: saved" in out
    assert json.loads((cells / "s0.json").read_text())["best_val_loss"] == 1.70
    s = json.loads(summary.read_text())
    assert s["seeds"] == [0, 1] and s["median_best"] == pytest.approx(1.705)
    assert summary.with_suffix(".md").read_text().startswith("# beginner.yaml")


def test_a_script_writes_only_where_it_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    """No --out, --json or --quick: one line and exit 2, nothing written (not into
    benchmarks/results/ either); --json alone puts the cells in the folder beside it."""
    from benchmarks import beginner_seeds

    monkeypatch.setattr(beginner_seeds, "run_cell", _fake_beginner_cell)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "input.txt"
    data.write_text("to be or not to be\n")
    committed = sorted((ROOT / "benchmarks" / "results" / "beginner_seeds").rglob("*"))
    assert beginner_seeds.main(["--data", str(data), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--out" in err and "--json" in err
    assert list(tmp_path.iterdir()) == [data]
    assert sorted((ROOT / "benchmarks" / "results" / "beginner_seeds").rglob("*")) == committed
    assert beginner_seeds.main(["--data", str(data), "--seeds", "0", "--json",
                                str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b" / "cells" / "s0.json").read_text())["seed"] == 0
    assert json.loads((tmp_path / "b.json").read_text())["seeds"] == [0]


def test_record_curves_drops_a_line_cut_short_and_records_it_again(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from benchmarks import record_curves

    line = {"key": "grid:a", "kind": "grid", "config": {}, "tokens": 1, "points": [[1, 2, 2, 0]]}
    table = tmp_path / "curves.jsonl"
    table.write_text(json.dumps(line) + "\n" + json.dumps({**line, "key": "grid:b"})[:30])
    kept = record_curves.recorded(table)
    assert [json.loads(x)["key"] for x in kept] == ["grid:a"]
    assert table.read_text() == json.dumps(line) + "\n"       # the file no longer holds it
    assert "1 line(s) cut short" in capsys.readouterr().out


# ----------------------------------------------------------------------------- other corpora

def test_corpora_are_built_the_same_twice_and_say_what_they_hold(tmp_path: Path) -> None:
    """corpora.py on a small cap: identical files twice, a manifest whose sha256, sizes and
    vocabulary are the files', ASCII text, no test suite, files in sorted order."""
    import hashlib

    from benchmarks import corpora

    a, b = tmp_path / "a", tmp_path / "b"
    assert corpora.main(["--quick", "--out", str(a)]) == 0
    assert corpora.main(["--quick", "--out", str(b), "--json", str(tmp_path / "m.json")]) == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    manifest = json.loads((a / "corpora.json").read_text())
    names = [c["name"] for c in manifest["corpora"]]
    assert {"python_stdlib", "licenses"} <= set(names)      # on every Debian/Python machine
    unicode = {k.name for k in corpora.CORPORA if k.unicode}
    assert unicode == {"manpages_ru"}
    for c in manifest["corpora"]:
        text = (a / c["path"]).read_text(encoding="utf-8")
        assert c["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert c["bytes"] == len(text.encode()) and c["vocab"] == len(set(text))
        assert c["characters"] == len(text) <= c["cap_bytes"] == corpora.QUICK_CAP
        assert c["file_count"] == len(c["files"]) >= 1
        if c["name"] in unicode:  # letters kept, control characters not
            assert not any(unicodedata.category(ch).startswith("C") for ch in set(text) - {"\n"})
        else:
            assert set(text) <= {"\n", *map(chr, range(32, 127))}
    stdlib = next(c for c in manifest["corpora"] if c["name"] == "python_stdlib")["files"]
    assert stdlib == sorted(stdlib)
    assert not any({"test", "tests", "site-packages"} & set(f.split("/")) for f in stdlib)
    assert json.loads((tmp_path / "m.json").read_text()) == manifest


def test_corpus_characters_are_printable_ascii() -> None:
    from benchmarks.corpora import clean

    raw = "café\tx\r\nnaïve ✓\x00\x0c end".encode() + b"\xff"
    assert clean(raw) == "cafe    x\nnaive ? end?\n"
    # a unicode corpus keeps its letters (Cyrillic here), drops only control characters
    assert clean("сеть\tx\r\nнет ✓\x00 end".encode() + b"\xff", unicode=True) == \
        "сеть    x\nнет ✓ end\ufffd\n"


@pytest.mark.e2e
def test_record_curves_quick_grid_smoke_and_its_replay(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """record_curves --grid quick --quick on a small text: table.json says the plan and the
    data, the manual runs are the shortened sweeps; the replay takes the folder with that
    --data; the folder refuses another plan (one line, exit 2)."""
    from benchmarks import record_curves, search_efficiency

    data = tmp_path / "notes.txt"
    data.write_text("".join(f"line {i}: the quick brown fox jumps over {i % 7} lazy dogs.\n"
                            for i in range(400)))
    out = tmp_path / "table"
    argv = ["--quick", "--workers", "0", "--data", str(data), "--out", str(out)]
    scratch = tmp_path / "scratch"  # each run's out_dir is temporary and removed after it
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert record_curves.main([*argv, "--grid", "quick", "--json", str(tmp_path / "r.json")]) == 0
    assert not list(scratch.glob("rec-*"))
    meta = json.loads((out / "table.json").read_text())
    assert meta["plan"] == "quick-smoke" and meta["factor"] == pytest.approx(0.002)
    assert meta["data"]["sha256"] == __import__("hashlib").sha256(data.read_bytes()).hexdigest()
    assert meta["vocab_size"] == len(set(data.read_text()))
    lines = [json.loads(x) for x in (out / "curves.jsonl").read_text().splitlines()]
    manual = [x for x in lines if x["kind"] == "manual"]
    assert len(manual) == 9 and len(lines) == 13
    # the guide's 1,000- and 2,000-iteration runs, 500 times shorter
    assert sorted({x["config"]["max_iters"] for x in manual}) == [2, 4]
    assert [x["experiment"] for x in manual] == ["batch_size"] * 3 + ["learning_rate"] * 3 \
        + ["model_size"] * 3
    assert json.loads((tmp_path / "r.json").read_text())["configs_recorded"] == 13
    replayed = tmp_path / "replay.json"
    assert search_efficiency.main(["--replay", "--table", str(out), "--data", str(data),
                                   "--seeds", "1", "--methods", "random",
                                   "--json", str(replayed)]) == 0
    s = json.loads(replayed.read_text())
    assert s["plan"] == "quick-smoke" and s["grid_configs_full"] == 4
    assert s["budget_tokens"] == pytest.approx(sum(x["tokens"] for x in manual) / 0.002)
    capsys.readouterr()
    assert record_curves.main([*argv, "--grid", "full"]) == 2        # another plan: refused
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "another plan" in err


def test_rung_reads_summary_ranks_each_rung_against_the_finish() -> None:
    """The rung-read benchmark's figures from known cells: Spearman of each rung's losses
    against the finished runs, whether the best finish survives the rung, the regret of the
    rung's best, the WSD-cosine finish difference and what the reads cost."""
    from benchmarks.rung_reads import summarize

    def pts(*rows: tuple) -> list[list]:
        return [list(r) for r in rows]

    # three configs; at 250k the read (col 1) ranks a < b < c, the plateau (col 3) c < b < a
    cells = [
        {"key": "a", "tokens": 1000, "read_tokens": 100,
         "points": pts((250_000, 2.0, None, 2.6), (750_000, 1.9, None, 2.0), (1e6, 1.50)),
         "cosine_points": pts((250_000, 2.1), (750_000, 1.8), (1e6, 1.60))},
        {"key": "b", "tokens": 1000, "read_tokens": 50,
         "points": pts((250_000, 2.2, None, 2.4), (750_000, 1.7, None, 1.8), (1e6, 1.40)),
         "cosine_points": pts((250_000, 2.0), (750_000, 1.9), (1e6, 1.45))},
        {"key": "c", "tokens": 2000, "read_tokens": 150,
         "points": pts((250_000, 2.4, None, 2.3), (750_000, 2.1, None, 2.2), (1e6, 1.70)),
         "cosine_points": pts((250_000, 2.3), (750_000, 2.2), (1e6, 1.75))},
    ]
    s = summarize(cells, 1.0, 9.0, 0.2, "table", "data")
    first, second = s["rungs"]["250000"], s["rungs"]["750000"]
    # WSD finishes a 1.50, b 1.40, c 1.70 -> ranks 2, 1, 3
    assert first["wsd_read"]["spearman"] == pytest.approx(0.5)      # reads 1, 2, 3
    assert first["wsd_plateau"]["spearman"] == pytest.approx(-0.5)  # plateaus 3, 2, 1
    assert second["wsd_read"]["spearman"] == pytest.approx(1.0)     # 1.9, 1.7, 2.1
    # a third of three is kept: the read keeps a (finish 1.50), the best finish b is lost
    assert first["wsd_read"]["best_finish_kept"] is False
    assert first["wsd_read"]["regret_of_rung_best"] == pytest.approx(0.10)
    assert second["wsd_read"]["best_finish_kept"] is True
    # cosine read mid-schedule: 2.0 (b) first at 250k; finishes 1.60, 1.45, 1.75
    assert first["cosine_mid_schedule"]["regret_of_rung_best"] == pytest.approx(0.0)
    fin = s["finish"]
    assert fin["paired"] == 3 and fin["wsd_better"] == 3
    assert fin["wsd_minus_cosine_mean"] == pytest.approx((-0.10 - 0.05 - 0.05) / 3)
    assert fin["best_wsd"] == 1.40 and fin["best_cosine"] == 1.45
    assert s["read_cost"] == pytest.approx(300 / 4000)
