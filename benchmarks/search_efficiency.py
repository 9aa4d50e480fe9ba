"""Benchmark: the guide's manual sweeps against ASHA+TPE and random search, at equal compute.

    python benchmarks/search_efficiency.py                      # the whole matrix (~70 min)
    python benchmarks/search_efficiency.py --methods asha_tpe --seeds 1   # one cell (~9 min)
    python benchmarks/search_efficiency.py --quick              # ~1.5 minute smoke run
    python benchmarks/search_efficiency.py --replay --seeds 30 --json OUT.json
                                    # replayed on recorded curves, many seeds (benchmarks/replay.py)

Methods (each a real tune-gpt search: local Ray, Optuna, MLflow):
  manual    the guide's three experiments (实验建议) with their CPU sizing, one after the
            other: batch_size 16/32/64 and learning_rate 1e-4/1e-3/1e-2 on nanoGPT's CPU
            recipe (4x128, block 64) for 1,000 iterations; (n_layer, n_embd) 2x64 / 4x128 /
            6x192 for 2,000 iterations. Nine runs, 14.08M training tokens in all.
  asha_tpe  Optuna's TPE, ASHA early stopping on tokens, no priors. (In a real run it gets
            tune-gpt's searcher, which tells TPE that stopped trials were PRUNED; the
            replay's asha_tpe is Ray's plain OptunaSearch, which says COMPLETE: the state
            before issue 12. The committed real results of 2026-11-28 are that state too.)
  random    Optuna's random sampler, every trial trained to its end (no early stopping).
  default   tune-gpt's default: asha_tpe with the priors of nanoGPT's CPU recipe (4 x 128,
            lr 1e-3, batch 12): that recipe first, the start-up trials near it.
  default_wrong_prior   the same with a deliberately wrong prior (2 x 64, lr 1e-4,
            batch 64); replay only unless asked for with --methods.

The searches tune the same knobs over the same ranges the manual sweeps cover (batch_size,
learning_rate, n_layer, n_embd) and stop when their trials together have trained as many
tokens as the manual sweeps (`budget.total_tokens`); --budget-fraction changes that.

Compute = training tokens (iterations x tokens per iteration), counted over all trials.
For each run, the curve is the best val_loss reached so far against the compute spent so
far. The manual sweeps are counted in the guide's order, one run after another; a search's
trials run two at a time, so its compute at an evaluation is every trial's tokens trained
by that moment (each trial's token count interpolated between its reports).

Every finished cell (method, seed) is saved in OUT/cells/ and skipped when the script runs
again, so the matrix can be run in parts (each part fits in ~15 minutes on 2 cores) and an
interrupted run loses at most the cell in progress. OUT/summary.{json,md} and
OUT/curves.png are rebuilt from all the cells present. The searches stay in OUT/runs
(`tune-gpt ui --storage-path OUT/runs` shows them in MLflow).

Not a test: it prints figures, and the machine's noise is in them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXPERIMENTS = ("experiment_batch_size", "experiment_learning_rate", "experiment_model_size")
METHODS = ("manual", "asha_tpe", "random", "default", "default_wrong_prior")
REFERENCE_MANUAL_BEST = 1.772  # the reference implementation, same sizing (issue 8)
TARGET_FRACTION = 1 / 3
# The knobs the manual sweeps keep fixed (nanoGPT's CPU recipe), shared by the searches.
BASE = {"block_size": 64, "n_head": 4, "dropout": 0.0, "warmup_iters": 100, "beta2": 0.99,
        "eval_iters": 20, "log_interval": 1000, "dtype": "float32", "compile": False}
# Same knobs and ranges as the manual sweeps cover between them.
SEARCH_PARAMS = {
    "batch_size": {"choice": [12, 16, 32, 64]},
    "learning_rate": {"loguniform": [1.0e-4, 1.0e-2]},
    "n_layer": {"int": [2, 6]},
    "n_embd": {"int": [64, 192], "step": 64},
}


def manual_plan(scale: float = 1.0) -> list[dict[str, Any]]:
    """The nine runs of the guide's experiments (CPU profile), in the guide's order, each a
    full training config; `scale` shortens every run (for --quick)."""
    from tune_gpt.space import label, resolve
    from tune_gpt.space import load_space

    runs = []
    for exp in EXPERIMENTS:
        space = load_space(ROOT / "search_spaces" / f"{exp}.yaml", profile="cpu")
        (name, dist), = space.params.items()
        for value in dist.candidates():
            knobs = resolve(space, {name: label(value)})
            if scale != 1.0:
                for k in ("max_iters", "lr_decay_iters", "eval_interval"):
                    knobs[k] = max(10, int(knobs[k] * scale))
                knobs["warmup_iters"] = min(knobs["warmup_iters"], knobs["max_iters"] // 10)
                knobs["eval_iters"] = 2
            runs.append({k: v for k, v in knobs.items()
                         if k not in ("dataset", "out_dir", "seed", "device")}
                        | {"experiment": exp.removeprefix("experiment_")})
    return runs


def tokens_of(cfg: dict[str, Any]) -> int:
    return (cfg["batch_size"] * cfg["block_size"] * cfg.get("gradient_accumulation_steps", 1)
            * cfg["max_iters"])


# The new default's priors, as beginner.yaml's CPU profile has them: the guide's table
# (初学者推荐值) brought into the CPU ranges: learning_rate 1e-3 (small models), n_layer 4
# (4-6), n_embd 192 (the guide's 256-384, clamped to the widest the CPU range holds), and
# nanoGPT's CPU recipe for the batch (12; the guide's 32-64 are GPU batches of 256-token
# blocks). And a deliberately wrong prior (the worst corner the manual sweeps saw: the
# smallest model at lr 1e-4, the largest batch), to show what a bad prior costs.
PRIORS = {"batch_size": 12, "learning_rate": 1.0e-3, "n_layer": 4, "n_embd": 192}
WRONG_PRIORS = {"batch_size": 64, "learning_rate": 1.0e-4, "n_layer": 2, "n_embd": 64}


def with_priors(params: dict[str, Any], priors: dict[str, Any],
                confidence: str = "medium") -> dict[str, Any]:
    return {k: {**d, "prior": priors[k], "confidence": confidence} if k in priors else d
            for k, d in params.items()}


def space_for(method: str, seed: int, budget: int, scale: float,
              plan: list[dict[str, Any]]) -> dict[str, Any]:
    if method == "manual":
        runs = [{k: v for k, v in r.items() if k != "experiment"} for r in plan]
        return {"name": f"eff-manual-s{seed}",
                "description": "the guide's three manual experiments (CPU sizing)",
                "params": {"run": {"choice": runs}},
                "sampler": {"type": "grid", "seed": seed}, "scheduler": {"type": "none"},
                "budget": {"num_samples": len(runs), "max_concurrent_trials": 2},
                "resources": {"cpu": 1, "gpu": 0}}
    per_trial = max(16_000, int(2_000_000 * scale))
    per_eval = max(4096, per_trial // 8)  # at least one iteration of batch 64 x block 64
    space = {"name": f"eff-{method.replace('_', '-')}-s{seed}",
             "description": f"{method} over the manual sweeps' knobs and ranges",
             "params": SEARCH_PARAMS,
             "fixed": {**BASE, "warmup_iters": max(2, int(BASE["warmup_iters"] * scale)),
                       "eval_iters": BASE["eval_iters"] if scale == 1.0 else 2},
             "budget": {"num_samples": 200, "max_concurrent_trials": 2,
                        "tokens_per_trial": per_trial, "tokens_per_eval": per_eval,
                        "total_tokens": budget},
             "resources": {"cpu": 1, "gpu": 0}}
    if method in ("asha_tpe", "default", "default_wrong_prior"):
        space["sampler"] = {"type": "tpe", "seed": seed, "n_startup_trials": 5}
        space["scheduler"] = {"type": "asha", "time_attr": "tokens",
                              "grace_period": per_eval, "reduction_factor": 3}
    if method in ("default", "default_wrong_prior"):
        # tune-gpt's default search: TPE told PRUNED for stopped trials (always, in every
        # search), started from priors (the recipe first, start-up trials near it)
        space["params"] = with_priors(SEARCH_PARAMS, PRIORS if method == "default"
                                      else WRONG_PRIORS)
    if method == "random":
        space["sampler"] = {"type": "random", "seed": seed}
        space["scheduler"] = {"type": "none"}
    return space


def _progress(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every trial's reports (Ray's progress.csv), keyed by trial id."""
    import pandas as pd

    out: dict[str, list[dict[str, Any]]] = {}
    for f in sorted((folder / "tune").glob("*/progress.csv")):
        df = pd.read_csv(f)
        if len(df):
            rows = df.to_dict("records")
            rows[0]["_config"] = json.loads((f.parent / "params.json").read_text())
            out[str(df["trial_id"].iloc[0])] = rows
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def manual_curve(trials: dict[str, list[dict[str, Any]]], plan: list[dict[str, Any]]
                 ) -> tuple[list[list[float]], float]:
    """Runs one after another in the guide's order: compute = tokens of the runs before +
    this run's tokens at the evaluation."""
    keys = ("batch_size", "learning_rate", "n_layer", "n_embd", "max_iters")
    points, spent, best = [], 0.0, math.inf
    for run in plan:
        rows = next((r for r in trials.values() if _matches(r, run, keys)), [])
        for r in rows:
            if _finite(r.get("val_loss")) and r.get("outcome") in ("running", "completed"):
                best = min(best, float(r["val_loss"]))
                points.append([spent + float(r["tokens"]), best])
        spent += float(rows[-1]["tokens"]) if rows else 0.0
    return points, spent


