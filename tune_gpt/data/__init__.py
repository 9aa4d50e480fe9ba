"""Data sets: a text file, nanoGPT's name for tinyshakespeare, or a nanoGPT data folder.

    data = prepare("shakespeare_char")                    # downloaded once, char-level
    data = prepare("notes.txt")                           # any UTF-8 text, char-level
    data = prepare("notes.txt", tokenizer="gpt2")         # the same text as GPT-2 BPE
    data = prepare("~/nanoGPT/data/openwebtext")          # nanoGPT's folder, read in place
    x, y = get_batch(data, "train", 12, 64, torch.Generator().manual_seed(1), "cpu")
    data.decode(data.encode("hello"))
    peek("notes.txt", block_size=256)                    # what validate checks: no tokenising
    print(doctor(data, tokens_per_trial=2_000_000).format())

Every kind becomes the same thing: a folder of `train.bin` / `val.bin` uint16 ids
(nanoGPT's format) plus how to decode them (PreparedData). Text is tokenised once into
the cache, `$TUNE_GPT_CACHE_DIR`, else `~/.cache/tune-gpt`; a nanoGPT folder is used where
it lies. numpy and torch are imported inside the functions that need them, so `tune-gpt
estimate` stays quick.

Modules: prepared (PreparedData, Vocab, Codec), text (text files, the download), folder
(nanoGPT folders, meta.pkl, identity, shipping to trials), bpe (tiktoken), batches
(get_batch), doctor (what a data set holds and what a search of it will see).
"""

from __future__ import annotations

from pathlib import Path

from tune_gpt.data.batches import get_batch
from tune_gpt.data.folder import read_folder, read_meta_pkl
from tune_gpt.data.prepared import (GPT2_PADDED_VOCAB, GPT2_VOCAB, TOKENIZERS, Codec,
                                    PreparedData, Vocab, default_cache_dir)
from tune_gpt.data.text import (SHAKESPEARE, SHAKESPEARE_SHA256, SHAKESPEARE_VOCAB, read_text,
                                shakespeare_path, vocab_size_of)
from tune_gpt.errors import UserError


def peek(dataset: str, tokenizer: str = "auto", block_size: int | None = None) -> None:
    """What `prepare` would refuse, found cheaply (what `tune-gpt validate` checks): a text
    file must exist and start as UTF-8 (its first MiB is decoded, nothing is tokenised); a
    folder must be a nanoGPT data folder (its meta and first MiB of ids are read); the
    validation split must be longer than `block_size` where that is known without preparing.
    shakespeare_char is not fetched."""
    from tune_gpt.config import TrainConfig, check_block_size
    from tune_gpt.data.text import peek_text

    if tokenizer not in TOKENIZERS:
        raise UserError(f"'tokenizer' must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    path = Path(dataset).expanduser()
    if path.is_dir():
        n_val: int | None = read_folder(path, tokenizer).n_val
    elif dataset == SHAKESPEARE and not path.exists():
        return  # fetched and checked on first use
    else:
        n_val = peek_text(path, tokenizer)
    if block_size and n_val is not None:
        check_block_size(TrainConfig(block_size=block_size), n_val)


def prepare(dataset: str, cache_dir: str | Path | None = None,
            tokenizer: str = "auto") -> PreparedData:
    """The data set `dataset` names, ready for get_batch (raises UserError if unusable)."""
    from tune_gpt.data.text import prepare_text

    if tokenizer not in TOKENIZERS:
        raise UserError(f"'tokenizer' must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    path = Path(dataset).expanduser()
    if path.is_dir():
        return read_folder(path, tokenizer)
    return prepare_text(dataset, cache_dir, tokenizer)


__all__ = ["GPT2_PADDED_VOCAB", "GPT2_VOCAB", "SHAKESPEARE", "SHAKESPEARE_SHA256",
           "SHAKESPEARE_VOCAB", "TOKENIZERS", "Codec", "PreparedData", "Vocab",
           "default_cache_dir", "get_batch", "peek", "prepare", "read_folder", "read_meta_pkl",
           "read_text", "shakespeare_path", "vocab_size_of"]
