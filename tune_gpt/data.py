"""Character-level datasets: find the text, tokenise it once, serve random batches.

    data = prepare("shakespeare_char")            # or prepare("path/to/any.txt")
    x, y = get_batch(data, "train", 12, 64, torch.Generator().manual_seed(1), "cpu")
    data.decode(data.encode("hello"))

A text is prepared once per content: its tokens go to `<cache>/prepared/<sha256[:16]>/`
(train.bin, val.bin as uint16, meta.json), written into a temporary folder and renamed
into place, so many trials preparing the same text at once never see a half-written
folder, and a second call reuses the folder without writing anything.

The cache is `$TUNE_GPT_CACHE_DIR`, else `~/.cache/tune-gpt`. numpy and torch are imported
inside the functions that need them, so `tune-gpt estimate` stays quick.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tune_gpt.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch

SHAKESPEARE = "shakespeare_char"
SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                   "tinyshakespeare/input.txt")
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_BYTES = 1_115_394
SHAKESPEARE_VOCAB = 65  # distinct characters; lets `estimate` skip the download
TRAIN_FRACTION = 0.9


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUNE_GPT_CACHE_DIR") or Path.home() / ".cache" / "tune-gpt")


@dataclass(frozen=True)
class Vocab:
    """Character <-> token id. Ids are positions in the sorted character list."""

    itos: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.itos)

    @cached_property
    def stoi(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.itos)}

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        missing = sorted({ch for ch in text if ch not in stoi})
        if missing:
            raise UserError(f"characters {''.join(missing)!r} are not in the vocabulary "
                            f"({self.size} characters); use only characters of the training text")
        return [stoi[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in ids)


@dataclass(frozen=True)
class PreparedData:
    """A tokenised text on disk, ready for get_batch."""

    name: str          # "shakespeare_char" or the text file's name
    source: str        # the text file the tokens came from
    sha256: str        # of the text's bytes; also names the cache folder
    dir: Path          # <cache>/prepared/<sha256[:16]>
    vocab: Vocab
    n_train: int       # tokens in train.bin
    n_val: int         # tokens in val.bin

    @property
    def train_path(self) -> Path:
        return self.dir / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.dir / "val.bin"

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.vocab.decode(ids)

    def meta(self) -> dict:
        """What a checkpoint keeps so that `sample` can decode without the data."""
        return {"name": self.name, "source": self.source, "sha256": self.sha256,
                "vocab_size": self.vocab_size, "itos": list(self.vocab.itos)}


# ----------------------------------------------------------------------------- reading text

def read_text(path: str | Path) -> tuple[str, bytes]:
    """(text, raw bytes) of a UTF-8 file; one clear UserError for each way it can be unusable."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: text file not found; pass an existing file with --data PATH "
                        f"or dataset=shakespeare_char")
    if not p.is_file():
        raise UserError(f"{p}: not a file; pass a UTF-8 text file")
    raw = p.read_bytes()
    if not raw:
        raise UserError(f"{p}: the file is empty; a dataset needs some text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x}); "
                        f"convert it, e.g. `iconv -t UTF-8 {p.name}`") from None
    return text, raw


def vocab_size_of(dataset: str) -> int:
    """Distinct characters of a dataset, without preparing it (used by `estimate`)."""
    if dataset == SHAKESPEARE:
        return SHAKESPEARE_VOCAB
    text, _ = read_text(dataset)
    return len(set(text))


def shakespeare_path(cache_dir: str | Path | None = None) -> Path:
    """The cached tinyshakespeare file, downloaded and checked on first use."""
    path = Path(cache_dir or default_cache_dir()) / "datasets" / SHAKESPEARE / "input.txt"
    if path.is_file():
        return path
    import urllib.request

    try:
        with urllib.request.urlopen(SHAKESPEARE_URL, timeout=30) as response:
            raw = response.read()
    except (OSError, ValueError) as e:  # URLError, timeouts and refusals are all OSErrors
        reason = getattr(e, "reason", None) or e
        raise UserError(f"could not download tinyshakespeare ({reason}); pass a local copy "
                        f"with --data PATH (for example ../shared/data/shakespeare_char/"
                        f"input.txt)") from None
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) != SHAKESPEARE_BYTES or digest != SHAKESPEARE_SHA256:
        raise UserError(f"downloaded tinyshakespeare does not match the expected file "
                        f"({len(raw)} bytes, sha256 {digest[:16]}...); pass a local copy "
                        f"with --data PATH")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a reader never sees a partial file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".input.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ----------------------------------------------------------------------------- preparing

