"""A GPT language model in nanoGPT's shape, small enough to read in one sitting.

    cfg = GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128)
    model = GPT(cfg)
    logits, loss = model(idx, targets)           # idx, targets: (B, T) int64
    out = model.generate(idx, max_new_tokens=100, temperature=0.8, top_k=200)

Shape legend used in the comments: B batch, T time (sequence position), C n_embd,
nh heads, hs head size (C // nh), V vocab size.

This module imports torch at the top: the CLI reaches it only from inside commands that
train or sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 64   # longest context the position table covers
    vocab_size: int = 65   # 65 distinct characters in tinyshakespeare
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False     # biases in Linear and LayerNorm (False: fewer params, a bit faster;
                           # nn.LayerNorm's own bias=False switch, so no custom LayerNorm)
    parametrization: str = "sp"   # "sp" (standard, nanoGPT's) or "mup" (see MuP below)
    mup_base_width: int = 128     # µP: the width at which µP and SP coincide
    mup_base_head_size: int = 0   # µP: the base model's head size (0: mup_base_width / n_head)
    mup_input_mult: float = 1.0   # µP: multiplier of the input embeddings (tunable)
    mup_output_mult: float = 1.0  # µP: multiplier of the readout, times 1/m (tunable)
    mup_init_mult: float = 1.0    # µP: hidden matrices' init std 0.02 x this / sqrt(m) (tunable)
    mup_attn_mult: float = 1.0    # µP: multiplier of the attention logits (tunable)

    @property
    def width_mult(self) -> float:
        """n_embd / mup_base_width under µP; 1.0 under SP (nothing is rescaled)."""
        return self.n_embd / self.mup_base_width if self.parametrization == "mup" else 1.0

    @property
    def base_head_size(self) -> float:
        """The base model's head size under µP: mup_base_head_size, else mup_base_width /
        n_head (the base model had this model's number of heads)."""
        return self.mup_base_head_size or self.mup_base_width / self.n_head


# µP (the maximal-update parametrization; Yang et al., Tensor Programs V, arXiv 2203.03466).
# Under SP the best Adam learning rate falls as the model widens, because an update of size
# lr to every entry of a (C, C) matrix moves its output by ~lr * C. µP rescales four things
# with the width multiplier m = n_embd / mup_base_width so that every layer's update moves
# its output by the same amount at any width (the paper's Table 3, Adam column):
#   1. hidden matrices (attention q/k/v/proj, MLP): init std / sqrt(m), Adam lr / m;
#   2. attention logits scaled by 1/hs instead of 1/sqrt(hs) (keys and queries become
#      correlated during training, so their dot product grows like hs, not sqrt(hs));
#      written sqrt(hs_base) / hs so that it equals SP's 1/sqrt(hs) at the base width;
#   3. the readout: logits multiplied by 1/m;
#   4. input embeddings and LayerNorm gains: unchanged init and lr.
# Besides, as EleutherAI's nanoGPT-mup (its mup and completep branches) does: tunable
# multipliers, of the input embeddings and of the readout (mup_input_mult,
# mup_output_mult: tuned on the proxy, they transfer), and of the hidden init (mup_init_mult:
# the reference's init_std / 0.02) and of the attention logits (mup_attn_mult). Tuned at 1
# on a narrow proxy, µP holds every width to the proxy's dynamics and wider is not better:
# at 200 steps on tinyshakespeare, widths 64-512 all ended near the bigram loss (2.48);
# with out 8, init 2.83, attention 2.83 (SP-512's implied values, one seed) widths 64 /
# 128 / 256 / 512 reached 2.384 / 2.280 / 2.223 / 2.198; Adam's eps divided by m in every
# group (gradients shrink like 1/m, and an unscaled eps would come to dominate them); and
# the hidden matrices' weight decay multiplied by m, so that AdamW's decoupled decay
# (lr x wd per step) stays the same at every width (completeP's rule).
# At m = 1 every factor is 1 (the attention one included) and the multipliers default to 1,
# so µP at the base width is exactly SP: a search at the base width and nanoGPT agree.
# Weight tying: the token table is both the input embedding and the readout. We keep it
# tied (nanoGPT does, and small models need the parameters) and treat the matrix as an
# input embedding (constant init and lr); the readout's µP scaling comes from the 1/m
# output multiplier alone, as in EleutherAI's nanoGPT-mup and Cerebras' µP practitioner's
# guide. The alternative, an untied zero-initialised readout, adds V*C parameters.


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t only sees positions <= t.

    The attention itself is one fused call (scaled_dot_product_attention with is_causal):
    it never materialises the (B, nh, T, T) score matrix on the flash / memory-efficient
    paths, so activation memory stays O(T) per head instead of O(T^2)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # One matmul produces q, k and v for every head at once.
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        hs = config.n_embd // config.n_head
        # SP: None (scaled_dot_product_attention's own 1/sqrt(hs)). µP: sqrt(hs_base) / hs,
        # hs_base the base model's head size (config.base_head_size), so the logits are the
        # base model's at the base width whatever n_head the wider model has.
        self.scale = None if config.parametrization != "mup" else \
            config.mup_attn_mult * math.sqrt(config.base_head_size) / hs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        # Heads become a batch dimension: (B, T, C) -> (B, nh, T, hs). These are views of
        # the qkv buffer; no copy is made.
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0.0,
            is_causal=True, scale=self.scale)  # (B, nh, T, hs)
        # Put the heads side by side again: (B, nh, T, hs) -> (B, T, C).
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)). The residual
    stream itself is never normalised, which keeps deep stacks trainable."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


