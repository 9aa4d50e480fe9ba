"""Benchmark: the guide's manual sweeps against ASHA+TPE and random search, at equal compute.

    python benchmarks/search_efficiency.py --out benchmarks/results/search_efficiency
                                  # the whole matrix (~70 min), resuming the committed cells
    python benchmarks/search_efficiency.py --methods asha_tpe --seeds 1 --out DIR
                                  # one cell (~9 min)
    python benchmarks/search_efficiency.py --quick              # ~1.5 minute smoke run
    python benchmarks/search_efficiency.py --replay --seeds 30 --json OUT.json
                                  # replayed on recorded curves, many seeds (benchmarks/replay.py)
    python benchmarks/search_efficiency.py --replay --table DIR --data PATH --seeds 30 \
        --json OUT.json           # on a table record_curves.py --data PATH --out DIR recorded

Methods (each a real tune-gpt search: local Ray, Optuna, MLflow):
  manual    the guide's three experiments (实验建议) with their CPU sizing, one after the
            other: batch_size 16/32/64 and learning_rate 1e-4/1e-3/1e-2 on nanoGPT's CPU
            recipe (4x128, block 64) for 1,000 iterations; (n_layer, n_embd) 2x64 / 4x128 /
            6x192 for 2,000 iterations. Nine runs, 14.08M training tokens in all.
  asha_tpe  Optuna's TPE, ASHA early stopping on tokens, no priors. (In a real run it gets
            tune-gpt's searcher, which tells TPE that stopped trials were PRUNED; the
            replay's asha_tpe is Ray's plain OptunaSearch, which says COMPLETE: tune-gpt's
            state before fidelity.py. The committed real results of 2026-11-28 are that state too.)
  random    Optuna's random sampler, every trial trained to its end (no early stopping).
  default   tune-gpt's default: asha_tpe with the priors of nanoGPT's CPU recipe (4 x 128,
            lr 1e-3, batch 12): that recipe first, the start-up trials near it.
  default_wrong_prior   the same with a deliberately wrong prior (2 x 64, lr 1e-4,
            batch 64); replay only unless asked for with --methods.

The searches tune the same knobs over the same ranges the manual sweeps cover (batch_size,
learning_rate, n_layer, n_embd) and stop when their trials together have trained as many
tokens as the manual sweeps (`budget.total_tokens`); --budget-fraction changes that. The
plan, the space and the budget: `benchmarks/common/efficiency.py`.

Compute = training tokens (iterations x tokens per iteration), counted over all trials.
For each run, the curve is the best val_loss reached so far against the compute spent so
far (`benchmarks/common/curves.py`). The manual sweeps are counted in the guide's order,
one run after another; a search's trials run two at a time, so its compute at an
evaluation is every trial's tokens trained by that moment (each trial's token count
interpolated between its reports).

Every finished cell (method, seed) is saved in OUT/cells/ and skipped when the script runs
again, so the matrix can be run in parts (each part fits in ~15 minutes on 2 cores) and an
interrupted run loses at most the cell in progress (a cell cut short is run again).
OUT/summary.{json,md} and OUT/curves.png are rebuilt from all the cells present, and the
summary is also written to --json when given. The searches stay in OUT/runs
(`tune-gpt ui --storage-path OUT/runs` shows them in MLflow). OUT is --out DIR; by default
the folder beside --json OUT.json, or a temporary one with --quick.

Not a test: it prints figures, and the machine's noise is in them.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.curves import (  # noqa: E402
    Trials,
    best_at,
    manual_curve,
    reach,
    search_curve,
)
from benchmarks.common.efficiency import (  # noqa: E402
    METHODS,
    REFERENCE_MANUAL_BEST,
    TARGET_FRACTION,
    manual_plan,
    space_for,
    tokens_of,
)
from benchmarks.common.output import (  # noqa: E402
    load_cells,
    saved_cell,
    write_figure,
    write_json,
    write_summary,
    write_text,
)
from benchmarks.common.replay import cli as replay_cli  # noqa: E402

# What every saved cell holds (a file without them is not trusted on resume).
CELL_KEYS = ("method", "seed", "scale", "budget_tokens", "tokens_spent", "best_val_loss",
             "trials", "wall_s", "curve")


def _progress(folder: Path) -> Trials:
    """Every trial's reports (Ray's progress.csv), keyed by trial id."""
    import json

    import pandas as pd

    out: Trials = {}
    for f in sorted((folder / "tune").glob("*/progress.csv")):
        df = pd.read_csv(f)
        if len(df):
            rows = df.to_dict("records")
            rows[0]["_config"] = json.loads((f.parent / "params.json").read_text())
            out[str(df["trial_id"].iloc[0])] = rows
    return out


def run_cell(method: str, seed: int, budget: int, scale: float, plan: list[dict[str, Any]],
             data: str, out: Path) -> dict[str, Any]:
    from tune_gpt.search import SearchOptions, run_search

    space = space_for(method, seed, budget, scale, plan)
    path = out / "spaces" / f"{space['name']}.yaml"
    write_text(path, yaml.safe_dump(space, sort_keys=False))
    t0 = time.time()
    result = run_search(SearchOptions(space=str(path), data=data, seed=seed,
                                      name=f"{space['name']}-{int(t0)}",
                                      storage_path=str(out / "runs"), quiet=True,
                                      report=False))
    wall = time.time() - t0
    trials = _progress(result.folder)
    points, spent = manual_curve(trials, plan) if method == "manual" else search_curve(trials)
    best = points[-1][1] if points else math.nan
    cell = {"method": method, "seed": seed, "budget_tokens": budget, "scale": scale,
            "tokens_spent": spent, "wall_s": round(wall, 1), "trials": len(trials),
            "counts": result.counts, "best_val_loss": best,
            "best_config": (result.best or {}).get("config"),
            "search": os.path.relpath(result.folder, out), "curve": points}
    return cell


def summarize(cells: list[dict[str, Any]], machine: str) -> dict[str, Any]:
    """The summary of the cells present (pure: main writes it)."""
    import numpy as np

    manual = [c for c in cells if c["method"] == "manual"]
    manual_total = float(np.mean([c["tokens_spent"] for c in manual])) if manual else \
        float(cells[0]["budget_tokens"])
    target = float(np.mean([c["best_val_loss"] for c in manual])) if manual else \
        REFERENCE_MANUAL_BEST
    rows = []
    for method in METHODS:
        mine = [c for c in cells if c["method"] == method]
        if not mine:
            continue
        fracs = [reach(c["curve"], target) / manual_total for c in mine]
        ref = [reach(c["curve"], REFERENCE_MANUAL_BEST) / manual_total for c in mine]
        at_third = [best_at(c["curve"], TARGET_FRACTION * manual_total) for c in mine]
        rows.append({
            "method": method, "seeds": [c["seed"] for c in mine],
            "best_val_loss_mean": float(np.mean([c["best_val_loss"] for c in mine])),
            "best_val_loss_std": float(np.std([c["best_val_loss"] for c in mine])),
            "best_at_third_mean": float(np.nanmean(at_third))
            if any(math.isfinite(x) for x in at_third) else math.nan,
            "best_at_third": at_third,
            "compute_to_manual_best": fracs,
            "reached_within_third": sum(f <= TARGET_FRACTION for f in fracs),
            "compute_to_reference_best": ref,
            "budget_fraction": [c["budget_tokens"] / manual_total for c in mine],
            "trials_mean": float(np.mean([c["trials"] for c in mine])),
            "wall_s_mean": float(np.mean([c["wall_s"] for c in mine])),
            "tokens_spent_mean": float(np.mean([c["tokens_spent"] for c in mine])),
        })
    return {"machine": machine, "manual_total_tokens": manual_total,
            "manual_best": target, "reference_manual_best": REFERENCE_MANUAL_BEST,
            "target_fraction": TARGET_FRACTION, "rows": rows,
            "cells": [{k: v for k, v in c.items() if k != "curve"} for c in cells]}


def _fmt_frac(f: float) -> str:
    return "never" if not math.isfinite(f) else f"{f:.2f}"


def _markdown(s: dict[str, Any]) -> str:
    lines = ["# Search efficiency: manual sweeps vs ASHA+TPE vs random search\n",
             f"Machine: {s['machine']}. Compute budget per run: the manual sweeps' "
             f"{s['manual_total_tokens'] / 1e6:.2f}M training tokens. Manual best "
             f"val_loss here: {s['manual_best']:.3f} (reference implementation: "
             f"{s['reference_manual_best']}). Target: reach the manual best with at most "
             f"{s['target_fraction']:.2f} of the manual compute.\n",
             "| method | seeds | budget per seed (× manual) | best val_loss (mean ± std) | "
             "best at 1/3 compute (mean) | compute to manual best, per seed (× manual) | "
             f"reached within 1/3 | compute to {s['reference_manual_best']}, per seed "
             "(× manual) | trials | wall s (mean) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(
            f"| {r['method']} | {len(r['seeds'])} | "
            f"{', '.join(f'{b:.2f}' for b in r.get('budget_fraction', []))} | "
            f"{r['best_val_loss_mean']:.3f} ± "
            f"{r['best_val_loss_std']:.3f} | {r['best_at_third_mean']:.3f} | "
            f"{', '.join(_fmt_frac(f) for f in r['compute_to_manual_best'])} | "
            f"{r['reached_within_third']}/{len(r['seeds'])} | "
            f"{', '.join(_fmt_frac(f) for f in r['compute_to_reference_best'])} | "
            f"{r['trials_mean']:.0f} | "
            f"{r['wall_s_mean']:.0f} |")
    lines.append("\nA seed whose budget is under 1 ran only that share of the manual compute "
                 "(enough to judge the 1/3 target; its best val_loss is that run's, not a full "
                 "one's). Curves: `curves.png` (best val_loss so far against training tokens "
                 "so far; line = mean over seeds, band = min..max).")
    return "\n".join(lines) + "\n"


def _figure(cells: list[dict[str, Any]], manual_total: float, target: float) -> Any:
    """Best val_loss so far against compute, per method: mean over seeds, band min..max.
    A bare matplotlib Figure (no pyplot state to close); main saves it."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    top = max(max((p[0] for p in c["curve"]), default=0) for c in cells) or 1.0
    grid = np.linspace(0, top, 300)
    colors = {"manual": "tab:gray", "asha_tpe": "tab:blue", "random": "tab:orange",
              "default": "tab:green", "default_wrong_prior": "tab:red"}
    for method in METHODS:
        mine = [c for c in cells if c["method"] == method and c["curve"]]
        if not mine:
            continue
        ys = np.array([[best_at(c["curve"], g) for g in grid] for c in mine])
        ok = ~np.isnan(ys).all(axis=0)
        g, ys = grid[ok] / 1e6, ys[:, ok]
        ax.plot(g, np.nanmean(ys, axis=0), color=colors[method],
                label=f"{method} ({len(mine)} seed{'s' if len(mine) > 1 else ''})")
        if len(mine) > 1:
            ax.fill_between(g, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0),
                            color=colors[method], alpha=0.2)
    ax.axhline(target, color="black", ls="--", lw=0.8, label=f"manual best {target:.3f}")
    ax.axvline(manual_total * TARGET_FRACTION / 1e6, color="black", ls=":", lw=0.8,
               label="1/3 of manual compute")
    ax.set_xlabel("training tokens spent (millions)")
    ax.set_ylabel("best val_loss so far")
    lo = min(min(p[1] for p in c["curve"]) for c in cells if c["curve"])
    ax.set_ylim(lo - 0.05, min(3.0, lo + 1.0))
    ax.legend(fontsize=8)
    ax.set_title("Best val_loss against compute: manual sweeps, ASHA+TPE, random search")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(
        __doc__, quick="every run 1%% as long, one seed (with --replay: "
                       f"{replay_cli.QUICK_SEEDS} seeds)",
        json="write the summary here too, its markdown beside it (OUT.md); with --replay, "
             "the replay's summary")
    cli.add_data(p, "the text file or nanoGPT folder to train on; with --replay, the data "
                    "the table was recorded on")
    cli.add_out(p, "search_efficiency", "cells, runs, summary and curves.png")
    p.add_argument("--methods", nargs="+", default=None,
                   help=f"real mode: {', '.join(METHODS)} (default all but "
                        f"default_wrong_prior); --replay: the registered replay methods "
                        f"(default all)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds for the searches (default 0 1 2). With --replay, one number N "
                        f"means seeds 0..N-1 (default {replay_cli.SEEDS}), several are the "
                        f"seeds themselves")
    p.add_argument("--replay", action="store_true",
                   help="replay the searches on recorded curves (benchmarks/replay.py) "
                        "instead of training")
    replay_cli.add_replay_args(p, prefix="--replay: ")
    p.add_argument("--manual-seeds", type=int, nargs="+", default=[0],
                   help="seeds for the manual sweeps (default 0; only the init changes)")
    p.add_argument("--budget-fraction", type=float, default=1.0,
                   help="each search's compute, as a fraction of the manual sweeps' (default 1)")
    p.add_argument("--force", action="store_true", help="rerun cells already saved")
    args = p.parse_args(argv)
    if args.replay:
        return replay_cli.run(args)
    args.seeds = [0, 1, 2] if args.seeds is None else args.seeds
    # the wrong prior is a replay experiment; in real runs only on request
    args.methods = [m for m in METHODS if m != "default_wrong_prior"] \
        if args.methods is None else args.methods
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"--methods: unknown {bad}; choose from {', '.join(METHODS)} "
                f"(more with --replay)")
    scale = 1.0
    if args.quick:
        scale, args.seeds, args.manual_seeds = 0.01, [0], [0]
    if not cli.have_data(args.data):
        return 2
    out = cli.out_folder(args, "search_efficiency")
    if out is None:
        return 2
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", str(out / "cache"))
    (out / "cells").mkdir(parents=True, exist_ok=True)
    plan = manual_plan(scale)
    manual_tokens = sum(tokens_of(r) for r in plan)
    budget = int(manual_tokens * args.budget_fraction)
    print(f"manual sweeps: {len(plan)} runs, {manual_tokens:,} tokens; "
          f"search budget {budget:,} tokens", flush=True)
    todo = [(m, s) for m in args.methods
            for s in (args.manual_seeds if m == "manual" else args.seeds)]
    for method, seed in todo:
        f = out / "cells" / f"{method}-s{seed}.json"
        saved = None if args.force else saved_cell(f, CELL_KEYS)
        if saved is not None and saved["scale"] != scale:
            # a quick cell and a full one share a name: never mix them in one folder
            print(f"error: {f} is a cell at scale {saved['scale']}, not {scale}: pass another "
                  f"--out", file=sys.stderr)
            return 2
        if saved is not None:
            print(f"{method} seed {seed}: saved in {f}, skipped (--force reruns it)")
            continue
        print(f"{method} seed {seed}: running ...", flush=True)
        cell = run_cell(method, seed, budget, scale, plan, args.data, out)
        write_json(f, cell, default=str)
        print(f"{method} seed {seed}: best val_loss {cell['best_val_loss']:.4f} after "
              f"{cell['tokens_spent'] / 1e6:.2f}M tokens, {cell['trials']} trials, "
              f"{cell['wall_s']:.0f} s", flush=True)
    cells = load_cells(sorted((out / "cells").glob("*.json")), CELL_KEYS)
    cells = [c for c in cells if c.get("scale") == scale]
    machine = f"{os.uname().machine}, {os.cpu_count()} CPUs, torch CPU, {os.uname().nodename}"
    summary = summarize(cells, machine)
    md = _markdown(summary)
    written = [*write_summary(out / "summary.json", summary, md, indent=2, default=str)]
    write_figure(_figure(cells, summary["manual_total_tokens"], summary["manual_best"]),
                 out / "curves.png", dpi=110)
    written.append(out / "curves.png")
    if args.json:
        written += write_summary(args.json, summary, md, indent=2, default=str)
    print()
    print(md)
    print(f"written: {', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
