"""Token folders: nanoGPT's prepared data sets, and the cache folders tune-gpt writes.

    data = read_folder("~/nanoGPT/data/shakespeare_char")   # train.bin, val.bin, meta.pkl
    data = read_folder("~/nanoGPT/data/openwebtext")        # no meta.pkl: GPT-2 BPE

A folder holds `train.bin` and `val.bin` (uint16 token ids, nanoGPT's format) and says how
to read them in one of three ways:
- `meta.json`: written by tune-gpt when it tokenises a text file (tokenizer, vocabulary,
  the text's sha256);
- `meta.pkl`: written by nanoGPT's char-level prepare.py ({vocab_size, itos, stoi}). It is a
  pickle, so it is read by an unpickler that refuses every class and function: plain
  dicts, lists, strings and ints load, anything that would run code is an error;
- neither: GPT-2 BPE, as nanoGPT's shakespeare and openwebtext prepare.py write it.

The folder is read in place and memory-mapped by get_batch: a 17 GB openwebtext folder
costs no RAM to open. Its identity (which keys resume and MLflow) is a sha256 of the two
files' sizes, their first MiB and meta.pkl, not a hash of 17 GB.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tune_gpt.data.prepared import GPT2_PADDED_VOCAB, GPT2_VOCAB, PreparedData, Vocab
from tune_gpt.errors import UserError

IDENTITY_PREFIX = 1 << 20      # bytes of each .bin hashed into a folder's identity
CHECK_TOKENS = 1 << 20         # token ids checked against the vocabulary on open


class _NoObjects(pickle.Unpickler):
    """Unpickles only what needs no lookup: dict, list, tuple, str, int, float, bool, None.
    Every other object reaches a pickle through find_class, which refuses."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def read_meta_pkl(path: Path) -> dict[str, Any]:
    """nanoGPT's meta.pkl as {vocab_size, itos (optional)}; nothing in it runs."""
    try:
        meta = _NoObjects(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            KeyError, AttributeError, MemoryError) as e:
        raise UserError(f"{path}: refused ({e}); tune-gpt reads only plain dicts, strings and "
                        f"ints from meta.pkl and runs nothing in it; write it with nanoGPT's "
                        f"prepare.py") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("vocab_size"), int) \
            or isinstance(meta.get("vocab_size"), bool) or not 1 <= meta["vocab_size"] <= 65536:
        raise UserError(f"{path}: expected a dict with an integer vocab_size (1..65536), as "
                        f"nanoGPT's prepare.py writes it")
    out: dict[str, Any] = {"vocab_size": meta["vocab_size"]}
    itos = meta.get("itos")
    if itos is not None:
        n = meta["vocab_size"]
        if not isinstance(itos, dict) or sorted(itos) != list(range(n)) \
                or not all(isinstance(s, str) for s in itos.values()):
            raise UserError(f"{path}: 'itos' must map every id 0..{n - 1} to a string")
        out["itos"] = [itos[i] for i in range(n)]
    return out


def identity(folder: Path, extra: bytes = b"") -> str:
    """sha256 of the token files' sizes and first MiB, and of `extra` (the meta file)."""
    h = hashlib.sha256(b"tune-gpt token folder v1\0")
    for name in ("train.bin", "val.bin"):
        p = folder / name
        h.update(f"{name}:{p.stat().st_size}\0".encode())
        with p.open("rb") as f:
            h.update(f.read(IDENTITY_PREFIX))
    h.update(extra)
    return h.hexdigest()


def read_folder(path: str | Path, tokenizer: str = "auto") -> PreparedData:
    """A nanoGPT data folder (or a tune-gpt cache folder) as PreparedData, read in place."""
    folder = Path(path).expanduser()
    for name in ("train.bin", "val.bin"):
        p = folder / name
        if not p.is_file():
            raise UserError(f"{folder}: a folder but not a nanoGPT data folder (no {name}); "
                            f"pass a UTF-8 text file, or a folder with train.bin and val.bin "
                            f"(nanoGPT's data/<name>/prepare.py writes them)")
        size = p.stat().st_size
        if size < 4 or size % 2:
            raise UserError(f"{p}: {size} bytes is not a file of uint16 token ids "
                            f"(nanoGPT's format: 2 bytes a token)")
    if (folder / "meta.json").is_file():
        return _read_cache_folder(folder, tokenizer)

    pkl = folder / "meta.pkl"
    if pkl.is_file():
        meta = read_meta_pkl(pkl)
        kind = "char" if "itos" in meta else "ids"
        vocab_size, extra = meta["vocab_size"], pkl.read_bytes()
    else:
        kind, vocab_size, extra = "gpt2", GPT2_PADDED_VOCAB, b"gpt2"
    if tokenizer not in ("auto", kind) and not (tokenizer == "char" and kind == "ids"):
        raise UserError(f"{folder}: tokenizer={tokenizer} but the folder is {kind} "
                        f"({'meta.pkl' if pkl.is_file() else 'no meta.pkl: GPT-2 BPE'}); "
                        f"drop the tokenizer setting, the folder decides")
    _check_ids(folder, GPT2_VOCAB if kind == "gpt2" else vocab_size)
    n_train = (folder / "train.bin").stat().st_size // 2
    n_val = (folder / "val.bin").stat().st_size // 2
    vocab = Vocab(tuple(meta["itos"])) if kind == "char" else None
    return PreparedData(name=folder.resolve().name, source=str(folder.resolve()),
                        sha256=identity(folder, extra), dir=folder.resolve(), tokenizer=kind,
                        vocab_size=vocab_size, n_train=n_train, n_val=n_val, vocab=vocab,
                        kind="folder")


