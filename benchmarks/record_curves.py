"""Record the learning curves the search-efficiency replay runs on (issue 12).

    python benchmarks/record_curves.py                  # the whole table (~2 h on 2 cores)
    python benchmarks/record_curves.py --workers 1      # leave a core free
    python benchmarks/record_curves.py --quick          # a 4-config smoke run, in a temp folder

Every config of a fixed grid over the CPU space the real benchmark searches (batch_size,
learning_rate on a log grid, n_layer, n_embd; the other knobs are nanoGPT's CPU recipe, as in
`search_efficiency.py`) is trained once for the search's full trial budget (2M tokens, cosine
decay over that budget, exactly as a search trial of that config would train), and evaluated
every 125k tokens. The nine runs of the guide's manual sweeps (CPU sizing) are recorded too,
each as the sweep runs it, so the replay's target (the manual best) comes from this table.

Each finished config is appended as one JSON line to OUT/curves.jsonl, so an interrupted
recording continues where it stopped: configs already in the file are skipped. Lines hold
the knobs, parameter count, FLOPs per token and, per evaluation, tokens, val_loss,
train_loss and the wall time since the start of the run.

Not a test: it prints figures; the wall times carry the machine's noise (the replay counts
compute in tokens and FLOPs, which the noise does not touch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The grid. The learning rate is on a log grid with half-decade steps over the search's
# range; batch and model shape cover the search's choices (batch 16 and 64 snap to the
# nearer recorded value, which the replay reports).
GRID = {
    "batch_size": [12, 32],
    "learning_rate": [1.0e-4, 3.16e-4, 1.0e-3, 3.16e-3, 1.0e-2],
    "n_layer": [2, 4, 6],
    "n_embd": [64, 128, 192],
}
TOKENS_PER_TRIAL = 2_000_000     # the real benchmark's budget.tokens_per_trial
TOKENS_PER_EVAL = 125_000        # half the real benchmark's, so grace periods of 125k work
# nanoGPT's CPU recipe, as the real benchmark fixes it (search_efficiency.BASE)
BASE = {"block_size": 64, "n_head": 4, "dropout": 0.0, "warmup_iters": 100, "beta2": 0.99,
        "eval_iters": 20, "log_interval": 100_000, "dtype": "float32", "compile": False,
        "weight_decay": 0.1, "grad_clip": 1.0, "seed": 0}
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "replay"


def grid_config(batch_size: int, learning_rate: float, n_layer: int, n_embd: int,
                tokens: int = TOKENS_PER_TRIAL, per_eval: int = TOKENS_PER_EVAL
                ) -> dict[str, Any]:
    """The knobs a search trial of this config trains with: max_iters from the token budget,
    lr decay over all of it to learning_rate/10, warmup capped at a tenth of the run."""
    tpi = batch_size * BASE["block_size"]
    max_iters = max(1, math.ceil(tokens / tpi))
    return {**BASE, "batch_size": batch_size, "learning_rate": learning_rate,
            "n_layer": n_layer, "n_embd": n_embd, "max_iters": max_iters,
            "lr_decay_iters": max_iters, "min_lr": learning_rate / 10,
            "warmup_iters": min(BASE["warmup_iters"], max_iters // 10),
            "eval_interval": max(1, math.ceil(per_eval / tpi))}


def key_of(kind: str, cfg: dict[str, Any]) -> str:
    return (f"{kind}:b{cfg['batch_size']}:lr{cfg['learning_rate']:.3g}:"
            f"{cfg['n_layer']}x{cfg['n_embd']}:it{cfg['max_iters']}")


def plan(quick: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(kind, config) in recording order: the manual runs first (the replay's target), then
    the grid."""
    import itertools

    from benchmarks.search_efficiency import manual_plan

    if quick:
        scale = TOKENS_PER_TRIAL // 100
        return [("grid", grid_config(b, lr, 2, 64, scale, scale // 4))
                for b, lr in itertools.product((12, 32), (1e-3, 1e-2))]
    manual = []
    for run in manual_plan(1.0):
        cfg = {**BASE, **{k: v for k, v in run.items() if k != "experiment"}}
        manual.append(("manual", cfg))
    # One batch size at a time (each pass a full grid over lr x shape), shuffled within:
    # a partial table is then a complete grid at the batch sizes recorded so far.
    grid = []
    for b in GRID["batch_size"]:
        layer = [("grid", grid_config(b, *p)) for p in
                 itertools.product(GRID["learning_rate"], GRID["n_layer"], GRID["n_embd"])]
        random.Random(b).shuffle(layer)
        grid += layer
    return manual + grid


def record_one(item: tuple[str, dict[str, Any]], data: str) -> dict[str, Any]:
    """Train one config to its end and return its table line."""
    from tune_gpt.config import from_mapping
    from tune_gpt.data import prepare
    from tune_gpt.estimate import count_params, flops_per_token
    from tune_gpt.train import train

    kind, knobs = item
    cfg = from_mapping({**knobs, "dataset": data, "device": "cpu",
                        "out_dir": tempfile.mkdtemp(prefix="rec-")})
    prepared = prepare(data)
    points: list[list[float]] = []

    def on_eval(rec, _ckpt) -> bool:
        points.append([rec.tokens, round(rec.val_loss, 5), round(rec.train_loss, 5),
                       round(rec.elapsed_s, 2)])
        return False

    t0 = time.time()
    result = train(cfg, on_eval=on_eval, threads=1, data=prepared)
    n, _ = count_params(cfg.n_layer, cfg.n_embd, cfg.block_size, prepared.vocab_size, cfg.bias)
    fpt = flops_per_token(n, cfg.n_layer, cfg.n_embd, cfg.block_size)
    return {"key": key_of(kind, knobs), "kind": kind, "config": knobs,
            "n_params": result.n_params, "flops_per_token": fpt,
            "tokens": result.tokens, "diverged": result.diverged,
            "wall_s": round(time.time() - t0, 1), "points": points}


def _work(args: tuple[tuple[str, dict[str, Any]], str]) -> dict[str, Any]:
    return record_one(*args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/shakespeare_char/input.txt"))
    p.add_argument("--out", default=None, help=f"folder of curves.jsonl (default {DEFAULT_OUT})")
    p.add_argument("--workers", type=int, default=2, help="configs trained at once, 1 thread each")
    p.add_argument("--quick", action="store_true", help="4 tiny configs (smoke run)")
    p.add_argument("--limit", type=int, default=None, help="record at most this many new configs")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: no data file at {args.data}; pass --data PATH", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else \
        (Path(tempfile.mkdtemp(prefix="replay-quick-")) if args.quick else DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "curves.jsonl"
    done = set()
    if table.exists():
        for line in table.read_text().splitlines():
            try:
                done.add(json.loads(line)["key"])
            except (ValueError, KeyError):
                continue  # a line cut short by a kill: that config is recorded again
    items = [it for it in plan(args.quick) if key_of(*it) not in done]
    if args.limit is not None:
        items = items[:args.limit]
    total = len(plan(args.quick))
    print(f"{len(done)} of {total} configs already in {table}; recording {len(items)} "
          f"with {args.workers} worker(s)", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tune_gpt.data import prepare
    prepare(args.data)  # tokenise once, before the workers read the cache

    import multiprocessing as mp

    t0 = time.time()
    with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=8) as pool:
        for i, line in enumerate(pool.imap_unordered(_work, [(it, args.data) for it in items])):
            with table.open("a") as f:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
            last = line["points"][-1] if line["points"] else [0, math.nan]
            print(f"[{i + 1}/{len(items)} {time.time() - t0:6.0f}s] {line['key']}: "
                  f"val_loss {last[1]:.4f} at {last[0]:,} tokens, {line['wall_s']:.0f} s",
                  flush=True)
    print(f"table: {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
