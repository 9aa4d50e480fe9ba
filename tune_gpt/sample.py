"""Generate text from a checkpoint written by `tune-gpt train` (out/ckpt.pt is the model of
the lowest validation loss; out/last.pt, the latest state, samples too).

    tune-gpt sample out/ckpt.pt --start "ROMEO:" --num-samples 2 --max-new-tokens 200

    texts = generate("out/ckpt.pt", start="ROMEO:", num_samples=2, max_new_tokens=200)

The checkpoint carries the model config and the tokenizer (a char vocabulary, or GPT-2 BPE,
decoded with tiktoken), so the dataset is not needed.
"""

from __future__ import annotations

from pathlib import Path

from tune_gpt.errors import UserError


def generate(checkpoint_path: str | Path, start: str = "\n", num_samples: int = 1,
             max_new_tokens: int = 500, temperature: float = 0.8, top_k: int | None = 200,
             seed: int = 1337, device: str = "auto") -> list[str]:
    """`num_samples` continuations of `start` (each includes the prompt), sampled at
    `temperature` from the `top_k` most likely characters; reproducible for a given seed."""
    import torch

    from tune_gpt.checkpoint import model_from_checkpoint, read_checkpoint
    from tune_gpt.config import resolve_device
    from tune_gpt.data import Codec

    if num_samples < 1 or max_new_tokens < 0:
        raise UserError("--num-samples must be >= 1 and --max-new-tokens >= 0")
    if not temperature > 0:
        raise UserError(f"--temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    device = resolve_device(device, "--device")

    ckpt = read_checkpoint(checkpoint_path)
    codec = Codec.from_meta(ckpt["meta"])
    model = model_from_checkpoint(ckpt, checkpoint_path)
    model.to(device).eval()

    prompt = codec.encode(start) or [0]  # an empty prompt starts from token 0
    idx = torch.tensor([prompt] * num_samples, dtype=torch.long, device=device)  # (N, T0)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                         generator=gen)
    return [codec.decode(row.tolist()) for row in out]