def _check_ids(folder: Path, vocab_size: int) -> None:
    """The first MiB of tokens of each split must be ids of the vocabulary: a folder of the
    wrong tokenizer (BPE ids read as characters) fails here, not as a CUDA assert."""
    import numpy as np

    for name in ("train.bin", "val.bin"):
        ids = np.memmap(folder / name, dtype=np.uint16, mode="r")[:CHECK_TOKENS]
        top = int(ids.max())
        if top >= vocab_size:
            raise UserError(f"{folder / name}: token id {top} is outside the vocabulary "
                            f"({vocab_size}); the folder's meta.pkl does not match its .bin "
                            f"files (re-run its prepare.py)")


def _read_cache_folder(folder: Path, tokenizer: str) -> PreparedData:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        kind = meta.get("tokenizer", "char")
        vocab = Vocab(tuple(meta["itos"])) if kind == "char" else None
        data = PreparedData(name=meta["name"], source=meta["source"], sha256=meta["sha256"],
                            dir=folder.resolve(), tokenizer=kind,
                            vocab_size=int(meta["vocab_size"]), n_train=int(meta["n_train"]),
                            n_val=int(meta["n_val"]), vocab=vocab,
                            kind=meta.get("kind", "text"))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{folder / 'meta.json'}: unreadable ({e}); delete the folder and "
                        f"prepare the data again") from None
    if tokenizer not in ("auto", data.tokenizer):
        raise UserError(f"{folder}: tokenizer={tokenizer} but the folder is {data.tokenizer}")
    return data


def write_folder(final: Path, train: Any, val: Any, meta: dict[str, Any]) -> None:
    """Write train.bin, val.bin and meta.json into a temporary folder and rename it into
    place: trials preparing the same data at once never see a half-written folder."""
    import numpy as np

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        np.asarray(train, dtype=np.uint16).tofile(tmp / "train.bin")
        np.asarray(val, dtype=np.uint16).tofile(tmp / "val.bin")
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(tmp, final)  # atomic; fails if another process got there first
        except OSError:
            if not (final / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- shipping

SHIP_LIMIT_BYTES = 256 << 20   # data up to this size travels through Ray's object store


def meta_json(data: PreparedData) -> dict[str, Any]:
    """The meta.json that describes `data` in a cache folder."""
    return {"name": data.name, "source": data.source, "sha256": data.sha256,
            "tokenizer": data.tokenizer, "vocab_size": data.vocab_size, "itos": data.itos(),
            "n_train": data.n_train, "n_val": data.n_val, "kind": data.kind}


def ship_by_path(data: PreparedData) -> str | None:
    """The path trials read `data` from when it is too big to ship, else None."""
    if data.size_bytes() <= SHIP_LIMIT_BYTES:
        return None
    return str(data.dir if data.kind == "text" else data.source)


def shipment(data: PreparedData) -> dict[str, Any]:
    """What a trial needs to rebuild `data` on any node: the token files themselves when
    they are small, else the path (which every node must see; see search.nodes)."""
    path = ship_by_path(data)
    if path is not None:
        return {"path": path, "sha256": data.sha256}
    return {"files": {n: (data.dir / n).read_bytes() for n in ("train.bin", "val.bin")},
            "meta": meta_json(data), "check": identity(data.dir), "sha256": data.sha256}


def read_shipped_path(path: str, sha256: str) -> PreparedData:
    """The data set a shipment sent by path names, as this machine sees it; a UserError
    says why not (no folder there, or different data)."""
    if not os.path.isdir(path):
        raise UserError(f"no data folder at {path}")
    data = read_folder(path)
    if data.sha256 != sha256:
        raise UserError(f"the data at {path} differs from the driver's (identity "
                        f"{data.sha256[:12]} != {sha256[:12]})")
    return data


def materialise(ship: dict[str, Any], cache: Path) -> PreparedData:
    """Write shipped token files into this node's cache once, check they arrived whole."""
    final = cache / "incoming" / ship["sha256"][:16]
    if not (final / "meta.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        try:
            for name, blob in ship["files"].items():
                (tmp / name).write_bytes(blob)
            (tmp / "meta.json").write_text(json.dumps(ship["meta"]), encoding="utf-8")
            try:
                os.rename(tmp, final)  # atomic: trials on one node may race here
            except OSError:
                if not (final / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if identity(final) != ship["check"]:
        raise RuntimeError(f"data set arrived changed; delete {final} and retry")
    return read_folder(final)
