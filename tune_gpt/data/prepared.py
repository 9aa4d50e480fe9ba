"""What every data set becomes: a folder of uint16 token ids plus how to read them.

    data.train_path, data.val_path      # train.bin / val.bin (uint16, nanoGPT's format)
    data.vocab_size, data.tokenizer     # 65, "char"  |  50304, "gpt2"  |  N, "ids"
    data.decode(data.encode("ROMEO:"))

Three tokenizers:
- `char`: one token per character, ids = positions in the sorted character list (what
  nanoGPT's shakespeare_char prepare.py writes, and what tune-gpt writes for a text file);
- `gpt2`: GPT-2's BPE through tiktoken, vocab 50257 padded to 50304 as nanoGPT pads it
  (a multiple of 64 is faster on GPUs; the extra ids are never in the data);
- `ids`: a nanoGPT folder whose meta.pkl gives a vocab_size but no `itos`: it trains,
  but its tokens cannot be turned back into text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tune_gpt.config import TOKENIZERS  # the `tokenizer` knob; auto = what the data says
from tune_gpt.errors import UserError
GPT2_VOCAB = 50257
GPT2_PADDED_VOCAB = 50304               # nanoGPT: 50257 rounded up to a multiple of 64


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


class Codec:
    """Text <-> ids for one tokenizer; what `sample` rebuilds from a checkpoint's meta."""

    def __init__(self, tokenizer: str, vocab: Vocab | None = None, where: str = "") -> None:
        self.tokenizer, self.vocab, self.where = tokenizer, vocab, where

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Codec:
        # checkpoints older than the tokenizer field are char-level
        tokenizer = meta.get("tokenizer", "char")
        itos = meta.get("itos")
        return cls(tokenizer, Vocab(tuple(itos)) if tokenizer == "char" and itos else None,
                   str(meta.get("name", "")))

    def encode(self, text: str) -> list[int]:
        if self.tokenizer == "char" and self.vocab is not None:
            return self.vocab.encode(text)
        if self.tokenizer == "gpt2":
            from tune_gpt.data.bpe import gpt2_encoding

            return gpt2_encoding().encode_ordinary(text)
        raise UserError(f"{self.where or 'this data set'} has token ids but no vocabulary "
                        f"(its meta.pkl has no 'itos'); tune-gpt cannot turn text into its "
                        f"tokens; add itos to meta.pkl")

    def decode(self, ids: Sequence[int]) -> str:
        if self.tokenizer == "char" and self.vocab is not None:
            return self.vocab.decode(ids)
        if self.tokenizer == "gpt2":
            from tune_gpt.data.bpe import gpt2_encoding

            # padding ids (50257..50303) are not GPT-2 tokens: an untrained model may emit them
            return gpt2_encoding().decode([i for i in ids if i < GPT2_VOCAB])
        return " ".join(str(i) for i in ids)


@dataclass(frozen=True)
class PreparedData:
    """A tokenised data set on disk, ready for get_batch."""

    name: str          # shakespeare_char, the text file's name, or the folder's name
    source: str        # the text file or nanoGPT folder the tokens came from
    sha256: str        # identity: of the text's bytes, or of a folder (see data.folder)
    dir: Path          # the folder holding train.bin and val.bin
    tokenizer: str     # char | gpt2 | ids
    vocab_size: int    # the model's vocabulary (gpt2: padded to 50304)
    n_train: int       # tokens in train.bin
    n_val: int         # tokens in val.bin
    vocab: Vocab | None = None   # char-level only
    kind: str = "text"           # text (tokenised into the cache) | folder (read in place)

    @property
    def train_path(self) -> Path:
        return self.dir / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.dir / "val.bin"

    @cached_property
    def codec(self) -> Codec:
        return Codec(self.tokenizer, self.vocab, self.name)

    def encode(self, text: str) -> list[int]:
        return self.codec.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.codec.decode(ids)

    def itos(self) -> list[str]:
        return list(self.vocab.itos) if self.vocab is not None else []

    def meta(self) -> dict:
        """What a checkpoint keeps so that `sample` can decode without the data."""
        return {"name": self.name, "source": self.source, "sha256": self.sha256,
                "vocab_size": self.vocab_size, "tokenizer": self.tokenizer,
                "itos": self.itos()}

    def size_bytes(self) -> int:
        return 2 * (self.n_train + self.n_val)
