"""estimate: hand-computed values, the real model's parameter count, autograd's saved tensors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tune_gpt.config import TrainConfig
from tune_gpt.estimate import (
    GPU_FALLBACK_FLOPS,
    count_params,
    estimate,
    estimate_for_config,
    gpu_peak_flops,
)
from tune_gpt.model import GPT, GPTConfig

# The guide's section 5 example: nanoGPT's train_shakespeare_char config.
GUIDE = TrainConfig(batch_size=64, block_size=256, n_layer=6, n_head=6, n_embd=384,
                    gradient_accumulation_steps=1)


@pytest.mark.parametrize("n_layer, n_embd, block_size, vocab, bias", [
    (6, 384, 256, 65, False), (2, 32, 16, 11, True), (1, 8, 4, 3, False)])
def test_param_count_is_the_models(n_layer: int, n_embd: int, block_size: int, vocab: int,
                                   bias: bool) -> None:
    model = GPT(GPTConfig(block_size=block_size, vocab_size=vocab, n_layer=n_layer, n_head=2,
                          n_embd=n_embd, bias=bias))
    non_embedding, total = count_params(n_layer, n_embd, block_size, vocab, bias)
    assert total == sum(p.numel() for p in model.parameters())
    assert non_embedding == model.get_num_params() == total - block_size * n_embd


def test_guide_example_by_hand() -> None:
    est = estimate(GUIDE, vocab_size=65)
    # wte 65*384 + wpe 256*384 + 6 * (12*384^2 + 2*384) + ln_f 384
    total = 24_960 + 98_304 + 6 * 1_770_240 + 384
    assert est.n_params_total == total == 10_745_088
    assert est.n_params == 10_646_784  # nanoGPT prints "10.65M"
    assert est.tokens_per_iter == 16_384
    assert est.flops_per_token == 6 * 10_646_784 + 12 * 6 * 384 * 256 == 70_958_592
    assert est.flops_per_iter == 70_958_592 * 16_384
    assert est.weights == est.gradients == 4 * total == 42_980_352
    assert est.optimizer == 8 * total
    assert est.autocast_copies == 0  # float32
    # Per token and layer in float32: 64*C + 4*n_head + 16 = 24,616 bytes; 16,384 tokens.
    assert est.activations_per_layer == 16_384 * 24_616 == 403_308_544
    # Embedding/head: ids+targets 16, ln_f input 4C, its stats 8, lm_head input 4C; + 8T.
    assert est.activations == 6 * 403_308_544 + 16_384 * (16 + 8 * 384 + 8) + 8 * 256
    assert est.logits == 16_384 * 65 * 12
    assert est.attention_scores_per_layer == 64 * 6 * 256 * 256 * 4
    peak = est.weights + est.optimizer + est.activations + est.logits  # no grads at accum 1
    assert est.total == int(peak * est.overhead_factor)
    # The guide's rule of thumb, for comparison.
    assert est.guide_model == 12 * total
    assert est.guide_activations == 64 * 256 * 384 * 6 * 4 == 150_994_944


def test_mixed_precision_and_accumulation_terms() -> None:
    cfg = TrainConfig(batch_size=64, block_size=256, n_layer=6, n_head=6, n_embd=384,
                      dtype="bfloat16", gradient_accumulation_steps=4, dropout=0.1)
    est = estimate(cfg, vocab_size=65)
    assert est.tokens_per_iter == 65_536
    assert est.weights == 4 * est.n_params_total  # float32 master weights
    assert est.autocast_copies == 2 * (12 * 6 * 384 ** 2 + 65 * 384)
    # (8 + 14*2)*C + 4*nh + 16 + 2*C of dropout masks
    assert est.activations_per_layer == 16_384 * (36 * 384 + 24 + 16 + 2 * 384)
    assert est.attention_scores_per_layer == 64 * 6 * 256 * 256 * 2 * 3
    peak = (est.weights + est.gradients + est.optimizer + est.autocast_copies
            + est.activations + est.logits)
    assert est.total == int(peak * est.overhead_factor)


def test_format_shows_the_table_and_the_rule_of_thumb() -> None:
    text = estimate(GUIDE, vocab_size=65).format()
    assert "tokens_per_iter  16,384" in text
    assert "n_params         10,646,784" in text
    for row in ("weights", "gradients", "optimizer", "activations", "logits", "total"):
        assert f"\n  {row} " in text
    assert "guide's rule of thumb: params x 12 B = 123.0 MiB" in text
    assert "144.0 MiB" in text  # 64 x 256 x 384 x 6 x 4 bytes


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("bias", [False, True])
def test_activation_count_matches_what_autograd_saves(dtype: str, bias: bool) -> None:
    """The activation term is an honest count: sum the distinct storages autograd keeps
    for backward in one forward pass and compare."""
    cfg = TrainConfig(batch_size=4, block_size=32, n_layer=3, n_head=4, n_embd=64, dtype=dtype,
                      bias=bias)
    model = GPT(GPTConfig(block_size=32, vocab_size=65, n_layer=3, n_head=4, n_embd=64, bias=bias))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    idx, targets = torch.randint(65, (4, 32)), torch.randint(65, (4, 32))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype != "float32"):
        model(idx, targets)
    est = estimate(cfg, vocab_size=65)
    log_probs, loss_scalar = 4 * 32 * 65 * 4, 4
    assert sum(saved.values()) == est.activations + est.autocast_copies + log_probs + loss_scalar


def test_vocab_for_a_file_and_for_shakespeare(tmp_path: Path) -> None:
    path = tmp_path / "abc.txt"
    path.write_text("abcabc\n")
    assert estimate_for_config(TrainConfig(dataset=str(path))).vocab_size == 4
    assert estimate_for_config(TrainConfig()).vocab_size == 65  # no download needed


@pytest.mark.parametrize("name, flops", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-40GB", 312e12), ("NVIDIA L4", 121e12), ("NVIDIA A10G", 70e12),
    ("NVIDIA A10", 125e12), ("Tesla T4", 65e12), ("NVIDIA GeForce RTX 4090", 165e12),
    ("Some Future GPU", GPU_FALLBACK_FLOPS)])
def test_gpu_peak_table(name: str, flops: float) -> None:
    assert gpu_peak_flops(name)[0] == flops


def test_estimate_and_records_import_without_torch() -> None:
    code = ("import sys, tune_gpt.estimate, tune_gpt.train, tune_gpt.data, tune_gpt.sample; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
