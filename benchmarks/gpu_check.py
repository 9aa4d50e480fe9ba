"""GPU check: the paths a CPU machine cannot exercise, in one short run (~8 minutes on one
modern GPU). Prints a markdown table per part and writes a JSON summary.

    python benchmarks/gpu_check.py --data input.txt --json $OUT/gpu.json   # + gpu.md
    python benchmarks/gpu_check.py --quick       # tiny sizes; also runs on a CPU (smoke)
    python benchmarks/gpu_check.py --parts estimator oom --json gpu.json  # some parts only

1. The guide's Shakespeare config (6 layers x 384, block 256, batch 64, dropout 0.2,
   lr 1e-3, 5,000 iterations) with bf16 autocast + torch.compile + fused AdamW: time,
   final val loss, tokens/s, MFU against the detected GPU's peak, peak memory against the
   estimator. (nanoGPT reports val 1.4697 after ~3 min on an A100 for this config.)
2. Estimator accuracy: predicted peak memory vs torch.cuda.max_memory_allocated for ten
   configs (target: within +-20%).
3. OOM under a memory fraction: torch.cuda.set_per_process_memory_fraction makes a big
   GPU stand in for the guide's 8 GB card; a config too big for it raises
   torch.OutOfMemoryError, the memory is freed, and the same tokens/iter with batch_size
   halved and gradient_accumulation_steps doubled fits.
4. Fractional GPUs: the same 8 small trials as a search at 1 GPU per trial and at 0.25 GPU
   per trial (four trials share the card): aggregate training tokens/s of each.
5. GPT-2 124M (search_spaces/gpt2_small.yaml's model: 12x12x768, block 1024, vocab 50304,
   bf16, compile) on a BPE folder in nanoGPT's format: 30 iterations, the estimator's peak
   memory against torch.cuda.max_memory_allocated, tokens/s and MFU.

--quick shrinks every part to tiny sizes; on a machine without CUDA, parts 1, 2 and 5 run on
the CPU and parts 3 and 4 say they were skipped. --json OUT is rewritten (atomically) after
every part, so a run cut short keeps what it measured. Writes nothing else: its working
files live in a temporary folder.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import write_summary  # noqa: E402

PARTS = ("shakespeare", "estimator", "oom", "fractional", "gpt2")

SHAKESPEARE = dict(batch_size=64, block_size=256, n_layer=6, n_head=6, n_embd=384,
                   dropout=0.2, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100,
                   max_iters=5000, lr_decay_iters=5000, eval_interval=500, eval_iters=200,
                   log_interval=500, dtype="bfloat16", compile=True)
ESTIMATE_CONFIGS = [  # (batch, block, layers, heads, embd, dtype)
    (64, 256, 6, 6, 384, "bfloat16"), (32, 256, 6, 6, 384, "bfloat16"),
    (64, 128, 6, 6, 384, "bfloat16"), (64, 256, 4, 4, 256, "bfloat16"),
    (16, 512, 6, 6, 384, "bfloat16"), (12, 1024, 12, 12, 768, "bfloat16"),
    (64, 256, 6, 6, 384, "float32"), (32, 256, 8, 8, 512, "float32"),
    (8, 1024, 12, 12, 768, "float16"), (128, 64, 4, 4, 128, "float32"),
]


def _cfg(data: str, **knobs):
    from tune_gpt.config import load_train_config

    return load_train_config(None, [], dataset=data, **knobs)


def part_shakespeare(data: str, quick: bool) -> dict:
    from tune_gpt.estimate import estimate
    from tune_gpt.train import train

    knobs = dict(SHAKESPEARE)
    if quick:
        knobs.update(max_iters=30, lr_decay_iters=30, eval_interval=15, eval_iters=2,
                     n_layer=2, n_embd=96, n_head=4, batch_size=8, block_size=64,
                     warmup_iters=5, compile=False)
    cfg = _cfg(data, **knobs)
    _reset_peak()
    t0 = time.time()
    result = train(cfg)
    wall = time.time() - t0
    est = estimate(cfg, 65)
    f = result.final
    return {"device": result.device, "iters": result.iters, "wall_s": round(wall, 1),
            "val_loss": round(f.val_loss, 4), "train_loss": round(f.train_loss, 4),
            "tokens_per_s": round(f.tokens_per_s), "mfu": round(f.mfu, 4),
            "peak_mem_bytes": f.peak_mem_bytes, "estimated_bytes": est.total}


def part_estimator(data: str, quick: bool) -> list[dict]:
    import torch

    from tune_gpt.estimate import estimate
    from tune_gpt.train import train

    rows = []
    configs = ESTIMATE_CONFIGS[:2] if quick else ESTIMATE_CONFIGS
    for b, t, n_layer, n_head, n_embd, dtype in configs:
        if quick:
            b, t, n_layer, n_embd, dtype = max(1, b // 8), min(t, 64), 2, n_head * 16, "float32"
        cfg = _cfg(data, batch_size=b, block_size=t, n_layer=n_layer, n_head=n_head,
                   n_embd=n_embd, dtype=dtype, max_iters=3, lr_decay_iters=3, warmup_iters=1,
                   eval_interval=3, eval_iters=1, compile=False)
        _reset_peak()
        try:
            result = train(cfg)
            measured = result.final.peak_mem_bytes
        except torch.OutOfMemoryError:
            measured = float("nan")
        predicted = estimate(cfg, 65).total
        rows.append({"batch_size": b, "block_size": t, "n_layer": n_layer, "n_embd": n_embd,
                     "dtype": dtype, "predicted_bytes": predicted, "measured_bytes": measured,
                     "error": round(predicted / measured - 1, 3) if measured == measured else None})
        _free()
    return rows


def part_gpt2(data: str, quick: bool, workdir: Path) -> dict:
    """GPT-2 124M as search_spaces/gpt2_small.yaml trains it (12x12x768, block 1024, BPE
    vocab 50304, bf16, compile) on a BPE folder in nanoGPT's format. The ids are random
    (the GPU machine has no internet for openwebtext): this measures memory against the
    estimator, tokens/s and MFU, not loss."""
    import numpy as np
    import torch

    from tune_gpt.estimate import estimate
    from tune_gpt.train import train

    folder = workdir / "bpe"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rng.integers(0, 50257, 4_000_000, dtype=np.uint16).tofile(folder / "train.bin")
    rng.integers(0, 50257, 400_000, dtype=np.uint16).tofile(folder / "val.bin")
    knobs = dict(batch_size=12, block_size=1024, n_layer=12, n_head=12, n_embd=768,
                 dropout=0.0, learning_rate=6e-4, min_lr=6e-5, beta2=0.95, weight_decay=0.1,
                 warmup_iters=5, max_iters=30, lr_decay_iters=30, eval_interval=30,
                 eval_iters=5, log_interval=10, dtype="bfloat16", compile=True)
    if quick:
        knobs.update(batch_size=1, block_size=64, n_layer=1, n_head=2, n_embd=32, max_iters=4,
                     warmup_iters=1,
                     lr_decay_iters=4, eval_interval=4, eval_iters=1, dtype="float32",
                     compile=False)
    cfg = _cfg(str(folder), **knobs)
    _reset_peak()
    t0 = time.time()
    result = train(cfg)
    wall = time.time() - t0
    predicted = estimate(cfg, 50304).total
    measured = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else float("nan")
    f = result.final
    out = {"config": "gpt2-124M" if not quick else "tiny", "vocab": 50304,
           "n_params": result.n_params, "iters": result.iters, "wall_s": round(wall, 1),
           "tokens_per_s": round(f.tokens_per_s) if f and f.tokens_per_s else None,
           "mfu": round(f.mfu, 3) if f and f.mfu else None,
           "predicted_bytes": predicted, "max_memory_allocated": measured,
           "error": round(predicted / measured - 1, 3) if measured == measured else None}
    _free()
    return out


def part_oom(data: str, quick: bool) -> dict:
    import torch

    from tune_gpt.estimate import estimate
    from tune_gpt.train import train

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    total = torch.cuda.get_device_properties(0).total_memory
    card = 8 * 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, card / total))
    big = dict(batch_size=256, block_size=512, n_layer=8, n_head=8, n_embd=512,
               dtype="bfloat16", max_iters=3, lr_decay_iters=3, warmup_iters=1,
               eval_interval=3, eval_iters=1, compile=False)
    out = {"card_bytes": card, "estimate_big": estimate(_cfg(data, **big), 65).total}
    try:
        train(_cfg(data, **big))
        out["big"] = "fitted (no OOM)"
    except torch.OutOfMemoryError as e:
        out["big"] = f"OOM: {str(e).splitlines()[0][:120]}"
    _free()
    out["after_free_allocated"] = torch.cuda.memory_allocated()
    accum = 1
    while accum <= 16:
        accum *= 2
        small = {**big, "batch_size": big["batch_size"] // accum,
                 "gradient_accumulation_steps": accum}
        try:
            _reset_peak()
            r = train(_cfg(data, **small))
            out["rescued_with"] = {"batch_size": small["batch_size"],
                                   "gradient_accumulation_steps": accum,
                                   "tokens_per_iter": small["batch_size"] * 512 * accum,
                                   "peak_mem_bytes": r.final.peak_mem_bytes}
            break
        except torch.OutOfMemoryError:
            _free()
    torch.cuda.set_per_process_memory_fraction(1.0)
    return out


def part_fractional(data: str, quick: bool, workdir: Path) -> list[dict]:
    import pandas as pd
    import torch
    import yaml

    from tune_gpt.search import SearchOptions, run_search

    if not torch.cuda.is_available():
        return [{"skipped": "no CUDA device"}]
    rows = []
    for gpu in (1.0, 0.25):
        space = {"name": f"frac{gpu}", "params": {"learning_rate": {"loguniform": [5e-4, 3e-3]}},
                 "fixed": {"n_layer": 4, "n_head": 4, "n_embd": 256, "block_size": 256,
                           "batch_size": 32, "max_iters": 300 if not quick else 20,
                           "eval_interval": 100, "eval_iters": 10, "dtype": "bfloat16"},
                 "sampler": {"type": "random", "seed": 0}, "scheduler": {"type": "none"},
                 "budget": {"num_samples": 8}, "resources": {"cpu": 2, "gpu": gpu}}
        path = workdir / f"frac{gpu}.yaml"
        path.write_text(yaml.safe_dump(space))
        r = run_search(SearchOptions(space=str(path), data=data, name=f"frac{gpu}",
                                     storage_path=str(workdir / "runs"), report=False,
                                     quiet=True, profile="gpu"))
        df = pd.read_csv(r.folder / "results" / "trials.csv")
        rows.append({"gpu_per_trial": gpu, "trials": len(df), "search_wall_s": round(r.wall_s, 1),
                     "aggregate_tokens_per_s": round(float(df["tokens"].sum()) / r.wall_s)})
    return rows


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="tiny sizes in every part, a minute or two; "
                                            "runs on a CPU too (the CUDA-only parts skipped)",
                             json="write the figures here after every part, and the "
                                  "markdown tables beside them (OUT.md)")
    cli.add_data(p)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="the parts to run, in this order (default all)")
    args = p.parse_args(argv)
    # every part but gpt2 (which writes its own token folder) trains on --data
    if set(args.parts) - {"gpt2"} and not cli.have_data(args.data):
        return 2
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", tempfile.mkdtemp(prefix="tg-gpu-cache-"))
    import torch

    out: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                 "torch": torch.__version__}
    md = [f"# GPU check on {out['device']} (torch {out['torch']})"]
    print(md[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="tg-gpu-") as tmp:
        for part in args.parts:
            t0 = time.time()
            if part == "shakespeare":
                res = part_shakespeare(args.data, args.quick)
            elif part == "estimator":
                res = part_estimator(args.data, args.quick)
            elif part == "oom":
                res = part_oom(args.data, args.quick)
            elif part == "gpt2":
                res = part_gpt2(args.data, args.quick, Path(tmp))
            else:
                res = part_fractional(args.data, args.quick, Path(tmp))
            out[part] = res
            md += [f"\n## {part} ({time.time() - t0:.0f} s)\n",
                   _table(res if isinstance(res, list) else [res])]
            print("\n".join(md[-2:]), flush=True)
            if args.json:  # after every part: a run cut short keeps what it measured
                write_summary(args.json, out, "\n".join(md) + "\n", indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
