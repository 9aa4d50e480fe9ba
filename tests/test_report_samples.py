"""Show the text. When a search finishes, the best trial and the runner-up
each write a short sample from their checkpoint (search/samples.py, results/samples.json);
the report shows both, decoded, from the search folder or from MLflow alone, and goes
without them when a search recorded none. Real tiny checkpoints, trained here in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_report_data import planted_search, section

from tune_gpt.report import build_report, read_samples, write_report_for
from tune_gpt.search.samples import MAX_NEW_TOKENS, SAMPLES_FILE, write_samples


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, shakespeare_path: Path) -> dict[str, Path]:
    """Two tiny models' checkpoints (train.py's format, the one a search's trials write)."""
    from tune_gpt.config import TrainConfig
    from tune_gpt.train import train

    out = {}
    for name, seed in (("one", 1), ("two", 2)):
        d = tmp_path_factory.mktemp(name)
        train(TrainConfig(dataset=str(shakespeare_path), out_dir=str(d), n_layer=1, n_head=2,
                          n_embd=32, block_size=32, batch_size=8, max_iters=30, eval_interval=15,
                          eval_iters=2, warmup_iters=5, lr_decay_iters=30, learning_rate=3e-3,
                          min_lr=3e-4, device="cpu", seed=seed), threads=1, save=True)
        out[name] = d / "ckpt.pt"
    return out


def search_folder(tmp_path: Path, checkpoints: dict[str, Path], ids=("t_over", "t01")) -> Path:
    """A finished search's folder: the planted search's results, and checkpoints for its two
    best trials (t_over, t01) as the trials wrote them (checkpoints/<trial id>.pt)."""
    from tune_gpt.search.collect import write_tables
    from tune_gpt.trial import SearchMeta

    folder = tmp_path / "search"
    (folder / "checkpoints").mkdir(parents=True)
    for tid, ckpt in zip(ids, checkpoints.values()):
        shutil.copy(ckpt, folder / "checkpoints" / f"{tid}.pt")
    trials, curves, meta = planted_search()
    write_tables(folder / "results", trials, curves, SearchMeta.from_dict(meta))
    return folder


def test_the_end_of_search_hook_writes_the_best_two_trials_text(tmp_path, checkpoints, shakespeare):
    import torch

    folder = search_folder(tmp_path, checkpoints)
    trials, _, _ = planted_search()
    threads = torch.get_num_threads()
    written = write_samples(folder, trials, "val_loss")
    assert torch.get_num_threads() == threads  # the driver's setting is left as it was
    saved = json.loads((folder / "results" / SAMPLES_FILE).read_text(encoding="utf-8"))
    assert saved == written and saved["error"] == ""
    # the best and the runner-up by best val_loss (t_div's NaN and the OOMs never count)
    assert [(s["rank"], s["trial_id"]) for s in saved["samples"]] == [(1, "t_over"), (2, "t01")]
    vocab = set(shakespeare.itos())
    for s in saved["samples"]:
        assert s["error"] == "" and s["iter"] == 30
        assert isinstance(s["text"], str) and len(s["text"]) == MAX_NEW_TOKENS  # one char a token
        assert set(s["text"]) <= vocab
    assert saved["samples"][0]["text"] != saved["samples"][1]["text"]  # two different models
    again = write_samples(folder, trials, "val_loss")  # a fixed prompt and seed: reproducible
    assert [s["text"] for s in again["samples"]] == [s["text"] for s in saved["samples"]]


def test_the_report_shows_the_decoded_text_of_best_and_runner_up(tmp_path, checkpoints):
    folder = search_folder(tmp_path, checkpoints)
    trials, curves, meta = planted_search()
    samples = write_samples(folder, trials, "val_loss")["samples"]
    first, second = (s["text"].strip().splitlines()[0] for s in samples)
    for lang, title, head in (("en", "### What the best trials write", "**#1 `t_over`** — best val_loss 1.451"),
                              ("zh", "### 最好的试验写出了什么", "**第 1 名 `t_over`** —— 最佳 val_loss 1.451")):
        path = write_report_for(str(folder), lang=lang, out=tmp_path / f"rep-{lang}")
        text = section(path.read_text(encoding="utf-8"), 2)
        assert title in text and head in text and "`t01`" in text
        assert "```text\n" in text and first in text and second in text
        assert text.index(first) < text.index(second)
    en = section((tmp_path / "rep-en" / "report.md").read_text(encoding="utf-8"), 2)
    assert 'continued the prompt `"\\n"` for 300 tokens' in en and "seed 1337" in en