def _matches(rows: list[dict[str, Any]], run: dict[str, Any], keys: tuple[str, ...]) -> bool:
    cfg = rows[0].get("_config") or {}
    return all(cfg.get(k) == run[k] for k in keys)


def search_curve(trials: dict[str, list[dict[str, Any]]]) -> tuple[list[list[float]], float]:
    """Trials ran side by side: compute at an evaluation = all trials' tokens by then."""
    import numpy as np

    timelines = []
    for rows in trials.values():
        # timestamp is whole seconds; time_total_s is precise within the trial
        t0 = float(np.median([r["timestamp"] - r["time_total_s"] for r in rows]))
        ts = [t0] + [t0 + r["time_total_s"] for r in rows]
        toks = [0.0] + [float(r.get("tokens") or 0) for r in rows]
        timelines.append((np.array(ts), np.maximum.accumulate(np.array(toks))))

    def spent_at(t: float) -> float:
        return float(sum(np.interp(t, ts, toks, left=0.0) for ts, toks in timelines))

    events = []
    for (ts, _), rows in zip(timelines, trials.values()):
        for t, r in zip(ts[1:], rows):
            if _finite(r.get("val_loss")) and r.get("outcome") in ("running", "completed"):
                events.append((t, float(r["val_loss"])))
    points, best = [], math.inf
    for t, v in sorted(events):
        best = min(best, v)
        points.append([spent_at(t), best])
    total = sum(float(toks[-1]) for _, toks in timelines)
    return points, total


