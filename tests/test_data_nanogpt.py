"""nanoGPT's data folders (char-level with meta.pkl, GPT-2 BPE without), a hostile
meta.pkl, BPE for text files, the data doctor and how data reaches trials on any node.

The char-level folder is the real one nanoGPT's prepare.py wrote (../shared/data/
nanogpt_shakespeare_char, conftest.py's nanogpt_char); the BPE folders are made here, in
nanoGPT's format."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_gpt.cli import main
from tune_gpt.data import GPT2_PADDED_VOCAB, get_batch, prepare, vocab_size_of
from tune_gpt.data.doctor import doctor
from tune_gpt.data.folder import materialise, shipment
from tune_gpt.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--eval_iters=2", "--warmup_iters=2", "--lr_decay_iters=20", "--learning_rate=3e-3",
        "--min_lr=3e-4", "--log_interval=5", "--device=cpu"]


def bpe_folder(path: Path, n_train: int = 20_000, n_val: int = 4_000, top: int = 50257) -> Path:
    """A folder as nanoGPT's BPE prepare.py writes it: uint16 ids, no meta.pkl."""
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    rng.integers(0, top, n_train, dtype=np.uint16).tofile(path / "train.bin")
    rng.integers(0, top, n_val, dtype=np.uint16).tofile(path / "val.bin")
    return path