def test_a_sample_that_cannot_be_made_is_recorded_and_the_rest_goes_on(tmp_path, checkpoints):
    folder = search_folder(tmp_path, checkpoints, ids=("t_over",))  # t01 has no checkpoint
    trials, curves, meta = planted_search()
    written = write_samples(folder, trials, "val_loss")
    best, runner = written["samples"]
    assert best["error"] == "" and best["text"]
    assert runner["text"] is None and runner["error"].startswith("FileNotFoundError: no checkpoint")
    (folder / "checkpoints" / "t_over.pt").write_bytes(b"not a checkpoint")
    broken = write_samples(folder, trials, "val_loss")["samples"][0]
    assert broken["text"] is None and broken["error"]
    md = build_report(trials, curves, meta, samples=written).markdown
    assert "**#2 `t01`**: no sample (FileNotFoundError: no checkpoint" in md
    # a search in which no trial trained: one line, no crash
    none = write_samples(tmp_path / "empty", trials.assign(outcome="oom"), "val_loss")
    assert none["samples"] == [] and "no trial" in none["error"]
    md = build_report(trials, curves, meta, samples=none, lang="zh").markdown
    assert "没有文本样本：no trial trained far enough" in md


def test_a_search_without_samples_has_no_samples_section(tmp_path):
    trials, curves, meta = planted_search()
    assert "What the best trials write" not in build_report(trials, curves, meta).markdown
    assert read_samples(tmp_path) is None
    (tmp_path / SAMPLES_FILE).write_text("{broken")
    assert read_samples(tmp_path) is None
    (tmp_path / SAMPLES_FILE).write_text(json.dumps({"samples": []}))
    assert read_samples(tmp_path) == {"samples": []}


def test_tune_gpt_report_from_mlflow_alone_shows_the_samples_without_torch(tmp_path):
    """The samples travel with the results to MLflow; `tune-gpt report` rebuilds them from
    there, reading plain JSON: neither torch nor ray is imported."""
    from test_tracking import make_search, report_in_fresh_process

    from tune_gpt import tracking
    from tune_gpt.search.collect import best_summary, write_tables
    from tune_gpt.trial import SearchMeta

    uri, parent = make_search(tmp_path)
    trials, curves, _ = tracking.load_search(uri, "demo")
    meta = SearchMeta(name="demo", metric="val_loss", best=best_summary(trials.to_dict("records"),
                                                                        "val_loss", "min"))
    results = tmp_path / "results"
    write_tables(results, trials, curves, meta)
    samples = {"prompt": "\n", "max_new_tokens": 300, "seed": 1337, "temperature": 0.8,
               "top_k": 200, "device": "cpu", "metric": "val_loss", "error": "",
               "samples": [{"rank": 1, "trial_id": "t1", "value": 1.4, "iter": 30, "error": "",
                            "text": "ROMEO:\nWhat light through yonder window"},
                           {"rank": 2, "trial_id": "t2", "value": 2.1, "iter": 20, "error": "",
                            "text": "JULIET:\nO Romeo, Romeo"}]}
    (results / SAMPLES_FILE).write_text(json.dumps(samples))
    tracking.log_folder(uri, parent, results, "results")
    tracking.finish_parent(uri, parent, meta.best, {"completed": 1})
    assert tracking.load_samples(uri, parent) == samples
    assert report_in_fresh_process(uri, tmp_path / "rep", tmp_path) == (0, False, False)
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "ROMEO:\nWhat light through yonder window" in md and "JULIET:\nO Romeo, Romeo" in md
    assert "**#2 `t2`** — best val_loss 2.100, checkpoint of iteration 20:" in md
