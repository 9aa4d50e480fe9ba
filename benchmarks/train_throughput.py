"""Training throughput on CPU: tune-gpt's loop against a straightforward PyTorch loop.

    python benchmarks/train_throughput.py --data ../shared/data/shakespeare_char/input.txt
    python benchmarks/train_throughput.py --quick --threads 1          # ~1-minute smoke
    python benchmarks/train_throughput.py --json reports/throughput.json  # + .md beside it

Two measurements per thread count:

1. The full run: nanoGPT's CPU recipe for shakespeare_char (4 layers, 4 heads, n_embd 128,
   block 64, batch 12, 2000 iterations, lr 1e-3 -> 1e-4, warmup 100, beta2 0.99, no
   dropout) through `tune_gpt.train.train`: final val loss, ms/iter, tokens/s.
2. Side by side: the same config trained for a fixed number of iterations by tune-gpt and
   by `StraightforwardGPT` below (attention with an explicit (T, T) softmax and mask,
   torch.optim.AdamW with its defaults, nanoGPT's per-row batch stacking, a .item() every
   step). The two alternate in short rounds (A B, B A, ...; the first 5 steps of each run
   untimed) so that machine noise, which on a shared 2-core box is large, falls on both
   alike; the median of the per-round ratios is what to read.

Targets on the project's 2-core machine: val loss <= 1.90 after 2000 iterations, and
tune-gpt >= 10% faster than the straightforward loop.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import write_summary  # noqa: E402
from tune_gpt.config import TrainConfig
from tune_gpt.data import PreparedData, prepare
from tune_gpt.train import get_lr, train

RECIPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12,
          "max_iters": 2000, "lr_decay_iters": 2000, "dropout": 0.0, "eval_iters": 20,
          "eval_interval": 250, "log_interval": 10, "learning_rate": 1e-3, "warmup_iters": 100,
          "min_lr": 1e-4, "beta2": 0.99, "grad_clip": 1.0, "weight_decay": 0.1,
          "dtype": "float32", "device": "cpu"}


# ----------------------------------------------------------------------------- the reference

class StraightforwardAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, T)
        att = att.masked_fill(self.mask[:T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class StraightforwardBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = StraightforwardAttention(n_embd, n_head, block_size)
        self.ln2 = nn.LayerNorm(n_embd, bias=False)
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.out = nn.Linear(4 * n_embd, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class StraightforwardGPT(nn.Module):
    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int, block_size: int):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(StraightforwardBlock(n_embd, n_head, block_size)
                                    for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.tok.weight = self.head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        x = self.tok(idx) + self.pos(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


WARMUP = 5  # steps not timed in the side-by-side rounds (first-step allocations, lazy init)


def straightforward_ms_per_iter(cfg: TrainConfig, data: PreparedData, iters: int) -> float:
    """Train the reference for WARMUP + `iters` steps; mean ms of the last `iters`."""
    torch.manual_seed(cfg.seed)
    model = StraightforwardGPT(data.vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd,
                               cfg.block_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                            betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    B, T = cfg.batch_size, cfg.block_size

    def batch():
        tokens = np.memmap(data.train_path, dtype=np.uint16, mode="r")
        ix = torch.randint(len(tokens) - T, (B,), generator=gen)
        x = torch.stack([torch.from_numpy(tokens[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(tokens[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        return x, y

    for it in range(WARMUP + iters):
        if it == WARMUP:
            t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = get_lr(it, cfg)
        x, y = batch()
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        if not math.isfinite(loss.item()):
            raise RuntimeError("reference loop diverged")
    return (time.perf_counter() - t0) / iters * 1e3


def whole_val_loss(model: nn.Module, data: PreparedData, block_size: int) -> float:
    """Mean loss over every non-overlapping block of the validation split: the loss the
    20-batch estimate samples (its own noise is ~0.01-0.02 at this size)."""
    tokens = torch.from_numpy(np.fromfile(data.val_path, dtype=np.uint16).astype(np.int64))
    n = (len(tokens) - 1) // block_size
    x = tokens[:n * block_size].view(n, block_size)
    y = tokens[1:n * block_size + 1].view(n, block_size)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, 256):
            _, loss = model(x[i:i + 256], y[i:i + 256])
            total += loss.item() * len(x[i:i + 256])
    model.train()
    return total / n


def ours_ms_per_iter(cfg: TrainConfig, data: PreparedData, iters: int, threads: int) -> float:
    """Train with tune_gpt.train for WARMUP + `iters` steps; mean ms of the last `iters`.
    Evaluations (one batch, every WARMUP steps) are not counted: records time steps only."""
    assert iters % WARMUP == 0
    short = TrainConfig(**{**cfg.to_dict(), "max_iters": WARMUP + iters,
                           "eval_interval": WARMUP, "eval_iters": 1})
    records = train(short, threads=threads, data=data).records[1:]
    return statistics.mean(r.ms_per_iter for r in records)  # WARMUP steps each


# ----------------------------------------------------------------------------- the benchmark

SMALL = {"n_layer": 2, "n_head": 4, "n_embd": 64}  # the guide's smallest CPU model (2x64)


def bench_small(threads: int, data: PreparedData, iters: int) -> dict:
    """The guide's 2-layer / 64 model on the recipe otherwise: tokens/s and MFU of
    tune_gpt.train (evaluations excluded from the timing, as in every record)."""
    cfg = TrainConfig(dataset=data.source, **{**RECIPE, **SMALL, "max_iters": iters,
                                              "lr_decay_iters": max(iters, RECIPE["warmup_iters"]),
                                              "eval_interval": max(1, iters // 4),
                                              "eval_iters": 5})
    result = train(cfg, threads=threads, data=data)
    train_ms, done = 0.0, 0
    for r in result.records:
        train_ms, done = train_ms + r.ms_per_iter * (r.iter - done), r.iter
    ms = train_ms / result.iters
    print(f"== {threads} thread(s): 2x64 model, {iters} iterations: {ms:.1f} ms/iter, "
          f"MFU {result.final.mfu:.1%}", flush=True)
    return {"threads": threads, "config": "2x64", "iters": result.iters, "ms_per_iter": ms,
            "tokens_per_s": cfg.tokens_per_iter() / ms * 1e3, "mfu": result.final.mfu,
            "val_loss": result.final.val_loss}


def bench_threads(threads: int, data: PreparedData, full_iters: int, side_iters: int,
                  rounds: int) -> dict:
    decay = max(full_iters, RECIPE["warmup_iters"])  # --quick stops inside the warmup
    cfg = TrainConfig(dataset=data.source, **{**RECIPE, "max_iters": full_iters,
                                              "lr_decay_iters": decay})
    torch.set_num_threads(threads)
    print(f"\n== {threads} thread(s): full run, {full_iters} iterations", flush=True)
    whole: list[float] = []

    def on_eval(record, checkpointer) -> None:
        if record.iter == cfg.max_iters:
            whole.append(whole_val_loss(checkpointer.model, data, cfg.block_size))

    result = train(cfg, threads=threads, data=data, on_eval=on_eval,
                   log=lambda line: print("  " + line, flush=True)
                   if line.startswith("step") else None)
    print(f"  val loss over the whole validation split: {whole[0]:.4f}", flush=True)
    # Each record's ms_per_iter covers the steps since the previous one: weight by them.
    train_ms, done = 0.0, 0
    for r in result.records:
        train_ms, done = train_ms + r.ms_per_iter * (r.iter - done), r.iter
    full_ms = train_ms / result.iters

    print(f"== {threads} thread(s): side by side, {rounds} rounds x {side_iters} iterations",
          flush=True)
    ours, ref = [], []
    for r in range(rounds):
        first, second = (ours, ref) if r % 2 == 0 else (ref, ours)
        for bucket in (first, second):
            if bucket is ours:
                bucket.append(ours_ms_per_iter(cfg, data, side_iters, threads))
            else:
                bucket.append(straightforward_ms_per_iter(cfg, data, side_iters))
        print(f"  round {r + 1}: tune-gpt {ours[-1]:.1f} ms/iter, "
              f"straightforward {ref[-1]:.1f} ms/iter", flush=True)
    ours_ms, ref_ms = statistics.mean(ours), statistics.mean(ref)
    # Each round pairs the two loops under nearly the same noise; the median of the
    # per-round ratios ignores a round that a burst of outside load hit harder on one side.
    speedup = statistics.median(r / o for o, r in zip(ours, ref))
    return {
        "threads": threads, "iters": result.iters, "val_loss": result.final.val_loss,
        "whole_val_loss": whole[0],
        "train_loss": result.final.train_loss, "ms_per_iter": full_ms,
        "tokens_per_s": cfg.tokens_per_iter() / full_ms * 1e3, "mfu": result.final.mfu,
        "wall_s": result.wall_s,
        "side_by_side": {"iters_per_round": side_iters, "rounds": rounds,
                         "tune_gpt_ms_per_iter": ours_ms, "straightforward_ms_per_iter": ref_ms,
                         "tune_gpt_rounds": ours, "straightforward_rounds": ref,
                         "median_speedup": speedup, "faster_by": 1 - 1 / speedup},
    }


def markdown(rows: list[dict], meta: dict) -> str:
    side = rows[0]["side_by_side"]
    intro = (f"nanoGPT's CPU recipe, {rows[0]['iters']} iterations, torch {meta['torch']}. "
             f"Side by side: {side['rounds']} alternating rounds of {side['iters_per_round']} "
             f"timed iterations (after {WARMUP} untimed) per loop.")
    header = ("| threads | val loss (20 batches) | val loss (whole split) | ms/iter | tokens/s "
              "| MFU | tune-gpt ms/iter (side by side) | straightforward ms/iter "
              "| speed-up (median of rounds) | tune-gpt faster by |")
    lines = [f"# Training throughput ({meta['machine']})", "", intro, "", header,
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["side_by_side"]
        lines.append(f"| {r['threads']} | {r['val_loss']:.4f} | {r['whole_val_loss']:.4f} | "
                     f"{r['ms_per_iter']:.1f} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} | "
                     f"{s['tune_gpt_ms_per_iter']:.1f} | {s['straightforward_ms_per_iter']:.1f} | "
                     f"{s['median_speedup']:.2f}x | {s['faster_by']:.1%} |")
    small = meta.get("small") or []
    if small:
        lines += ["", f"The guide's 2-layer / 64 model (4 heads, block 64, batch 12), "
                      f"{small[0]['iters']} iterations:", "",
                  "| threads | ms/iter | tokens/s | MFU |", "|---|---|---|---|"]
        lines += [f"| {r['threads']} | {r['ms_per_iter']:.1f} | {r['tokens_per_s']:,.0f} | "
                  f"{r['mfu']:.1%} |" for r in small]
    lines.append("\nMFU on CPU is measured against the machine's own float32 GEMM rate "
                 "(tune_gpt.estimate.cpu_peak_flops), not a datasheet peak.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="60 iterations, 2 side-by-side rounds (~1 minute)")
    cli.add_data(p)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="torch thread counts to measure (default 1 2)")
    args = p.parse_args(argv)
    if not cli.have_data(args.data):
        return 2

    full_iters, side_iters, rounds = (60, 20, 2) if args.quick else (2000, 25, 12)
    data = prepare(args.data)
    rows = [bench_threads(t, data, full_iters, side_iters, rounds) for t in args.threads]
    small = [bench_small(t, data, 40 if args.quick else 1000) for t in args.threads]
    import os
    import platform

    meta = {"torch": torch.__version__, "cpus": os.cpu_count(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "quick": args.quick, "small": small}
    print()
    print(markdown(rows, meta))
    if args.json:
        written = write_summary(args.json, {"meta": meta, "results": rows, "small": small},
                                markdown(rows, meta), indent=2)
        print(f"wrote {written[0]} and {written[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