class _RunsCode:
    """Unpickling this calls os.system: what a hostile meta.pkl would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- char folders

def test_nanogpt_folder_gives_the_same_tokens_as_the_text(nanogpt_char: Path, shakespeare) -> None:
    data = prepare(str(nanogpt_char))
    assert (data.kind, data.tokenizer, data.vocab_size) == ("folder", "char", 65)
    assert data.itos() == shakespeare.itos()
    assert (data.n_train, data.n_val) == (shakespeare.n_train, shakespeare.n_val)
    for split in ("train", "val"):
        mine = np.fromfile(shakespeare.dir / f"{split}.bin", dtype=np.uint16)
        theirs = np.memmap(nanogpt_char / f"{split}.bin", dtype=np.uint16, mode="r")
        assert np.array_equal(mine, theirs)
    # read in place, and the batches are the same windows
    assert data.dir == nanogpt_char.resolve()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    xa, ya = get_batch(data, "train", 4, 16, g1, "cpu")
    xb, yb = get_batch(shakespeare, "train", 4, 16, g2, "cpu")
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert data.decode(xa[0].tolist()) == shakespeare.decode(xb[0].tolist())


def test_folder_identity_keys_on_content_not_place(nanogpt_char: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "shakespeare_char"
    shutil.copytree(nanogpt_char, copy)
    a, b = prepare(str(nanogpt_char)), prepare(str(copy))
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    with open(copy / "val.bin", "r+b") as f:  # one token changed in the hashed prefix
        f.write(np.array([1], dtype=np.uint16).tobytes())
    assert prepare(str(copy)).sha256 != a.sha256


def test_a_hostile_meta_pkl_is_refused_and_nothing_runs(nanogpt_char: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    for name in ("train.bin", "val.bin"):
        (folder / name).write_bytes((nanogpt_char / name).read_bytes()[:20_000])
    marker = tmp_path / "ran"
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65, "x": _RunsCode(marker)}))
    with pytest.raises(UserError, match=r"meta.pkl: refused \(it refers to posix.system\)"):
        prepare(str(folder))
    out_dir = tmp_path / "out"
    code = main(["train", "--data", str(folder), "--max_iters=2", f"--out_dir={out_dir}", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "meta.pkl: refused" in err
    assert not marker.exists() and not out_dir.exists()


def test_a_meta_pkl_that_does_not_match_its_tokens(nanogpt_char: Path, tmp_path: Path) -> None:
    folder = tmp_path / "wrong"
    folder.mkdir()
    for name in ("train.bin", "val.bin"):
        (folder / name).write_bytes((nanogpt_char / name).read_bytes())
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 10, "itos": {
        i: chr(97 + i) for i in range(10)}}))
    with pytest.raises(UserError, match="outside the vocabulary"):
        prepare(str(folder))


# ----------------------------------------------------------------------------- BPE folders

def test_a_bpe_folder_trains_with_nanogpts_padded_vocab(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    folder = bpe_folder(tmp_path / "openwebtext")
    data = prepare(str(folder))
    assert (data.tokenizer, data.vocab_size, data.n_train) == ("gpt2", GPT2_PADDED_VOCAB, 20_000)
    assert vocab_size_of(str(folder)) == GPT2_PADDED_VOCAB

    assert main(["estimate", "--data", str(folder), *TINY]) == 0
    assert "vocab 50304" in capsys.readouterr().out

    out_dir = tmp_path / "out"
    code = main(["train", "--data", str(folder), "--threads", "1", "--max_iters=4",
                 "--eval_interval=2", f"--out_dir={out_dir}", *TINY])
    out = capsys.readouterr().out
    assert code == 0 and "vocab 50304" in out and "trained 4 iterations" in out
    ckpt = torch.load(out_dir / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ckpt["meta"]["vocab_size"] == GPT2_PADDED_VOCAB and ckpt["meta"]["tokenizer"] == "gpt2"
    assert ckpt["model"]["transformer.wte.weight"].shape[0] == GPT2_PADDED_VOCAB

    # sampling decodes with tiktoken: offline, without GPT-2's files, one line says so
    from tune_gpt.data import bpe

    bpe.gpt2_encoding.cache_clear()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-tiktoken-cache"))
    try:
        code = main(["sample", str(out_dir / "ckpt.pt"), "--max-new-tokens", "5",
                     "--num-samples", "1", "--device", "cpu"])
    finally:
        bpe.gpt2_encoding.cache_clear()
    captured = capsys.readouterr()
    assert code == 0 or (code == 2 and "GPT-2's BPE files" in captured.err
                         and len(captured.err.strip().splitlines()) == 1)


def test_bpe_ids_beyond_gpt2_are_refused(tmp_path: Path) -> None:
    folder = bpe_folder(tmp_path / "bad", top=60000)
    with pytest.raises(UserError, match="outside the vocabulary \\(50257\\)"):
        prepare(str(folder))


def test_a_text_file_as_gpt2_bpe(tmp_path: Path, shakespeare_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's real BPE code with a byte-level vocabulary made here (GPT-2's own files
    need a download, which this machine cannot make)."""
    import tiktoken

    from tune_gpt.data import bpe

    enc = tiktoken.Encoding(name="bytes", pat_str=r"""'s|'t| ?\w+| ?[^\s\w]+|\s+""",
                            mergeable_ranks={bytes([i]): i for i in range(256)},
                            special_tokens={})
    monkeypatch.setattr(bpe, "gpt2_encoding", lambda: enc)
    text = tmp_path / "notes.txt"
    text.write_text(shakespeare_path.read_text(encoding="utf-8")[:50_000], encoding="utf-8")
    data = prepare(str(text), tokenizer="gpt2")
    assert (data.tokenizer, data.vocab_size, data.kind) == ("gpt2", GPT2_PADDED_VOCAB, "text")
    assert data.dir.name.endswith("-gpt2")
    ids = np.fromfile(data.train_path, dtype=np.uint16)
    assert data.n_train == len(ids) and data.decode(ids[:300].tolist()) == \
        text.read_text(encoding="utf-8")[:300]  # byte-level: one id a byte of this ASCII text
    assert data.decode([50300, 104, 105]) == "hi"  # padding ids are dropped, not decoded
    again = prepare(str(text), tokenizer="gpt2")
    assert again.dir == data.dir and again.sha256 == data.sha256
    assert prepare(str(text)).tokenizer == "char"  # the char-level copy is a separate folder


