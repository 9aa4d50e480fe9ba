"""The report's only I/O: reading a search folder, writing a report folder atomically."""

from __future__ import annotations

import json

import pytest
from test_report_data import planted_search, report_of

from tune_gpt.errors import UserError
from tune_gpt.report import write_report, write_report_for
from tune_gpt.report.folder import find_results


def save_search(root, name="beginner-demo"):
    trials, curves, meta = planted_search()
    folder = root / name / "results"
    folder.mkdir(parents=True)
    trials.to_csv(folder / "trials.csv", index=False)
    curves.to_csv(folder / "curves.csv", index=False)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_write_report_writes_everything_and_replaces_atomically(tmp_path):
    out = tmp_path / "reports" / "x"
    path = write_report(report_of("planted"), out)
    assert path == out / "report.md" and path.read_text().startswith("# Tuning report: beginner-demo")
    names = {p.name for p in out.iterdir()}
    assert names == {"report.md", "curves.png", "importances.png", "pareto.png", "parallel.png",
                     "best_config.yaml", "best_config_nanogpt.py", "next_space.yaml"}
    assert (out / "curves.png").read_bytes() == report_of("planted").figures["curves.png"]
    (out / "stale.txt").write_text("old")
    write_report(report_of("clean"), out)
    assert not (out / "stale.txt").exists()
    assert (out / "report.md").read_text().startswith("# Tuning report: clean")
    assert [p.name for p in out.parent.iterdir()] == ["x"]  # no temporary folders left


def test_write_report_for_reads_a_search_folder(tmp_path):
    save_search(tmp_path / "runs")
    out = tmp_path / "rep"
    path = write_report_for("beginner-demo", storage_path=tmp_path / "runs", lang="zh", out=out)
    text = path.read_text()
    assert "显存" in text and "`t_oom`" in text and "`t_rescue`" in text
    # the search's own folder, or its results folder, works too
    assert find_results(str(tmp_path / "runs" / "beginner-demo")).name == "results"
    assert find_results(str(tmp_path / "runs" / "beginner-demo" / "results")).name == "results"


def test_missing_results_are_a_clear_user_error(tmp_path):
    with pytest.raises(UserError, match="no results for search 'nope'.*trials.csv"):
        write_report_for("nope", storage_path=tmp_path)


def test_cli_report_command(tmp_path, capsys):
    from tune_gpt.cli import main

    save_search(tmp_path / "runs")
    rc = main(["report", "beginner-demo", "--storage-path", str(tmp_path / "runs"),
               "--out", str(tmp_path / "r")])
    assert rc == 0 and "report:" in capsys.readouterr().out
    assert (tmp_path / "r" / "report.md").exists()
    assert main(["report", "missing", "--storage-path", str(tmp_path / "runs")]) == 2


def test_load_results_gives_a_search_meta_and_keeps_reading_old_files(tmp_path):
    from tune_gpt.report.folder import load_results
    from tune_gpt.trial import SearchMeta

    folder = save_search(tmp_path / "runs")
    meta = json.loads((folder / "meta.json").read_text())
    del meta["name"]
    (folder / "meta.json").write_text(json.dumps({**meta, "from_a_future_version": True}))
    _, _, got = load_results(folder)
    assert isinstance(got, SearchMeta) and got.name == "beginner-demo"  # from the folder
    assert got.memory_limit_bytes == meta["memory_limit_bytes"]
    (folder / "meta.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="meta.json: must hold a JSON object"):
        load_results(folder)