def prepare(dataset: str, cache_dir: str | Path | None = None) -> PreparedData:
    """Tokenise `dataset` (the name shakespeare_char or a UTF-8 text file) into the cache,
    or reuse what an earlier call wrote for the same content."""
    cache = Path(cache_dir or default_cache_dir())
    if dataset == SHAKESPEARE:
        source, name = shakespeare_path(cache), SHAKESPEARE
    else:
        source, name = Path(dataset), Path(dataset).name
    text, raw = read_text(source)
    sha = hashlib.sha256(raw).hexdigest()
    if name == SHAKESPEARE and sha != SHAKESPEARE_SHA256:
        raise UserError(f"{source}: cached tinyshakespeare is corrupt; delete it to download "
                        f"it again, or pass a local copy with --data PATH")

    final = cache / "prepared" / sha[:16]
    if not (final / "meta.json").is_file():
        _write_prepared(text, final, sha=sha, source=str(Path(source).resolve()), name=name)
    meta = json.loads((final / "meta.json").read_text(encoding="utf-8"))
    return PreparedData(name=name, source=str(source), sha256=sha, dir=final,
                        vocab=Vocab(tuple(meta["itos"])), n_train=meta["n_train"],
                        n_val=meta["n_val"])


def _write_prepared(text: str, final: Path, *, sha: str, source: str, name: str) -> None:
    import numpy as np

    # Code points of the whole text in one pass; sorting them sorts the characters.
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq = np.unique(codes)
    if len(uniq) > 65536:
        raise UserError(f"{source}: {len(uniq)} distinct characters do not fit uint16 token ids")
    ids = np.searchsorted(uniq, codes).astype(np.uint16)
    n = int(len(ids) * TRAIN_FRACTION)
    meta = {"name": name, "source": source, "sha256": sha, "vocab_size": len(uniq),
            "itos": [chr(c) for c in uniq], "n_train": n, "n_val": len(ids) - n}

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        ids[:n].tofile(tmp / "train.bin")
        ids[n:].tofile(tmp / "val.bin")
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(tmp, final)  # atomic; fails if another process got there first
        except OSError:
            if not (final / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- batches

@lru_cache(maxsize=16)
def _tokens(path: str) -> np.memmap:
    # One read-only memmap per file, kept for the process. nanoGPT re-opens its memmap per
    # batch because a long-lived one over a multi-GB file grows the resident set as pages
    # are touched; here those pages are clean, file-backed and at most the file's size (2
    # bytes a character), so keeping one costs nothing that matters and saves an
    # open + mmap per batch.
    import numpy as np

    return np.memmap(path, dtype=np.uint16, mode="r")


def get_batch(data: PreparedData, split: str, batch_size: int, block_size: int,
              generator: torch.Generator, device: str | torch.device = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (x, y) windows of `split`: x (B, T) int64 token ids, y = x shifted left by one.

    Offsets come from `generator` (a CPU torch.Generator) and nothing else, so a run that
    saves and restores its state draws the same batches again."""
    import numpy as np
    import torch

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    tokens = _tokens(str(data.train_path if split == "train" else data.val_path))
    ix = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator).numpy()
    # Gather all windows with one fancy index instead of a Python loop: (B, T + 1).
    windows = tokens[ix[:, None] + np.arange(block_size + 1)].astype(np.int64)
    x = torch.from_numpy(windows[:, :-1].copy())  # copies make x and y contiguous
    y = torch.from_numpy(windows[:, 1:].copy())
    if torch.device(device).type == "cuda":
        # Pinned memory lets the copy overlap with the GPU still running the last step.
        return (x.pin_memory().to(device, non_blocking=True),
                y.pin_memory().to(device, non_blocking=True))
    return x, y