def test_gpt2_offline_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    from tune_gpt.data import bpe

    bpe.gpt2_encoding.cache_clear()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-tiktoken-cache"))
    # offline on every machine, online ones too: the download goes to a closed port
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 100)
    try:
        code = main(["data", str(text), "--tokenizer", "gpt2"])
    finally:
        bpe.gpt2_encoding.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "GPT-2's BPE files" in err and "TIKTOKEN_CACHE_DIR" in err


# ----------------------------------------------------------------------------- the doctor

def test_the_doctor_counts_epochs_and_warns(tmp_path: Path) -> None:
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("abcdefghij" * 1_400 + "\n", encoding="utf-8")  # 14,001 characters
    data = prepare(str(corpus))
    assert (data.n_train, data.n_val) == (12_600, 1_401)
    rep = doctor(data, tokens_per_trial=1_200_000, block_size=64, batch_size=12)
    assert rep.epochs == pytest.approx(1_200_000 / 12_600)  # 95.2
    assert rep.many_epochs and rep.small_val and rep.val_windows == 1_401 // 64
    text = rep.format()
    assert "1,200,000 tokens = 95.24 epochs" in text
    assert "95 epochs of a 12,600-token corpus: overfitting territory" in text
    assert "21 distinct 64-token windows" in text
    assert rep.ln_vocab == pytest.approx(np.log(11))
    # ten letters equally often, one newline: just under ln 10
    assert 2.2 < rep.unigram_entropy < np.log(10) + 1e-9
    few = doctor(data, tokens_per_trial=25_200)
    assert few.epochs == pytest.approx(2.0) and not few.warnings


def test_tune_gpt_data_on_nanogpts_folder(nanogpt_char: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["data", str(nanogpt_char), "--tokens-per-trial", "2M", "--block-size", "256",
                 "--batch-size", "64"])
    out = capsys.readouterr().out
    assert code == 0
    assert "tokenizer char, vocab 65" in out and "train 1,003,854 tokens, val 111,540" in out
    assert "2,000,000 tokens = 1.99 epochs" in out  # 435 windows of 256 >= 5 batches of 64
    assert "ln(vocab) = 4.174" in out
    assert "warning" not in out


def test_tune_gpt_data_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["data", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "not a nanoGPT data folder (no train.bin)" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- to the trials

def test_a_small_data_set_travels_to_the_trial(nanogpt_char: Path, tmp_path: Path) -> None:
    data = prepare(str(nanogpt_char))
    ship = shipment(data)
    assert set(ship["files"]) == {"train.bin", "val.bin"}
    got = materialise(ship, tmp_path / "node-cache")
    assert got.sha256 == data.sha256 and got.itos() == data.itos()
    assert got.dir != data.dir and (got.dir / "train.bin").read_bytes() == \
        (nanogpt_char / "train.bin").read_bytes()
    again = materialise(ship, tmp_path / "node-cache")  # a second trial on the node reuses it
    assert again.dir == got.dir
    ship["files"]["val.bin"] = ship["files"]["val.bin"][:-2]
    with pytest.raises(RuntimeError, match="arrived changed"):
        materialise(ship, tmp_path / "other-node")


def test_a_big_data_set_is_read_where_it_lies(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tune_gpt.data import folder as folder_mod
    from trainables.gpt import receive_data

    big = bpe_folder(tmp_path / "owt")
    monkeypatch.setattr(folder_mod, "SHIP_LIMIT_BYTES", 1_000)  # "big" = over 1 kB here
    data = prepare(str(big))
    ship = shipment(data)
    assert ship == {"path": str(big.resolve()), "sha256": data.sha256}
    assert receive_data(ship).sha256 == data.sha256
    node = os.uname().nodename
    with pytest.raises(UserError, match=f"node {node}: no data folder at /nowhere"):
        receive_data({"path": "/nowhere", "sha256": data.sha256})
    with pytest.raises(UserError, match=f"node {node}: the data at .* differs"):
        receive_data({**ship, "sha256": "0" * 64})
