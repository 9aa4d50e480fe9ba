"""Datasets: preparation, the content-keyed cache, errors, the download, batches."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_gpt.data import text as data_mod
from tune_gpt.data import get_batch, prepare, vocab_size_of
from tune_gpt.errors import UserError

UNREACHABLE = "http://127.0.0.1:9/input.txt"  # the discard port: refused at once, no network


def _files(d: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in d.iterdir()}


def test_shakespeare_split_vocab_and_files(shakespeare, shakespeare_path: Path) -> None:
    text = shakespeare_path.read_text(encoding="utf-8")
    assert shakespeare.vocab_size == 65
    assert list(shakespeare.vocab.itos) == sorted(set(text))
    assert (shakespeare.n_train, shakespeare.n_val) == (1_003_854, 111_540)  # 90 / 10
    assert shakespeare.train_path.stat().st_size == 2 * shakespeare.n_train  # uint16
    assert shakespeare.val_path.stat().st_size == 2 * shakespeare.n_val
    assert shakespeare.dir.name == shakespeare.sha256[:16]
    assert shakespeare.sha256 == data_mod.SHAKESPEARE_SHA256
    meta = json.loads((shakespeare.dir / "meta.json").read_text())
    assert meta["itos"] == list(shakespeare.vocab.itos)
    assert meta["sha256"] == shakespeare.sha256 and meta["vocab_size"] == 65
    assert meta["source"].endswith("input.txt")
    # The tokens on disk decode back to the text.
    train = np.fromfile(shakespeare.train_path, dtype=np.uint16)
    assert shakespeare.decode(train[:200].tolist()) == text[:200]
    val = np.fromfile(shakespeare.val_path, dtype=np.uint16)
    assert shakespeare.decode(val[-100:].tolist()) == text[-100:]


def test_encode_decode_round_trip_and_unknown_characters(shakespeare) -> None:
    assert shakespeare.decode(shakespeare.encode("ROMEO: hi!")) == "ROMEO: hi!"
    with pytest.raises(UserError, match="not in the vocabulary"):
        shakespeare.encode("naïve €")


def test_second_prepare_reuses_without_rewriting(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("hello world, hello tokens\n" * 50, encoding="utf-8")
    first = prepare(str(text), cache_dir=tmp_path / "cache")
    before = _files(first.dir)
    again = prepare(str(text), cache_dir=tmp_path / "cache")
    assert again.dir == first.dir and _files(again.dir) == before
    # Keyed by content: the same text under another name shares the folder ...
    copy = tmp_path / "b.txt"
    shutil.copy(text, copy)
    assert prepare(str(copy), cache_dir=tmp_path / "cache").dir == first.dir
    assert _files(first.dir) == before
    # ... and a different text gets its own.
    text.write_text("something else entirely\n" * 50, encoding="utf-8")
    assert prepare(str(text), cache_dir=tmp_path / "cache").dir != first.dir
    assert not list((tmp_path / "cache" / "prepared").glob(".*"))  # no temp folders left


def test_concurrent_preparations_of_one_text_agree(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("".join(chr(65 + i % 26) for i in range(20000)), encoding="utf-8")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: prepare(str(text), cache_dir=tmp_path / "c"), range(8)))
    assert len({r.dir for r in results}) == 1
    assert {r.n_train for r in results} == {18000}
    assert np.fromfile(results[0].train_path, dtype=np.uint16).size == 18000
    assert [p.name for p in (tmp_path / "c" / "prepared").iterdir()] == [results[0].dir.name]


def test_default_cache_dir_comes_from_the_environment(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_GPT_CACHE_DIR", str(tmp_path / "env-cache"))
    text = tmp_path / "x.txt"
    text.write_text("abcabcabc" * 20)
    assert prepare(str(text)).dir.parent == tmp_path / "env-cache" / "prepared"


@pytest.mark.parametrize("content, match", [
    (None, "text file not found"),
    (b"", "the file is empty"),
    (b"caf\xe9 au lait", "not UTF-8 text \\(byte 3 is 0xe9\\)"),
])
def test_unusable_files_give_one_clear_error(tmp_path: Path, content: bytes | None,
                                             match: str) -> None:
    path = tmp_path / "in.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        prepare(str(path), cache_dir=tmp_path / "cache")


def test_a_directory_is_not_a_text_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a nanoGPT data folder .no train.bin.; pass a UTF-8 text file"):
        prepare(str(tmp_path), cache_dir=tmp_path / "cache")


def test_offline_shakespeare_says_how_to_pass_a_local_copy(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_mod, "SHAKESPEARE_URL", UNREACHABLE)
    with pytest.raises(UserError) as err:
        prepare("shakespeare_char", cache_dir=tmp_path / "empty-cache")
    msg = str(err.value)
    assert msg.startswith("could not download tinyshakespeare (")
    assert ("pass a local copy with --data PATH "
            "(for example ../shared/data/shakespeare_char/input.txt)") in msg
    assert "\n" not in msg


def test_download_is_checked_and_cached(tmp_path: Path, shakespeare_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A file:// URL exercises the real download code without the network.
    monkeypatch.setattr(data_mod, "SHAKESPEARE_URL", shakespeare_path.as_uri())
    got = prepare("shakespeare_char", cache_dir=tmp_path / "cache")
    cached = tmp_path / "cache" / "datasets" / "shakespeare_char" / "input.txt"
    assert cached.read_bytes() == shakespeare_path.read_bytes()
    assert got.name == "shakespeare_char" and got.vocab_size == 65
    # Now offline: the cached copy is used.
    monkeypatch.setattr(data_mod, "SHAKESPEARE_URL", UNREACHABLE)
    assert prepare("shakespeare_char", cache_dir=tmp_path / "cache").dir == got.dir


def test_a_wrong_download_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake.txt"
    fake.write_text("not shakespeare")
    monkeypatch.setattr(data_mod, "SHAKESPEARE_URL", fake.as_uri())
    with pytest.raises(UserError, match="does not match the expected file"):
        prepare("shakespeare_char", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "datasets" / "shakespeare_char" / "input.txt").exists()


def test_vocab_size_without_preparing(tmp_path: Path) -> None:
    assert vocab_size_of("shakespeare_char") == 65  # no file, no download
    path = tmp_path / "v.txt"
    path.write_text("aabbcc\n")
    assert vocab_size_of(str(path)) == 4


def test_batches_are_shifted_windows_drawn_from_the_generator(shakespeare) -> None:
    x, y = get_batch(shakespeare, "val", 5, 16, torch.Generator().manual_seed(0), "cpu")
    assert x.shape == y.shape == (5, 16) and x.dtype == y.dtype == torch.int64
    assert x.is_contiguous() and y.is_contiguous()
    assert torch.equal(x[:, 1:], y[:, :-1])
    val = np.fromfile(shakespeare.val_path, dtype=np.uint16).astype(np.int64)
    for row, target in zip(x, y):
        starts = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(val, 16)
                                       == row.numpy(), axis=1))
        assert any(val[s + 16] == target[-1] for s in starts)
    again, _ = get_batch(shakespeare, "val", 5, 16, torch.Generator().manual_seed(0), "cpu")
    other, _ = get_batch(shakespeare, "val", 5, 16, torch.Generator().manual_seed(1), "cpu")
    assert torch.equal(x, again) and not torch.equal(x, other)
    assert int(x.max()) < shakespeare.vocab_size
