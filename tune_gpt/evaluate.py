"""How a model's loss is measured, two ways.

    tune-gpt eval out/ckpt.pt                    # the whole validation split of its own data
    tune-gpt eval out/ckpt.pt --data ~/nanoGPT/data/shakespeare_char --json

    result = evaluate_checkpoint("out/ckpt.pt")
    result.val_loss, result.tokens

- estimate_loss: what the training loop reports at every evaluation, as nanoGPT does: the
  mean loss over eval_iters random batches of each split. Cheap, and the same batches every
  time so that successive evaluations compare, but an estimate: its sampling noise is about
  0.01-0.02 at tinyshakespeare's size (benchmarks/train_throughput.py measured it).
- evaluate_checkpoint (`tune-gpt eval`): the loss over the WHOLE validation split, every
  token of val.bin predicted once, from consecutive non-overlapping windows of block_size
  tokens (the last one shorter). No sampling noise: the number to compare checkpoints by.

Every window starts without context, as every training window does; a sliding window
(stride < block_size) would give tokens more context and a lower loss, at block_size/stride
times the cost.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tune_gpt.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from tune_gpt.config import TrainConfig
    from tune_gpt.data import PreparedData
    from tune_gpt.model import GPT

# One forward pass scores at most this many tokens, and its logits (tokens x vocabulary,
# float32) stay under LOGITS_ELEMENTS: 128 windows of 256 characters at once, one window of
# 1024 at GPT-2's vocabulary (200 MiB of logits).
TOKENS_PER_FORWARD = 1 << 15
LOGITS_ELEMENTS = 1 << 26


def estimate_loss(model: GPT, data: PreparedData, cfg: TrainConfig, device: str,
                  autocast: contextlib.AbstractContextManager) -> tuple[float, float]:
    """(train, val) mean loss over eval_iters batches each (nanoGPT's estimate_loss). The
    batches come from a generator seeded afresh every time, so successive evaluations (and
    runs with the same seed and shape) are scored on the same text and differ only by the
    model."""
    import torch

    from tune_gpt.data import get_batch

    model.eval()
    losses = []
    with torch.no_grad():
        for split in ("train", "val"):
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            total = torch.zeros((), device=device)
            for _ in range(cfg.eval_iters):
                x, y = get_batch(data, split, cfg.batch_size, cfg.block_size, gen, device)
                with autocast:
                    _, loss = model(x, y)
                total += loss.float()
            losses.append(total.item() / cfg.eval_iters)
    model.train()
    return losses[0], losses[1]


@dataclass
class EvalResult:
    """A checkpoint's loss on a whole validation split."""

    val_loss: float    # mean cross-entropy (nats per token) over every scored token
    tokens: int        # tokens scored: every token of val.bin but the first (it has no context)
    checkpoint: str    # the checkpoint file
    iter: int          # the iteration it was saved at
    data: str          # the data set's name
    context: int = 0   # the window length scored with (the model's block_size unless asked)

    def to_dict(self) -> dict[str, Any]:
        """What `tune-gpt eval --json` prints."""
        return {"val_loss": self.val_loss, "tokens": self.tokens}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def format(self) -> str:
        return (f"val loss {self.val_loss:.4f} over the whole validation split of {self.data} "
                f"({self.tokens:,} tokens, windows of {self.context}); {self.checkpoint}, "
                f"iter {self.iter}")


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path | None = None,
                        device: str = "auto", context: int | None = None) -> EvalResult:
    """The loss of the model in `checkpoint` on the whole validation split of `data` (a text
    file or a nanoGPT data folder; default: the data set it was trained on), in windows of
    its block_size, or of `context` tokens (at most block_size: to score two models with
    different block sizes at the same context). UserError for a missing or unreadable
    checkpoint, data whose vocabulary is not the checkpoint's, or a context it cannot take."""
    from tune_gpt.checkpoint import model_from_checkpoint, read_checkpoint
    from tune_gpt.config import resolve_device

    device = resolve_device(device, "--device")
    ckpt = read_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint).to(device)
    window = model.config.block_size
    if context is not None:
        if not 2 <= context <= window:
            raise UserError(f"--context {context}: {checkpoint} was trained with block_size "
                            f"{window}; give a context from 2 to {window}")
        window = context
    prepared = data_of(ckpt, checkpoint, data)
    loss, tokens = whole_split_loss(model, prepared.val_path, window, device)
    return EvalResult(val_loss=loss, tokens=tokens, checkpoint=str(checkpoint),
                      iter=int(ckpt["iter"]), data=prepared.name, context=window)