def run_cell(method: str, seed: int, budget: int, scale: float, plan: list[dict[str, Any]],
             data: str, out: Path) -> dict[str, Any]:
    from tune_gpt.search import SearchOptions, run_search

    space = space_for(method, seed, budget, scale, plan)
    spaces = out / "spaces"
    spaces.mkdir(parents=True, exist_ok=True)
    path = spaces / f"{space['name']}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
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


def reach(curve: list[list[float]], target: float) -> float:
    """Compute spent when the curve first gets to `target` (inf if it never does)."""
    return next((c for c, b in curve if b <= target + 1e-12), math.inf)


def best_at(curve: list[list[float]], compute: float) -> float:
    got = [b for c, b in curve if c <= compute]
    return got[-1] if got else math.nan


def summarize(cells: list[dict[str, Any]], out: Path, machine: str) -> dict[str, Any]:
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
            "best_at_third_mean": float(np.nanmean(at_third)) if any(map(_finite, at_third))
            else math.nan,
            "best_at_third": at_third,
            "compute_to_manual_best": fracs,
            "reached_within_third": sum(f <= TARGET_FRACTION for f in fracs),
            "compute_to_reference_best": ref,
            "budget_fraction": [c["budget_tokens"] / manual_total for c in mine],
            "trials_mean": float(np.mean([c["trials"] for c in mine])),
            "wall_s_mean": float(np.mean([c["wall_s"] for c in mine])),
            "tokens_spent_mean": float(np.mean([c["tokens_spent"] for c in mine])),
        })
    summary = {"machine": machine, "manual_total_tokens": manual_total,
               "manual_best": target, "reference_manual_best": REFERENCE_MANUAL_BEST,
               "target_fraction": TARGET_FRACTION, "rows": rows,
               "cells": [{k: v for k, v in c.items() if k != "curve"} for c in cells]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    md = _markdown(summary)
    (out / "summary.md").write_text(md)
    _plot(cells, manual_total, target, out / "curves.png")
    return summary


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


def _plot(cells: list[dict[str, Any]], manual_total: float, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/shakespeare_char/input.txt"))
    p.add_argument("--methods", nargs="+", default=None,
                   help=f"real mode: {', '.join(METHODS)} (default all); --replay: the "
                        f"registered replay methods (default all)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds for the searches (default 0 1 2). With --replay, one number N "
                        "means seeds 0..N-1 (default 30), several are the seeds themselves")
    p.add_argument("--replay", action="store_true",
                   help="replay the searches on recorded curves (benchmarks/replay.py) "
                        "instead of training")
    p.add_argument("--table", default=None,
                   help="--replay: the curves table (default results/replay/curves.jsonl)")
    p.add_argument("--json", default=None,
                   help="--replay: write the summary here (and the table as .md beside it)")
    p.add_argument("--clock", choices=("time", "tokens"), default="time",
                   help="--replay: a trial's reports come at its recorded wall times (time) "
                        "or at equal token rates (tokens)")
    p.add_argument("--methods-from", nargs="+", default=[], metavar="MODULE",
                   help="--replay: import these modules first (they call "
                        "replay.register_method)")
    p.add_argument("--partial-manual", action="store_true",
                   help="--replay: run even if the table has fewer manual lines than the "
                        "guide's nine (budget and target would be off)")
    p.add_argument("--manual-seeds", type=int, nargs="+", default=[0],
                   help="seeds for the manual sweeps (default 0; only the init changes)")
    p.add_argument("--budget-fraction", type=float, default=1.0,
                   help="each search's compute, as a fraction of the manual sweeps' (default 1)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_efficiency"))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: every run 1%% as long, one seed, in a separate folder")
    p.add_argument("--force", action="store_true", help="rerun cells already saved")
    args = p.parse_args(argv)
    if args.replay:
        return replay_main(args)
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
        if args.out == p.get_default("out"):
            args.out = str(Path(args.out).with_name("search_efficiency_quick"))
    if not Path(args.data).is_file():
        print(f"error: no data file at {args.data}; pass --data PATH", file=sys.stderr)
        return 2
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", str(Path(args.out) / "cache"))
    out = Path(args.out)
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
        if f.exists() and not args.force:
            print(f"{method} seed {seed}: saved in {f}, skipped (--force reruns it)")
            continue
        print(f"{method} seed {seed}: running ...", flush=True)
        cell = run_cell(method, seed, budget, scale, plan, args.data, out)
        f.write_text(json.dumps(cell, default=str))
        print(f"{method} seed {seed}: best val_loss {cell['best_val_loss']:.4f} after "
              f"{cell['tokens_spent'] / 1e6:.2f}M tokens, {cell['trials']} trials, "
              f"{cell['wall_s']:.0f} s", flush=True)
    cells = [json.loads(f.read_text()) for f in sorted((out / "cells").glob("*.json"))]
    cells = [c for c in cells if c.get("scale") == scale]
    machine = f"{os.uname().machine}, {os.cpu_count()} CPUs, torch CPU, {os.uname().nodename}"
    summary = summarize(cells, out, machine)
    print()
    print(_markdown(summary))
    print(f"written: {out / 'summary.json'}, {out / 'summary.md'}, {out / 'curves.png'}")
    return 0


def replay_main(args: argparse.Namespace) -> int:
    """--replay: every method over many seeds on the recorded curves (benchmarks/replay.py)."""
    from benchmarks import replay

    replay.load_methods_from(args.methods_from)
    methods = list(replay.METHODS) if args.methods is None else args.methods
    seeds = list(range(30)) if args.seeds is None else \
        list(range(args.seeds[0])) if len(args.seeds) == 1 else args.seeds
    if not seeds:
        print("error: --seeds: no seeds (one number N means seeds 0..N-1)", file=sys.stderr)
        return 2
    path = Path(args.table) if args.table else replay.DEFAULT_TABLE
    if not path.is_file():
        print(f"error: no curves table at {path}; record it with benchmarks/record_curves.py",
              file=sys.stderr)
        return 2
    table = replay.Table.load(path)
    print(f"table {path}: {len(table.grid)} of {replay.GRID_SIZE} grid configs, "
          f"{len(table.manual)} manual lines; budget {table.manual_tokens / 1e6:.2f}M tokens, "
          f"target {table.manual_best:.4f}", flush=True)
    if len(table.manual) < replay.EXPECTED_MANUAL_RUNS and not args.partial_manual:
        print(f"error: {len(table.manual)} of the {replay.EXPECTED_MANUAL_RUNS} manual runs "
              f"recorded: budget and target are not the manual sweeps' yet "
              f"(--partial-manual runs anyway)", file=sys.stderr)
        return 2
    try:
        summary = replay.run_replay(methods, seeds, table, clock=args.clock,
                                    budget_fraction=args.budget_fraction,
                                    progress=lambda m: print(m, flush=True))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    md = replay.markdown(summary)
    print()
    print(md)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1))
        out.with_suffix(".md").write_text(md)
        print(f"written: {out}, {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
