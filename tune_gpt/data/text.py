"""Text files as data sets: find the text, tokenise it once into a cached token folder.

    data = prepare_text("shakespeare_char")            # downloaded once, then cached
    data = prepare_text("notes.txt", tokenizer="gpt2") # GPT-2 BPE instead of characters

A text is prepared once per content and tokenizer: its tokens go to
`<cache>/prepared/<sha256[:16]>[-gpt2]/` (train.bin, val.bin as uint16, meta.json; see
data.folder.write_folder), so many trials preparing the same text at once never see a
half-written folder, and a second call reuses the folder without writing anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from tune_gpt.data.folder import read_folder, write_folder
from tune_gpt.data.prepared import GPT2_PADDED_VOCAB, PreparedData, default_cache_dir
from tune_gpt.errors import UserError

SHAKESPEARE = "shakespeare_char"
SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                   "tinyshakespeare/input.txt")
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
# The facts of the named data set, kept here once: its size and digest check a download, its
# vocabulary lets `estimate` skip the download, and the report recognises a copy of it.
SHAKESPEARE_BYTES = 1_115_394
SHAKESPEARE_VOCAB = 65  # distinct characters
TRAIN_FRACTION = 0.9
# nanoGPT's data sets that its prepare.py tokenises with GPT-2 BPE (`dataset = 'openwebtext'`
# in its configs): `estimate` knows their vocabulary without the folder.
NANOGPT_BPE_NAMES = ("openwebtext", "shakespeare")


# ----------------------------------------------------------------------------- reading text

def read_text(path: str | Path) -> tuple[str, bytes]:
    """(text, raw bytes) of a UTF-8 file; one clear UserError for each way it can be unusable."""
    p = _existing_file(Path(path))
    raw = p.read_bytes()
    return _decode(p, raw, final=True), raw


PEEK_BYTES = 1 << 20  # what `validate` decodes of a text file


def peek_text(path: str | Path, tokenizer: str = "auto") -> int | None:
    """What read_text would refuse, found without reading the whole file: it exists, is not
    empty, and its first MiB is UTF-8. Returns the tokens of the validation split when the
    whole file was read and it becomes characters; else None (known once it is prepared)."""
    p = _existing_file(Path(path))
    with p.open("rb") as f:
        raw = f.read(PEEK_BYTES + 1)
    whole = len(raw) <= PEEK_BYTES
    text = _decode(p, raw[:PEEK_BYTES], final=whole)
    if not whole or tokenizer == "gpt2":
        return None
    return len(text) - int(len(text) * TRAIN_FRACTION)


def _existing_file(p: Path) -> Path:
    if not p.exists():
        if "/" not in str(p) and "." not in str(p):  # a name, like nanoGPT's 'openwebtext'
            raise UserError(f"{p}: text file not found, and not a data set tune-gpt can fetch "
                            f"(only shakespeare_char); pass --data PATH: a UTF-8 text file or "
                            f"a nanoGPT data folder such as ~/nanoGPT/data/{p} after its "
                            f"prepare.py")
        raise UserError(f"{p}: text file not found; pass an existing file with --data PATH "
                        f"or dataset=shakespeare_char")
    if not p.is_file():
        raise UserError(f"{p}: not a file; pass a UTF-8 text file")
    if p.stat().st_size == 0:
        raise UserError(f"{p}: the file is empty; a dataset needs some text")
    return p


def _decode(p: Path, raw: bytes, final: bool) -> str:
    """UTF-8 text of `raw`; a prefix (final=False) may end inside a character."""
    import codecs

    try:
        return codecs.getincrementaldecoder("utf-8")().decode(raw, final=final)
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x}); "
                        f"convert it, e.g. `iconv -t UTF-8 {p.name}`") from None


def vocab_size_of(dataset: str, tokenizer: str = "auto") -> int:
    """The model's vocabulary for a data set, without preparing it (used by `estimate`)."""
    if tokenizer == "gpt2":
        return GPT2_PADDED_VOCAB
    if Path(dataset).expanduser().is_dir():
        return read_folder(dataset).vocab_size
    if dataset == SHAKESPEARE:
        return SHAKESPEARE_VOCAB
    if dataset in NANOGPT_BPE_NAMES and not Path(dataset).exists():
        return GPT2_PADDED_VOCAB  # nanoGPT's names for its GPT-2 BPE data folders
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

def prepare_text(dataset: str, cache_dir: str | Path | None = None,
                 tokenizer: str = "auto") -> PreparedData:
    """Tokenise `dataset` (the name shakespeare_char or a UTF-8 text file) into the cache,
    or reuse what an earlier call wrote for the same content and tokenizer."""
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
    bpe = tokenizer == "gpt2"
    final = cache / "prepared" / (sha[:16] + ("-gpt2" if bpe else ""))
    if not (final / "meta.json").is_file():
        meta = {"name": name, "source": str(Path(source).resolve()), "sha256": sha,
                "kind": "text"}
        if bpe:
            _write_bpe(text, final, meta)
        else:
            _write_chars(text, final, meta)
    data = read_folder(final)
    # the same content under another name or path shares the folder: report this one's
    return replace(data, name=name, source=str(source))


def _write_chars(text: str, final: Path, meta: dict) -> None:
    import numpy as np

    # Code points of the whole text in one pass; sorting them sorts the characters.
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq = np.unique(codes)
    if len(uniq) > 65536:
        raise UserError(f"{meta['source']}: {len(uniq)} distinct characters do not fit uint16 "
                        f"token ids; use tokenizer=gpt2")
    ids = np.searchsorted(uniq, codes).astype(np.uint16)
    n = int(len(ids) * TRAIN_FRACTION)
    write_folder(final, ids[:n], ids[n:],
                 {**meta, "tokenizer": "char", "vocab_size": len(uniq),
                  "itos": [chr(c) for c in uniq], "n_train": n, "n_val": len(ids) - n})


def _write_bpe(text: str, final: Path, meta: dict) -> None:
    from tune_gpt.data.bpe import encode_splits

    train, val = encode_splits(text)
    if len(train) < 2 or len(val) < 2:
        raise UserError(f"{meta['source']}: too short for GPT-2 BPE ({len(train)} train and "
                        f"{len(val)} val tokens); use more text")
    write_folder(final, train, val,
                 {**meta, "tokenizer": "gpt2", "vocab_size": GPT2_PADDED_VOCAB, "itos": [],
                  "n_train": len(train), "n_val": len(val)})