def data_of(ckpt: dict, checkpoint: str | Path, data: str | Path | None) -> PreparedData:
    """`data` prepared as the checkpoint reads tokens, or by default the data set the
    checkpoint was trained on (as its config names it, checked against the identity its
    meta recorded, so that a file changed since is not silently scored in its place)."""
    from tune_gpt.checkpoint import same_vocabulary
    from tune_gpt.data import prepare

    meta, config = ckpt["meta"], ckpt["config"]
    tokenizer = meta.get("tokenizer", "char")  # older checkpoints are char-level
    if data is None:
        dataset = str(config.get("dataset", ""))
        try:
            prepared = prepare(dataset, tokenizer=config.get("tokenizer", "auto"))
        except UserError as e:
            raise UserError(f"{checkpoint} was trained on {dataset}, which is not usable "
                            f"here: {e}") from None
        if meta.get("sha256") and prepared.sha256 != meta["sha256"]:
            raise UserError(f"{prepared.source}: not the data {checkpoint} was trained on (it "
                            f"changed since); pass --data {prepared.source} to score it as "
                            f"it is now")
    else:
        # A text file is tokenised the checkpoint's way (characters or GPT-2 BPE); a folder
        # says itself how its ids read, and is then compared.
        is_dir = Path(data).expanduser().is_dir()
        prepared = prepare(str(data), tokenizer="auto" if is_dir or tokenizer not in
                           ("char", "gpt2") else tokenizer)
    if not same_vocabulary(meta, prepared):
        had = f"{tokenizer}, {meta.get('vocab_size', len(meta.get('itos', [])))} tokens"
        raise UserError(f"{prepared.source}: its vocabulary ({prepared.tokenizer}, "
                        f"{prepared.vocab_size} tokens) is not the one {checkpoint} was "
                        f"trained with ({had}); pass --data with the data set it was trained "
                        f"on, or omit --data")
    if prepared.n_val < 2:
        raise UserError(f"{prepared.val_path}: {prepared.n_val} validation token(s), nothing "
                        f"to score; use a longer data set")
    return prepared


def whole_split_loss(model: GPT, val_path: str | Path, block_size: int,
                     device: str = "cpu") -> tuple[float, int]:
    """(mean loss, tokens scored) of `model` over every token of the uint16 file `val_path`
    but the first: windows of block_size tokens, end to end, the last one shorter."""
    import numpy as np
    import torch

    tokens = np.memmap(val_path, dtype=np.uint16, mode="r")
    n = len(tokens) - 1                       # tokens with a preceding token to predict them
    full = n // block_size                    # whole windows; the tail has n % block_size
    per_forward = max(1, min(TOKENS_PER_FORWARD // block_size,
                             LOGITS_ELEMENTS // (block_size * model.config.vocab_size)))
    total = 0.0  # a Python float (float64): a float32 sum of 10^6 losses drops digits
    model.eval()
    with torch.no_grad():
        for start in range(0, full, per_forward):
            count = min(per_forward, full - start)
            total += _window_loss(model, tokens, start * block_size, count, block_size, device)
        if n % block_size:
            total += _window_loss(model, tokens, full * block_size, 1, n % block_size, device)
    return total / n, n


def _window_loss(model: GPT, tokens: np.memmap, offset: int, count: int, length: int,
                 device: str) -> float:
    """Summed loss of `count` consecutive windows of `length` tokens from `offset`."""
    import numpy as np
    import torch

    span = np.asarray(tokens[offset:offset + count * length + 1], dtype=np.int64)
    x = torch.from_numpy(span[:-1].reshape(count, length)).to(device)  # (B, T)
    y = torch.from_numpy(span[1:].reshape(count, length)).to(device)   # x shifted by one
    _, loss = model(x, y)  # the mean over B*T tokens
    return float(loss) * count * length
