"""Random training windows from a token folder, memory-mapped.

    x, y = get_batch(data, "train", 12, 64, torch.Generator().manual_seed(1), "cpu")
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from tune_gpt.data.prepared import PreparedData

if TYPE_CHECKING:
    import numpy as np
    import torch


@lru_cache(maxsize=16)
def _tokens(path: str) -> np.memmap:
    # One read-only memmap per file, kept for the process. nanoGPT re-opens its memmap per
    # batch because a long-lived one over a multi-GB file grows the resident set as pages
    # are touched; those pages are clean and file-backed, so the kernel drops them under
    # memory pressure (they never count against a trial's data-segment limit): keeping
    # one costs nothing that matters and saves an open + mmap per batch.
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
