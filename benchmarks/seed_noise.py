"""How much one training run's validation loss moves with its seed: the seed noise that
"is a difference real?" is judged against when a search ran no confirm runs.

    python benchmarks/seed_noise.py --data ../shared/data/shakespeare_char/input.txt \
        --seeds 0 1 2 3 4 5 --out benchmarks/results/seed_noise/shakespeare_char \
        --json benchmarks/results/seed_noise/shakespeare_char/summary.json
    python benchmarks/seed_noise.py --quick                 # a smoke run (temporary folder)

One config (nanoGPT's CPU recipe, tune-gpt's TrainConfig defaults: 4x128, block 64, batch
12, lr 1e-3, cosine) trained for --iters iterations once per seed; the seed sets the model's
init and the batches. Each seed is a cell (OUT/cells/seed-S.json, written atomically), so an
interrupted run resumes where it stopped. The summary gives every seed's final and best
val_loss as the trainer reports them (--eval-iters batches, 20 by default as beginner.yaml's
CPU profile scores its trials),
their standard deviation and its degrees of freedom (seeds - 1).

Not a test: it prints figures.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common.cli import add_data, add_out, benchmark_parser, out_folder  # noqa: E402
from benchmarks.common.output import saved_cell, write_json, write_summary  # noqa: E402


def run_seed(data: str, seed: int, iters: int, eval_interval: int, eval_iters: int
             ) -> dict[str, Any]:
    from tune_gpt.data import prepare

    prepared = prepare(data)
    with tempfile.TemporaryDirectory(prefix="seednoise-") as out_dir:
        return _run(prepared, data, seed, iters, eval_interval, eval_iters, out_dir)


def _run(prepared: Any, data: str, seed: int, iters: int, eval_interval: int, eval_iters: int,
         out_dir: str) -> dict[str, Any]:
    from tune_gpt.config import TrainConfig
    from tune_gpt.train import train

    cfg = TrainConfig(dataset=data, device="cpu", seed=seed, max_iters=iters,
                      lr_decay_iters=iters, warmup_iters=min(100, iters // 10),
                      eval_interval=eval_interval, eval_iters=eval_iters,
                      out_dir=out_dir)
    curve: list[list[float]] = []

    def on_eval(rec: Any, _ckpt: Any) -> bool:
        curve.append([rec.tokens, round(rec.val_loss, 5), round(rec.train_loss, 5)])
        return False

    t0 = time.time()
    train(cfg, on_eval=on_eval, threads=1, data=prepared)
    vals = [v for _, v, _ in curve if math.isfinite(v)]
    return {"seed": seed, "iters": iters, "tokens": curve[-1][0] if curve else 0,
            "final_val_loss": vals[-1] if vals else math.nan,
            "best_val_loss": min(vals) if vals else math.nan,
            "wall_s": round(time.time() - t0, 1), "curve": curve,
            "config": {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                    "batch_size", "learning_rate", "dropout",
                                                    "eval_iters")}}


def summarize(cells: list[dict[str, Any]], data: str) -> dict[str, Any]:
    out: dict[str, Any] = {"data": data, "seeds": [c["seed"] for c in cells],
                           "runs": [{k: c[k] for k in ("seed", "final_val_loss", "best_val_loss",
                                                       "tokens", "wall_s")} for c in cells]}
    for col in ("final_val_loss", "best_val_loss"):
        v = [c[col] for c in cells if math.isfinite(c[col])]
        out[col] = {"mean": statistics.fmean(v) if v else math.nan,
                    "sd": statistics.stdev(v) if len(v) > 1 else math.nan,
                    "dof": max(len(v) - 1, 0)}
    if cells:
        out["config"] = cells[0]["config"]
        out["iters"] = cells[0]["iters"]
    return out


def markdown(summary: dict[str, Any]) -> str:
    rows = [f"| {r['seed']} | {r['final_val_loss']:.4f} | {r['best_val_loss']:.4f} | "
            f"{r['tokens']:,} | {r['wall_s']:.0f} |" for r in summary["runs"]]
    f = summary["final_val_loss"]
    return "\n".join([f"# Seed noise on {summary['data']}", "",
                      "| seed | final val_loss | best val_loss | tokens | wall s |",
                      "|---|---|---|---|---|", *rows, "",
                      f"final val_loss {f['mean']:.4f} ± {f['sd']:.4f} (sd over seeds, "
                      f"{f['dof']} degrees of freedom)", ""])


def main(argv: list[str] | None = None) -> int:
    p = benchmark_parser(__doc__, "2 seeds x 60 iterations")
    add_data(p)
    add_out(p, "seed_noise/NAME", "seed cells")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5],
                   help="the seed numbers to run (each a cell)")
    p.add_argument("--iters", type=int, default=2000,
                   help="iterations per run (nanoGPT's CPU recipe: 2000)")
    p.add_argument("--eval-iters", type=int, default=20,
                   help="batches per evaluation (20: beginner.yaml's CPU profile, so the noise "
                        "is that of a trial as its search scores it)")
    args = p.parse_args(argv)
    if not Path(args.data).exists():
        print(f"error: no data at {args.data}; pass --data PATH", file=sys.stderr)
        return 2
    out = out_folder(args, "seed_noise")
    if out is None:
        return 2
    seeds, iters = (args.seeds[:2], 60) if args.quick else (args.seeds, args.iters)
    eval_interval = max(iters // 8, 1)
    cells = []
    for s in seeds:
        path = out / "cells" / f"seed-{s}.json"
        cell = saved_cell(path, ("seed", "iters", "final_val_loss", "best_val_loss", "config"))
        if cell is None or cell.get("iters") != iters or \
                cell.get("config", {}).get("eval_iters") != args.eval_iters:
            cell = run_seed(args.data, s, iters, eval_interval, args.eval_iters)
            write_json(path, cell)
        print(f"seed {s}: final val_loss {cell['final_val_loss']:.4f}, best "
              f"{cell['best_val_loss']:.4f} ({cell['wall_s']:.0f} s)", flush=True)
        cells.append(cell)
    summary = summarize(cells, args.data)
    f = summary["final_val_loss"]
    print(f"final val_loss {f['mean']:.4f} +- {f['sd']:.4f} (sd over {len(cells)} seeds, "
          f"dof {f['dof']})")
    if args.json:
        write_summary(args.json, summary, markdown(summary), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
