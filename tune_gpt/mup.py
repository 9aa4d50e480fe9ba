"""µP's standard sanity test, the coordinate check (Tensor Programs V, appendix D.1).

Train the same small GPT at several widths for a few Adam steps and record how large each
layer's output coordinates are (mean |x| over a fixed batch). A parametrization whose
learning rate transfers keeps these sizes flat as the width grows; under SP the later
layers' outputs (and above all the logits) grow with the width, which is why SP's best
learning rate falls as models widen.

    sizes = coord_check(widths=(32, 64, 128, 256), parametrization="mup")
    sizes[256]["logits"] / sizes[32]["logits"]      # ~1 under µP, >> 1 under SP

The model code is tune_gpt.model; this module only drives it. torch is imported inside.
"""

from __future__ import annotations

from typing import Sequence


def coord_check(widths: Sequence[int] = (32, 64, 128, 256), parametrization: str = "mup",
                *, steps: int = 4, lr: float = 1e-2, n_layer: int = 2, n_head: int = 4,
                block_size: int = 32, batch_size: int = 8, vocab_size: int = 65,
                base_width: int | None = None, seeds: Sequence[int] = (0, 1),
                ) -> dict[int, dict[str, float]]:
    """For each width: mean |coordinate| of the embeddings ("embed"), each block's output
    ("block0", ...) and the logits ("logits") after `steps` AdamW steps at `lr`, averaged
    over `seeds`. The data are random tokens; what matters is the update's effect on the
    activations, not what the model learns. base_width defaults to the smallest width."""
    import torch

    from tune_gpt.model import GPT, GPTConfig

    base = base_width or min(widths)
    out: dict[int, dict[str, float]] = {}
    for width in widths:
        sums: dict[str, float] = {}
        for seed in seeds:
            torch.manual_seed(seed)
            model = GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer,
                                  n_head=n_head, n_embd=width, parametrization=parametrization,
                                  mup_base_width=base))
            opt = model.configure_optimizers(0.0, lr, (0.9, 0.99), "cpu")
            model.set_learning_rate(opt, lr)
            g = torch.Generator().manual_seed(1000 + seed)
            x = torch.randint(vocab_size, (batch_size, block_size), generator=g)
            y = torch.randint(vocab_size, (batch_size, block_size), generator=g)
            for _ in range(steps):
                _, loss = model(x, y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            for name, value in _activation_sizes(model, x).items():
                sums[name] = sums.get(name, 0.0) + value / len(seeds)
        out[width] = sums
    return out


def _activation_sizes(model, idx) -> dict[str, float]:
    import torch

    sizes: dict[str, float] = {}
    hooks = [model.transformer.drop.register_forward_hook(
        lambda m, i, o: sizes.__setitem__("embed", o.abs().mean().item()))]
    for n, block in enumerate(model.transformer.h):
        hooks.append(block.register_forward_hook(
            lambda m, i, o, n=n: sizes.__setitem__(f"block{n}", o.abs().mean().item())))
    with torch.no_grad():
        logits, _ = model(idx, idx)  # with targets: logits for every position
    sizes["logits"] = logits.abs().mean().item()
    for h in hooks:
        h.remove()
    return sizes


def growth(sizes: dict[int, dict[str, float]], layer: str = "logits") -> float:
    """How much `layer`'s coordinate size grew from the narrowest width to the widest."""
    lo, hi = min(sizes), max(sizes)
    return sizes[hi][layer] / sizes[lo][layer]
