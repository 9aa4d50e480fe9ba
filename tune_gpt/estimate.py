"""What a training config costs before running it: parameters, tokens, FLOPs and memory.

    tune-gpt estimate --batch_size=64 --block_size=256 --n_layer=6 --n_head=6 --n_embd=384

    est = estimate(cfg, vocab_size=65)
    print(est.format())

Nothing here trains or imports torch, except `cpu_peak_flops` measuring a CPU and
`peak_memory_bytes` reading what a run used.

Memory model (bytes; C n_embd, L n_layer, nh n_head, T block_size, B batch_size,
V vocab_size, P parameters including the position table, a = 2 under bfloat16/float16
autocast and 4 in float32; every term is a count of real tensors, not a fit):

- weights      4P   parameters stay float32 under autocast: they are the master weights
                    the optimizer updates.
- gradients    4P   one float32 .grad per parameter.
- optimizer    8P   AdamW's exp_avg and exp_avg_sq, float32 (fused AdamW: no temporaries).
- autocast     2(12LC^2 + VC)   only with bfloat16/float16: autocast casts each Linear
                    weight (and the tied lm_head) once per forward and keeps the copy for
                    the backward pass.
- activations  what autograd saves for backward, per token of each layer:
                    ln_1 input (the float32 residual)   4C
                    ln_1 mean and 1/std                 8
                    c_attn input (LayerNorm output)     aC
                    q, k, v (one qkv buffer)            3aC
                    attention output = c_proj input    aC
                    attention log-sum-exp (per head)    4nh
                    ln_2 input (the float32 residual)   4C
                    ln_2 mean and 1/std                 8
                    c_fc input                          aC
                    GELU input (c_fc output)            4aC
                    GELU output = mlp c_proj input      4aC
                    dropout masks, if dropout > 0       2C (bool, one byte each)
                 = (8 + 14a)C + 4nh + 16 bytes (+2C with dropout): 64C + 4nh + 16 in
                 float32.
                 SDPA's fused kernels (flash / memory-efficient on CUDA, the flash kernel
                 on CPU) keep only q, k, v, the output and the log-sum-exp, so attention is
                 O(T) per token. Had the (B, nh, T, T) scores been materialised (the
                 `math` path; also what CPU SDPA falls back to when attention dropout is
                 on), each layer would also keep the softmax output, a * B nh T^2 bytes,
                 three times that with dropout (its mask and the dropped copy are kept at
                 the same width by the math path).
                 That figure is reported beside the fused one but not added to the total.
                 Once per model: token ids and targets (8 + 8 bytes per token), the
                 embedding-dropout mask (C), ln_f input and statistics (4C + 8), lm_head
                 input (aC), and the T position ids (8T bytes).
                 (Checked against autograd's saved tensors in tests/test_estimate.py.)
- logits       B T V (a + 4 + 4): the logits, their float32 log-probabilities (saved by
                 cross-entropy) and the gradient flowing back into them.
- overhead     x1.10 on the sum: the caching allocator's rounding, the backward pass's
                 gradients in flight (about half a layer of activations) and cuBLAS
                 workspace. Not included: the CUDA context (~0.3-0.6 GiB that nvidia-smi
                 shows but torch.cuda.max_memory_allocated does not).

The peak is the larger of the forward/backward peak (weights + optimizer + autocast copies
+ activations + logits, + gradients only when gradient_accumulation_steps > 1, since with
one micro-batch the .grad tensors are created while the activations are being freed) and
the optimizer-step peak (weights + gradients + optimizer). `total` is that times the
overhead factor, to be compared with torch.cuda.max_memory_allocated().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tune_gpt.config import TrainConfig

OVERHEAD_FACTOR = 1.10


def count_params(n_layer: int, n_embd: int, block_size: int, vocab_size: int, bias: bool
                 ) -> tuple[int, int]:
    """(non-embedding, total) parameters of tune_gpt.model.GPT, counted by hand.

    non-embedding leaves out the position table (block_size x n_embd), as nanoGPT reports;
    the token table stays because it is also the output layer (weight tying)."""
    C = n_embd
    per_layer = 12 * C * C + 2 * C          # qkv 3C^2, proj C^2, fc 4C^2, proj 4C^2; 2 LN gains
    if bias:
        per_layer += 11 * C                 # qkv 3C, proj C, fc 4C, proj C; 2 LN biases
    final_ln = 2 * C if bias else C
    total = vocab_size * C + block_size * C + n_layer * per_layer + final_ln
    return total - block_size * C, total


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> int:
    """Training FLOPs per token, nanoGPT's count (PaLM paper, appendix B): 6N for the
    matmuls with the weights (2 forward + 4 backward per weight) plus 12*L*C*T for the
    attention scores and their weighted sum (C = n_head * head_size). N is the
    non-embedding parameter count."""
    return 6 * n_params + 12 * n_layer * n_embd * block_size


@dataclass
class Estimate:
    """Cost of one training config. Memory figures are bytes."""

    # shape of the run (copied from the config so `format` can describe it)
    batch_size: int
    block_size: int
    gradient_accumulation_steps: int
    n_layer: int
    n_head: int
    n_embd: int
    vocab_size: int
    dtype: str
    dropout: float
    # compute
    n_params: int               # excluding the position table (nanoGPT's convention)
    n_params_total: int         # every parameter (what memory is made of)
    tokens_per_iter: int        # batch_size * block_size * gradient_accumulation_steps
    flops_per_token: int
    flops_per_iter: int
    # memory (see the module docstring for each formula)
    weights: int
    gradients: int
    optimizer: int
    autocast_copies: int
    activations_per_layer: int  # with fused attention (what runs)
    attention_scores_per_layer: int  # extra per layer if the T x T scores were materialised
    activations: int            # all layers + embedding/head, fused attention
    logits: int
    overhead_factor: float
    total: int
    # the guide's simplified rule of thumb, for comparison
    guide_model: int            # params x 12 bytes
    guide_activations: int      # batch x block x n_embd x n_layer x 4

    @property
    def guide_total(self) -> int:
        return self.guide_model + self.guide_activations

    def format(self) -> str:
        """A human-readable table."""
        mb, t = self.batch_size, self.block_size
        lines = [
            (f"model            {self.n_layer} layers x {self.n_head} heads x {self.n_embd} "
             f"wide, block_size {t}, vocab {self.vocab_size}, dtype {self.dtype}"),
            (f"n_params         {self.n_params:,} ({self.n_params / 1e6:.2f}M, without the "
             f"{self.n_params_total - self.n_params:,} position-embedding params; "
             f"{self.n_params_total:,} in all)"),
            (f"tokens_per_iter  {self.tokens_per_iter:,} (batch_size {mb} x block_size {t} x "
             f"gradient_accumulation_steps {self.gradient_accumulation_steps})"),
            f"flops_per_token  {self.flops_per_token:,} (6N + 12*L*C*T)",
            f"flops_per_iter   {self.flops_per_iter:,} ({self.flops_per_iter / 1e12:.2f} TFLOP)",
            "",
            f"memory at the training peak ({self.dtype}; compare torch.cuda.max_memory_allocated)",
        ]
        act_note = (f"{self.n_layer} x {_size(self.activations_per_layer)} per layer "
                    f"+ embeddings/head")
        rows = [
            ("weights", self.weights, "float32 master weights, 4 B/param"),
            ("gradients", self.gradients, "float32, 4 B/param"),
            ("optimizer", self.optimizer, "AdamW exp_avg + exp_avg_sq, float32, 8 B/param"),
        ]
        if self.autocast_copies:
            rows.append(("autocast copies", self.autocast_copies,
                         f"{self.dtype} copies of the Linear weights"))
        rows += [
            ("activations", self.activations, act_note),
            ("logits", self.logits, "batch x block x vocab, logits + float32 log-probs + grad"),
        ]
        for name, value, note in rows:
            lines.append(f"  {name:<17}{_size(value):>11}   {note}")
        step_peak = self.weights + self.gradients + self.optimizer
        if step_peak * self.overhead_factor >= self.total:
            summed = "weights + gradients + optimizer (the optimizer step)"
        elif self.gradient_accumulation_steps > 1:
            summed = "all rows (.grad lives across micro-batches)"
        else:
            summed = "all rows but gradients (made while activations are freed)"
        lines.append(f"  {'total':<17}{_size(self.total):>11}   {summed} x "
                     f"{self.overhead_factor:.2f} allocator/workspace overhead")
        lines.append(f"  (materialised attention scores would add "
                     f"{_size(self.attention_scores_per_layer)} per layer, "
                     f"{_size(self.attention_scores_per_layer * self.n_layer)} in all; "
                     f"fused SDPA avoids them)")
        lines.append(f"guide's rule of thumb: params x 12 B = {_size(self.guide_model)}, "
                     f"batch x block x n_embd x n_layer x 4 B = {_size(self.guide_activations)}, "
                     f"total {_size(self.guide_total)}")
        return "\n".join(lines)


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def estimate(cfg: TrainConfig, vocab_size: int) -> Estimate:
    """Parameters, tokens, FLOPs and peak training memory of `cfg` (formulas: module doc)."""
    B, T, C, L, nh, V = (cfg.batch_size, cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head,
                         vocab_size)
    n_params, n_total = count_params(L, C, T, V, cfg.bias)
    a = 4 if cfg.dtype == "float32" else 2
    masks = cfg.dropout > 0
    tokens = B * T  # per micro-batch: activations live for one micro-batch at a time

    per_token_layer = (8 + 14 * a) * C + 4 * nh + 16 + (2 * C if masks else 0)
    per_layer = tokens * per_token_layer
    scores = B * nh * T * T * a * (3 if masks else 1)
    once = tokens * (16 + (C if masks else 0) + 4 * C + 8 + a * C) + 8 * T
    activations = L * per_layer + once
    logits = tokens * V * (a + 8)

    weights, gradients, optimizer = 4 * n_total, 4 * n_total, 8 * n_total
    autocast = 0 if a == 4 else 2 * (12 * L * C * C + V * C)
    fwd_bwd = weights + optimizer + autocast + activations + logits
    if cfg.gradient_accumulation_steps > 1:
        fwd_bwd += gradients
    peak = max(fwd_bwd, weights + gradients + optimizer)

    per_tok = flops_per_token(n_params, L, C, T)
    return Estimate(
        batch_size=B, block_size=T, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        n_layer=L, n_head=nh, n_embd=C, vocab_size=V, dtype=cfg.dtype, dropout=cfg.dropout,
        n_params=n_params, n_params_total=n_total, tokens_per_iter=cfg.tokens_per_iter(),
        flops_per_token=per_tok, flops_per_iter=per_tok * cfg.tokens_per_iter(),
        weights=weights, gradients=gradients, optimizer=optimizer, autocast_copies=autocast,
        activations_per_layer=per_layer, attention_scores_per_layer=scores,
        activations=activations, logits=logits, overhead_factor=OVERHEAD_FACTOR,
        total=int(peak * OVERHEAD_FACTOR),
        guide_model=12 * n_total, guide_activations=B * T * C * L * 4)


def estimate_for_config(cfg: TrainConfig) -> Estimate:
    """estimate() with the vocabulary of cfg.dataset: 65 for shakespeare_char (no download),
    else the number of distinct characters in the file."""
    from tune_gpt.data import vocab_size_of

    return estimate(cfg, vocab_size_of(cfg.dataset, cfg.tokenizer))


# ----------------------------------------------------------------------------- peak FLOP/s

# Dense (no sparsity) bf16/fp16 tensor-core peaks with float32 accumulation, in FLOP/s,
# from NVIDIA's product datasheets and architecture whitepapers. Checked in order, first
# match on the device name wins (so "H100 PCIe" is looked for before "H100").
GPU_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),      # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("A6000", 155e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),      # fp16 (no bf16)
    ("T4", 65e12),         # fp16 (no bf16)
)
GPU_FALLBACK_FLOPS = 312e12  # nanoGPT's A100 figure when the GPU is not in the table

_cpu_core_flops: list[float] = []  # measured once per process


def gpu_peak_flops(name: str) -> tuple[float, str]:
    """(peak FLOP/s, where the number comes from) for a CUDA device name."""
    for key, flops in GPU_PEAK_FLOPS:
        if key in name:
            return flops, f"{key} dense bf16/fp16 datasheet peak"
    return GPU_FALLBACK_FLOPS, f"unknown GPU {name!r}: A100 bf16 peak assumed"


def cpu_peak_flops(threads: int) -> float:
    """Peak float32 FLOP/s of `threads` CPU cores: threads x what one core reaches here.

    A CPU has no datasheet figure torch can reach, so MFU on CPU is relative to a measured
    rate: the best of a ~0.25 s burst of 512 x 512 float32 GEMMs on one thread (on the
    2-core Xeon: ~160 GFLOP/s, its AVX-512 FMA limit), times the thread count. Measuring one
    core and multiplying keeps the figure stable when another process competes for the
    cores (a 2-thread burst under load measured half the true rate and MFU over 100%).
    Measured once per process."""
    if not _cpu_core_flops:
        import time

        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            n = 512
            # Its own generator: drawing from torch's global one here would change the
            # dropout masks of the run that happens to measure first (a resumed run then
            # differed from a straight one).
            gen = torch.Generator().manual_seed(0)
            a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
            torch.mm(a, b)  # warm up (packing buffers)
            best = float("inf")
            end = time.perf_counter() + 0.25
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                torch.mm(a, b)
                best = min(best, time.perf_counter() - t0)
            _cpu_core_flops.append(2 * n ** 3 / best)
        finally:
            torch.set_num_threads(before)
    return threads * _cpu_core_flops[0]


def peak_memory_bytes(device: str) -> int:
    """CUDA: the allocator's peak since the run started. CPU: the peak resident set size of
    the whole process (Python, libraries and data included) over its lifetime, from
    getrusage; in a process that runs several trials it is the largest so far."""
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux
