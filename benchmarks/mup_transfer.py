"""Benchmark: does the best learning rate stay put as the model widens? SP against µP.

    python benchmarks/mup_transfer.py --out benchmarks/results/mup_transfer
                                    # the full run, ~40 min on 2 cores, resuming the committed cells
    python benchmarks/mup_transfer.py --quick          # a smoke run (~30 s) that a test calls
    python benchmarks/mup_transfer.py --json OUT.json  # the summary there (+ .md), cells in OUT/

For each parametrization (sp, mup), each width (n_embd 64, 128, 256, 512; 2 layers, 4
heads, as EleutherAI's nanoGPT-mup study of the same task) and each seed, a learning-rate
sweep on shakespeare_char: every run trains the same tokens (200 steps of 12 x 64), with
warmup, cosine decay to lr/10, no weight decay, and is scored by its final val_loss (40
batches). µP's base width is the smallest width, so at 64 both parametrizations are the
same model and agree.

It prints, per parametrization: the best learning rate per width (seed-mean loss; the
optimum of a parabola in log lr through the best grid point and its neighbours), their
drift (max / min), and at the largest width the loss of the learning rate that is best at
the smallest width against that width's own best (`transfer_loss_gap`). The target it was written for:
under µP a drift <= 2x and a gap <= 0.02 nats; under SP the drift is shown.

Every run is a cell in OUT/cells/<param>-w<width>-lr<lr>-s<seed>.json, skipped when the
script runs again (resumable; a cell cut short is run again). OUT/summary.{json,md} and
OUT/mup_transfer.png are rebuilt from the cells present (the summary also to --json when
given). OUT is --out DIR; by default the folder beside --json OUT.json, or a temporary one
with --quick. Not a test: it prints figures.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import (  # noqa: E402
    load_cells,
    saved_cell,
    write_figure,
    write_json,
    write_summary,
)

FULL = {"widths": [64, 128, 256, 512], "lrs": [2.5e-4 * 2 ** k for k in range(7)],
        "seeds": [0, 1], "iters": 200, "eval_iters": 40}
QUICK = {"widths": [32, 64], "lrs": [3e-3, 1e-2, 3e-2], "seeds": [0], "iters": 15,
         "eval_iters": 4}
PARAMS = ("sp", "mup")
TARGET_DRIFT, TARGET_GAP = 2.0, 0.02
# What every saved cell holds (a file without them is not trusted on resume).
CELL_KEYS = ("param", "width", "lr", "seed", "val_loss", "diverged")


def cell_name(param: str, width: int, lr: float, seed: int) -> str:
    return f"{param}-w{width}-lr{lr:.3e}-s{seed}"


def run_cell(param: str, width: int, lr: float, seed: int, plan: dict, data) -> dict[str, Any]:
    from tune_gpt.config import TrainConfig
    from tune_gpt.train import train

    iters = plan["iters"]
    cfg = TrainConfig(dataset=data.name, n_layer=2, n_head=4, n_embd=width, batch_size=12,
                      block_size=64, max_iters=iters, eval_interval=iters,
                      eval_iters=plan["eval_iters"], warmup_iters=max(1, iters // 10),
                      lr_decay_iters=iters, learning_rate=lr, min_lr=lr / 10,
                      weight_decay=0.0, parametrization=param,
                      mup_base_width=min(plan["widths"]), seed=seed, device="cpu")
    t0 = time.time()
    r = train(cfg, data=data, threads=plan.get("threads"))
    loss = r.final.val_loss
    return {"param": param, "width": width, "lr": lr, "seed": seed,
            "val_loss": loss if math.isfinite(loss) and not r.diverged else None,
            "diverged": r.diverged, "wall_s": round(time.time() - t0, 2)}


def best_lr(points: dict[float, float]) -> tuple[float, float]:
    """(lr, loss) of the best grid point, the lr refined by a parabola in log2(lr) through
    it and its neighbours (kept within them); an edge point stays as it is. The grid need
    not be evenly spaced in log2(lr) (--quick's 3e-3, 1e-2, 3e-2 is not)."""
    lrs = sorted(points)
    i = min(range(len(lrs)), key=lambda j: points[lrs[j]])
    if 0 < i < len(lrs) - 1:
        x = [math.log2(lrs[i + d]) for d in (-1, 0, 1)]
        y = [points[lrs[i + d]] for d in (-1, 0, 1)]
        left, right = x[1] - x[0], x[2] - x[1]
        slope = (y[1] - y[0]) / left                              # between x0 and x1
        curve = ((y[2] - y[1]) / right - slope) / (left + right)  # half p''
        if curve > 0:
            # Newton's form p(x) = y0 + slope (x - x0) + curve (x - x0)(x - x1): p' = 0 at
            vertex = (x[0] + x[1]) / 2 - slope / (2 * curve)
            return 2 ** max(x[0], min(x[2], vertex)), points[lrs[i]]
    return lrs[i], points[lrs[i]]


def summarize(cells: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in PARAMS:
        mine = [c for c in cells if c["param"] == param]
        widths = sorted({c["width"] for c in mine})
        curves: dict[int, dict[float, float]] = {}
        for w in widths:
            by_lr: dict[float, list[float]] = {}
            for c in mine:
                if c["width"] == w:
                    # A diverged run scores ln(65), uniform guessing over the characters.
                    by_lr.setdefault(c["lr"], []).append(
                        c["val_loss"] if c["val_loss"] is not None else math.log(65))
            curves[w] = {lr: statistics.fmean(v) for lr, v in by_lr.items()}
        if len(widths) < 2:
            continue
        best = {w: best_lr(curves[w]) for w in widths}
        grid_best = {w: min(curves[w], key=curves[w].get) for w in widths}
        small, large = widths[0], widths[-1]
        transferred = grid_best[small]
        gap = curves[large].get(transferred, math.nan) - min(curves[large].values())
        lrs_best = [best[w][0] for w in widths]
        out[param] = {
            "widths": widths,
            "best_lr": {str(w): best[w][0] for w in widths},
            "best_lr_grid": {str(w): grid_best[w] for w in widths},
            "best_loss": {str(w): best[w][1] for w in widths},
            "lr_drift": max(lrs_best) / min(lrs_best),
            "transferred_lr": transferred,
            "transfer_loss_gap": gap,
            "curves": {str(w): {f"{lr:.6g}": v for lr, v in sorted(curves[w].items())}
                       for w in widths},
            "seeds": sorted({c["seed"] for c in mine}), "runs": len(mine)}
    if "mup" in out:
        m = out["mup"]
        out["target"] = {"drift_at_most": TARGET_DRIFT, "gap_at_most": TARGET_GAP,
                         "met": m["lr_drift"] <= TARGET_DRIFT and m["transfer_loss_gap"]
                         <= TARGET_GAP}
    return out


def markdown(s: dict[str, Any]) -> str:
    lines = ["# Learning-rate transfer across width: SP against µP\n",
             "| parametrization | best lr per width | drift (max/min) | loss at the widest "
             "width: transferred lr - its own best |", "|---|---|---|---|"]
    for param in PARAMS:
        if param not in s:
            continue
        r = s[param]
        per = ", ".join(f"{w}: {r['best_lr'][str(w)]:.2g}" for w in r["widths"])
        lines.append(f"| {param} | {per} | {r['lr_drift']:.1f}x | "
                     f"{r['transfer_loss_gap']:+.3f} (lr {r['transferred_lr']:.2g}) |")
    if "target" in s:
        t = s["target"]
        lines += ["", f"Target under µP: drift <= {t['drift_at_most']}x and gap <= "
                  f"{t['gap_at_most']} nats: {'met' if t['met'] else 'not met'}."]
    return "\n".join(lines) + "\n"


def plot(s: dict[str, Any]) -> Any:
    """The lr sweeps per width, one panel per parametrization: a bare matplotlib Figure (no
    pyplot state to close); main saves it."""
    from matplotlib.figure import Figure

    params = [p for p in PARAMS if p in s]
    fig = Figure(figsize=(5.2 * len(params), 3.8))
    axes = fig.subplots(1, len(params), sharey=True, squeeze=False)
    for ax, param in zip(axes[0], params):
        r = s[param]
        for w in r["widths"]:
            curve = {float(k): v for k, v in r["curves"][str(w)].items()}
            xs = sorted(curve)
            line, = ax.plot(xs, [curve[x] for x in xs], marker="o", ms=3, label=f"n_embd {w}")
            ax.axvline(r["best_lr"][str(w)], color=line.get_color(), lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_title(f"{param}: best-lr drift {r['lr_drift']:.1f}x")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final val_loss (seed mean)")
    lo = min(min(v.values()) for p in params for v in s[p]["curves"].values())
    axes[0][0].set_ylim(lo - 0.05, lo + 0.8)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="2 widths, 3 lrs, 15 steps (~30 s)")
    cli.add_data(p)
    cli.add_out(p, "mup_transfer", "cells, summary and figure")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run")
    args = p.parse_args(argv)
    if not cli.have_data(args.data):
        return 2
    plan = dict(QUICK if args.quick else FULL, threads=args.threads)
    out = cli.out_folder(args, "mup_transfer")
    if out is None:
        return 2
    (out / "cells").mkdir(parents=True, exist_ok=True)
    from tune_gpt.data import prepare

    data = prepare(args.data)
    # Seed 0 everywhere first, so that an interrupted run already has one full sweep.
    for seed in plan["seeds"]:
        for width in plan["widths"]:
            for param in PARAMS:
                for lr in plan["lrs"]:
                    if param == "mup" and width == min(plan["widths"]):
                        continue  # identical to sp at the base width: copied below
                    f = out / "cells" / f"{cell_name(param, width, lr, seed)}.json"
                    if saved_cell(f, CELL_KEYS) is not None:
                        continue
                    cell = run_cell(param, width, lr, seed, plan, data)
                    write_json(f, cell)
                    print(f"{f.stem}: val_loss {cell['val_loss']}, {cell['wall_s']:.1f} s",
                          flush=True)
    cells = load_cells(sorted((out / "cells").glob("*.json")), CELL_KEYS)
    base = min(plan["widths"])
    cells += [dict(c, param="mup", copied_from="sp") for c in cells
              if c["param"] == "sp" and c["width"] == base]
    s = summarize(cells)
    s["plan"] = {k: v for k, v in plan.items() if k != "threads"}
    md = markdown(s)
    written = [*write_summary(out / "summary.json", s, md, indent=1)]
    write_figure(plot(s), out / "mup_transfer.png", dpi=110)
    written.append(out / "mup_transfer.png")
    if args.json:
        written += write_summary(args.json, s, md, indent=1)
    print(md)
    print(f"written: {', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