ADAM_EPS = 1e-8  # torch's AdamW default (nanoGPT's too); divided by m under µP


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, config.n_embd),  # token -> vector
            "wpe": nn.Embedding(config.block_size, config.n_embd),  # position -> vector
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            "ln_f": nn.LayerNorm(config.n_embd, bias=config.bias),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: reading a token in and predicting it out share one (V, C) matrix.
        # It saves V*C parameters and tends to help small models.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # Each block adds two projections into the residual stream; shrinking their init
        # by 1/sqrt(2 * n_layer) keeps the stream's variance from growing with depth.
        # µP: hidden matrices (every Linear inside a block) also get std / sqrt(m).
        # µP's mup_init_mult scales it (the reference's init_std, a base hyperparameter).
        init_mult = config.mup_init_mult if config.parametrization == "mup" else 1.0
        hidden_std = 0.02 * init_mult / math.sqrt(config.width_mult)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=hidden_std / math.sqrt(2 * config.n_layer))
            elif name.startswith("transformer.h.") and p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=hidden_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameter count. Like nanoGPT, `non_embedding` leaves out the position table
        (the token table stays in: it is also the output layer through weight tying)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied one once
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, V) and the mean cross-entropy when
        targets (B, T) are given. Without targets only the last position's logits are
        computed, (B, 1, V): that is all generation needs."""
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size "
                             f"{self.config.block_size}")
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)  # (T,)
        tok = self.transformer.wte(idx)  # (B, T, C)
        x = self.transformer.drop(tok + self.transformer.wpe(pos))  # (T, C) broadcasts over B
        mup = self.config.parametrization == "mup"
        if mup and self.config.mup_input_mult != 1.0:
            x = x * self.config.mup_input_mult
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if mup:  # µP readout multiplier (same as scaling the logits)
            x = x * (self.config.mup_output_mult / self.config.width_mult)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)  # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def configure_optimizers(self, weight_decay: float, learning_rate: float,
                             betas: tuple[float, float], device_type: str
                             ) -> torch.optim.AdamW:
        """AdamW with two groups: matrices (embeddings, Linear weights) get weight decay;
        vectors (biases, LayerNorm gains) do not, since shrinking them only hurts.

        Implementation: `fused=True` (one kernel updates every tensor) on CUDA and on CPU,
        where torch 2.13 has a fused AdamW too. Measured on the 2-core Xeon for nanoGPT's
        CPU recipe (0.8M params in 27 tensors), one step took 1.15 ms fused, 4.4 ms with
        foreach and 4.1 ms with the per-tensor loop on one thread (0.99 / 3.9 / 3.3 ms on
        two): fused saves ~3 ms of a ~60 ms iteration.

        Under µP the hidden matrices form a third group whose learning rate is
        learning_rate / m (its `lr_scale`) and whose weight decay is weight_decay * m;
        every group's Adam eps is EPS / m; `set_learning_rate` applies a scheduled
        learning rate to every group through its `lr_scale`."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        m = self.config.width_mult
        hidden = [p for n, p in named if p.dim() >= 2 and n.startswith("transformer.h.")]
        if m == 1.0:
            hidden = []  # SP (or µP at its base width): one decayed group, as nanoGPT
        hidden_ids = {id(p) for p in hidden}
        decay = [p for _, p in named if p.dim() >= 2 and id(p) not in hidden_ids]
        no_decay = [p for _, p in named if p.dim() < 2]
        eps = ADAM_EPS / m
        groups = [{"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0, "eps": eps},
                  {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0, "eps": eps}]
        if hidden:
            groups.append({"params": hidden, "weight_decay": weight_decay * m,
                           "lr_scale": 1.0 / m, "eps": eps})
        fused = device_type in ("cuda", "cpu")  # other backends: torch's default
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=ADAM_EPS,
                                 fused=fused or None)

    @staticmethod
    def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
        """This step's learning rate for every group: lr x the group's `lr_scale` (1 except
        µP's hidden matrices, see configure_optimizers)."""
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def estimate_mfu(self, fwdbwd_per_iter: int, dt: float, peak_flops: float) -> float:
        """Model FLOPs utilisation: achieved FLOP/s over `peak_flops`, as a fraction.
        `fwdbwd_per_iter` sequences of block_size tokens were processed in `dt` seconds.
        The FLOP count is nanoGPT's (see tune_gpt.estimate.flops_per_token)."""
        from tune_gpt.estimate import flops_per_token

        c = self.config
        per_token = flops_per_token(self.get_num_params(), c.n_layer, c.n_embd, c.block_size)
        achieved = per_token * c.block_size * fwdbwd_per_iter / dt
        return achieved / peak_flops

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens, one at a time, feeding each
        prediction back in. Call model.eval() first so dropout is off."""
        for _ in range(max_new_tokens):
            # The position table only covers block_size positions: keep the most recent.
            idx_cond = idx if idx.size(1) <= self.config.block_size \
                else idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature  # (B, V)
            if top_k is not None:
                k = min(top_k, logits.size(-1))
                kth = torch.topk(logits, k).values[:, [-1]]  # (B, 1): the k-th largest
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat((idx, nxt), dim=1)
        return idx
