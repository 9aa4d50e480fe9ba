"""Warmup-stable-decay (WSD) against nanoGPT's cosine at equal iterations: which learning-rate
schedule leaves nanoGPT's CPU recipe with the lower validation loss?

    python benchmarks/wsd_vs_cosine.py --data ../shared/data/shakespeare_char/input.txt \
        --iters 2000 --seeds 0 1 2 --out benchmarks/results/wsd_vs_cosine \
        --json benchmarks/results/wsd_vs_cosine/summary.json
    python benchmarks/wsd_vs_cosine.py --quick                 # a smoke run (temporary folder)

One config (tune-gpt's TrainConfig defaults, nanoGPT's CPU recipe: 4x128, block 64, batch
12, lr 1e-3 to min_lr 1e-4, warmup 100) trained for --iters iterations with
lr_schedule = cosine and with lr_schedule = wsd (cooldown_frac 0.2, 1-sqrt cool-down,
Hägele et al. 2024), on the same seeds: a seed sets the init and the batches, so the two
runs of a seed differ only by their schedule and are compared as a pair. Each (schedule,
seed) is a cell (OUT/cells/SCHEDULE-seed-S.json, written atomically): an interrupted run
resumes where it stopped. One run at a time, one thread each.

The figure is the final model's loss on the WHOLE validation split (tune-gpt eval's
whole_split_loss: no batch-sampling noise, so the pair's difference is the schedules' and
the seed's alone). The summary gives each pair's difference (wsd - cosine), their mean, its
standard error over seeds and a two-sided 95% Student's t interval (tune_gpt.judge).

WSD only: the run is also cooled down "as a finished run would be" at a quarter and at half
its length: the state where a WSD run of that length (same warmup) would start its cool-down
is saved and cooled down over that run's last 20%; the stable phase does not depend on the
length, so this is that shorter run, step for step, for a fraction of its cost. Beside it,
both long runs' losses at that point, read mid-schedule (what ASHA compares at a rung).

Not a test: it prints figures.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common.cli import (add_data, add_out, benchmark_parser,  # noqa: E402
                                   have_data, out_folder)
from benchmarks.common.output import saved_cell, write_json, write_summary  # noqa: E402

SCHEDULES = ("cosine", "wsd")
BRANCHES = (4, 2)       # WSD cooled down at iters / 4 and iters / 2 as finished runs
EVALS_PER_RUN = 20      # eval_interval = iters / 20: every branch point is an evaluation
CELL_KEYS = ("schedule", "seed", "iters", "final_val_loss", "setup")


def recipe(data: str, schedule: str, seed: int, iters: int, eval_iters: int,
           out_dir: str, learning_rate: float | None = None) -> Any:
    """The TrainConfig of one run: tune-gpt's defaults (nanoGPT's CPU recipe), the decay over
    the whole run, the schedule and seed under test; another peak learning rate brings
    min_lr = learning_rate / 10 with it, as a search derives it."""
    from tune_gpt.config import TrainConfig

    lr = {} if learning_rate is None else {"learning_rate": learning_rate,
                                           "min_lr": learning_rate / 10}
    return TrainConfig(dataset=data, device="cpu", seed=seed, max_iters=iters,
                       lr_decay_iters=iters, warmup_iters=min(100, iters // 10),
                       eval_interval=max(1, iters // EVALS_PER_RUN), eval_iters=eval_iters,
                       lr_schedule=schedule, out_dir=out_dir, **lr)


def branch_points(cfg: Any) -> dict[int, int]:
    """WSD: {length L of a shorter run: the iteration its cool-down starts}, for the lengths
    whose start is an evaluation of the long run (its state is saved there) after warmup."""
    from tune_gpt.schedule import cooldown_start

    out = {}
    for div in BRANCHES:
        length = cfg.max_iters // div
        start = cooldown_start(dataclasses.replace(cfg, max_iters=length, lr_decay_iters=length))
        if cfg.warmup_iters <= start < length and start % cfg.eval_interval == 0:
            out[length] = start
    return out


def setup_of(cfg: Any) -> dict[str, Any]:
    """What a saved cell must match to be reused."""
    return {k: getattr(cfg, k) for k in (
        "n_layer", "n_head", "n_embd", "block_size", "batch_size", "learning_rate", "min_lr",
        "warmup_iters", "lr_decay_iters", "cooldown_frac", "eval_interval", "eval_iters")}


def run_cell(prepared: Any, data: str, schedule: str, seed: int, iters: int,
             eval_iters: int, learning_rate: float | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wsd-vs-cosine-") as tmp:
        return _run(prepared, data, schedule, seed, iters, eval_iters, learning_rate,
                    Path(tmp))


def _run(prepared: Any, data: str, schedule: str, seed: int, iters: int, eval_iters: int,
         learning_rate: float | None, tmp: Path) -> dict[str, Any]:
    from tune_gpt.evaluate import whole_split_loss
    from tune_gpt.train import train

    cfg = recipe(data, schedule, seed, iters, eval_iters, str(tmp / "out"), learning_rate)
    points = branch_points(recipe(data, "wsd", seed, iters, eval_iters, str(tmp),
                                  learning_rate))
    starts = set(points.values()) if schedule == "wsd" else set()
    whole: dict[int, float] = {}   # iteration -> the model's loss on the whole val split
    curve: list[list[float]] = []

    def score(model: Any) -> float:
        loss = whole_split_loss(model, prepared.val_path, cfg.block_size, "cpu")[0]
        model.train()  # whole_split_loss leaves the model in eval mode; training goes on
        return round(loss, 5)

    def on_eval(rec: Any, ckpt: Any) -> bool:
        curve.append([rec.iter, round(rec.val_loss, 5), round(rec.train_loss, 5),
                      float(f"{rec.lr:.6g}")])
        if rec.iter in points or rec.iter == iters:
            whole[rec.iter] = score(ckpt.model)
        if rec.iter in starts:  # where a shorter WSD run would start its cool-down
            ckpt.save(tmp / f"stable-{rec.iter}.pt")
        return False

    load0, t0 = os.getloadavg()[0], time.time()
    result = train(cfg, on_eval=on_eval, threads=1, data=prepared)
    cell: dict[str, Any] = {
        "schedule": schedule, "seed": seed, "iters": iters, "setup": setup_of(cfg),
        "final_val_loss": whole.get(iters, math.nan),
        "final_val_loss_estimate": round(result.final.val_loss, 5) if result.final else math.nan,
        "mid_val_loss": {str(length): whole.get(length, math.nan) for length in points},
        "wall_s": round(time.time() - t0, 1), "curve": curve}
    if schedule == "wsd":
        cell["finished_at"] = {}
        for length, start in points.items():
            short = dataclasses.replace(cfg, max_iters=length, lr_decay_iters=length)
            ends: dict[str, float] = {}

            def at_end(rec: Any, ckpt: Any, length: int = length,
                       ends: dict[str, float] = ends) -> bool:
                if rec.iter == length:
                    ends["loss"] = score(ckpt.model)
                return False

            train(short, on_eval=at_end, resume=tmp / f"stable-{start}.pt", threads=1,
                  data=prepared)
            cell["finished_at"][str(length)] = {"cooldown_from": start,
                                                "val_loss": ends.get("loss", math.nan)}
        cell["wall_s"] = round(time.time() - t0, 1)
    cell["loadavg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return cell


# ----------------------------------------------------------------------------- summary

def paired(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """wsd - cosine per seed (final whole-split val_loss), their mean, its standard error and
    a two-sided 95% t interval over the seeds both schedules finished."""
    from tune_gpt.judge import t_quantile

    by = {(c["schedule"], c["seed"]): c["final_val_loss"] for c in cells}
    seeds = sorted(s for (sch, s) in by if sch == "cosine" and ("wsd", s) in by
                   and math.isfinite(by["cosine", s]) and math.isfinite(by["wsd", s]))
    diffs = [by["wsd", s] - by["cosine", s] for s in seeds]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    se = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
    half = t_quantile(n - 1) * se if n > 1 else math.nan
    lo, hi = mean - half, mean + half
    if not math.isfinite(half):
        verdict = "too few pairs to judge"
    elif hi < 0:
        verdict = "wsd lower, beyond chance (the 95% t interval excludes 0)"
    elif lo > 0:
        verdict = "cosine lower, beyond chance (the 95% t interval excludes 0)"
    else:
        verdict = "no difference beyond chance (the 95% t interval includes 0)"
    return {"seeds": seeds, "diffs": [round(d, 5) for d in diffs], "mean": mean, "se": se,
            "dof": max(n - 1, 0), "t": t_quantile(n - 1) if n > 1 else math.nan,
            "ci95": [lo, hi], "beyond_one_se": bool(math.isfinite(se) and abs(mean) > se),
            "verdict": verdict}


def summarize(cells: list[dict[str, Any]], data: str) -> dict[str, Any]:
    out: dict[str, Any] = {"data": data, "paired": paired(cells), "runs": [
        {k: c.get(k) for k in ("schedule", "seed", "final_val_loss", "final_val_loss_estimate",
                               "wall_s", "loadavg_1min")} for c in cells]}
    for sch in SCHEDULES:
        v = [c["final_val_loss"] for c in cells
             if c["schedule"] == sch and math.isfinite(c["final_val_loss"])]
        out[sch] = {"mean": statistics.fmean(v) if v else math.nan,
                    "sd": statistics.stdev(v) if len(v) > 1 else math.nan, "n": len(v)}
    # at a quarter and half of the run: WSD cooled down (a finished shorter run) vs both long
    # runs read there mid-schedule, means over seeds
    points: dict[str, dict[str, list[float]]] = {}
    for c in cells:
        for length, loss in c.get("mid_val_loss", {}).items():
            points.setdefault(length, {}).setdefault(f"{c['schedule']}_mid", []).append(loss)
        for length, f in c.get("finished_at", {}).items():
            points.setdefault(length, {}).setdefault("wsd_finished", []).append(f["val_loss"])
    out["intermediate"] = {
        length: {k: statistics.fmean(v) for k, v in cols.items()
                 if v and all(math.isfinite(x) for x in v)}
        for length, cols in sorted(points.items(), key=lambda kv: int(kv[0]))}
    if cells:
        out["iters"], out["setup"] = cells[0]["iters"], cells[0]["setup"]
    return out


def markdown(s: dict[str, Any]) -> str:
    by = {(r["schedule"], r["seed"]): r for r in s["runs"]}
    p = s["paired"]
    rows = [f"| {seed} | {by['cosine', seed]['final_val_loss']:.4f} | "
            f"{by['wsd', seed]['final_val_loss']:.4f} | {d:+.4f} |"
            for seed, d in zip(p["seeds"], p["diffs"])]
    mid = [f"| {length} | {v.get('cosine_mid', math.nan):.4f} | {v.get('wsd_mid', math.nan):.4f}"
           f" | {v.get('wsd_finished', math.nan):.4f} |"
           for length, v in s.get("intermediate", {}).items()]
    lo, hi = p["ci95"]
    return "\n".join([
        f"# WSD vs cosine on {s['data']}, {s.get('iters', '?')} iterations, learning_rate "
        f"{s.get('setup', {}).get('learning_rate', '?')}", "",
        "Final val_loss on the whole validation split (no sampling noise).", "",
        "| seed | cosine | wsd | wsd - cosine |", "|---|---|---|---|", *rows, "",
        (f"wsd - cosine: mean {p['mean']:+.4f}, standard error {p['se']:.4f} over "
         f"{len(p['seeds'])} paired seeds; 95% t interval [{lo:+.4f}, {hi:+.4f}] "
         f"(t = {p['t']:.2f}, {p['dof']} dof): {p['verdict']}."), "",
        ("At shorter lengths (means over seeds): both long runs read mid-schedule, and WSD "
         "cooled down there as a finished run of that length."), "",
        "| iterations | cosine, mid-schedule | wsd, mid-plateau | wsd, cooled down |",
        "|---|---|---|---|", *mid, ""])


def main(argv: list[str] | None = None) -> int:
    p = benchmark_parser(__doc__, "2 seeds x 60 iterations, eval_iters 4")
    add_data(p)
    add_out(p, "wsd_vs_cosine", "(schedule, seed) cells")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="the seed numbers to run (each a pair of cells)")
    p.add_argument("--iters", type=int, default=2000,
                   help="iterations per run (nanoGPT's CPU recipe: 2000)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="peak learning rate of both schedules, min_lr a tenth of it (default: "
                        "TrainConfig's, 1e-3 to 1e-4); another lr wants its own --out")
    p.add_argument("--eval-iters", type=int, default=20,
                   help="batches per in-run loss estimate (the curve); the figures are on the "
                        "whole validation split")
    args = p.parse_args(argv)
    if not have_data(args.data):
        return 2
    out = out_folder(args, "wsd_vs_cosine")
    if out is None:
        return 2
    seeds, iters, eval_iters = (args.seeds[:2], 60, 4) if args.quick else \
        (args.seeds, args.iters, args.eval_iters)
    if iters < EVALS_PER_RUN:
        print(f"error: --iters must be at least {EVALS_PER_RUN}", file=sys.stderr)
        return 2
    from tune_gpt.data import prepare

    prepared = prepare(args.data)
    cells = []
    for seed in seeds:
        for sch in SCHEDULES:
            path = out / "cells" / f"{sch}-seed-{seed}.json"
            want = setup_of(recipe(args.data, sch, seed, iters, eval_iters, "",
                                   args.learning_rate))
            cell = saved_cell(path, CELL_KEYS)
            if cell is None or cell["iters"] != iters or cell["setup"] != want:
                cell = run_cell(prepared, args.data, sch, seed, iters, eval_iters,
                                args.learning_rate)
                write_json(path, cell)
            print(f"{sch} seed {seed}: final val_loss {cell['final_val_loss']:.4f} "
                  f"(whole split; {cell['wall_s']:.0f} s)", flush=True)
            cells.append(cell)
    summary = summarize(cells, args.data)
    pr = summary["paired"]
    print(f"wsd - cosine: {pr['mean']:+.4f} +- {pr['se']:.4f} (se over {len(pr['seeds'])} "
          f"seeds): {pr['verdict']}")
    if args.json:
        write_summary(args.json, summary, markdown(summary), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
