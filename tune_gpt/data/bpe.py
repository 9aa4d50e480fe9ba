"""GPT-2 BPE through tiktoken: the tokenizer of nanoGPT's `shakespeare` and `openwebtext`.

    enc = gpt2_encoding()        # one clear UserError when tiktoken or its files are missing
    ids = encode_splits(text)    # (train ids, val ids), split as nanoGPT's prepare.py splits

tiktoken downloads GPT-2's two vocabulary files on first use and keeps them in its cache
(`TIKTOKEN_CACHE_DIR`, else a folder under the system temp dir). Offline, with nothing
cached, there is no way to get them: that is said in one line, with the fix.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tune_gpt.errors import UserError

TRAIN_FRACTION = 0.9


@lru_cache(maxsize=1)
def gpt2_encoding() -> Any:
    try:
        import tiktoken
    except ImportError:
        raise UserError("GPT-2 BPE needs tiktoken; install it with `pip install tiktoken`") \
            from None
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as e:  # noqa: BLE001 — requests' ConnectionError, a bad cache, ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise UserError(f"tiktoken could not load GPT-2's BPE files ({type(e).__name__}: "
                        f"{reason}); run once with internet access, or copy a tiktoken cache "
                        f"and point TIKTOKEN_CACHE_DIR at it") from None


def encode_splits(text: str) -> tuple[list[int], list[int]]:
    """nanoGPT's split for BPE data: the first 90% of the *text* is train, the rest val,
    each encoded on its own (ordinary tokens only: '<|endoftext|>' in a text is text)."""
    enc = gpt2_encoding()
    n = int(len(text) * TRAIN_FRACTION)
    return enc.encode_ordinary(text[:n]), enc.encode_ordinary(text[n:])
