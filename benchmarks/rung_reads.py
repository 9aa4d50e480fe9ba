"""Do a search's rungs rank configs the way their finished runs rank them? Cosine trials read
mid-schedule (as searches run today) against WSD trials read after a cool-down branch
(`scheduler.rung_cooldown`, tune_gpt/rung_read.py), on the configs of a recorded table.

    python benchmarks/rung_reads.py --data PATH --table benchmarks/results/replay_licenses \\
        --out benchmarks/results/rung_reads/licenses \\
        --json benchmarks/results/rung_reads/licenses/summary.json
    python benchmarks/rung_reads.py --quick        # 3 tiny configs, a temporary folder

The cosine side is the table `record_curves.py --grid quick` recorded on the same data: every
grid config trained with cosine decay over its whole (shortened) trial. This script trains
each of those configs again with WSD (cool-down over the last cooldown_frac 0.2, the same
lr, min_lr, warmup, evaluations and seed) and reads it at ASHA's rungs of the real search
(250k and 750k of a 2M-token trial, times the table's factor) after a cool-down branch of
--frac (default 0.1) of its steps. Per rung it reports, over the configs:

- the rank correlation (Spearman) between the rung's loss and the finished run's, for cosine
  read mid-schedule, for WSD read after the branch, and for WSD read on its plateau;
- ASHA's question: is the config that finishes best among the third each rung keeps, and
  what the config best at the rung finishes at, against the best finish (its regret);
- and, over the finished runs: WSD - cosine per config (mean, paired se), and the best
  finish of each (what a search of the grid could hand back).

A diverged run (no finite loss) ranks last at every rung and at the end. Each config is a
cell, OUT/cells/KEY.json, written atomically and skipped when the script runs again.
Not a test: it prints figures.
"""

from __future__ import annotations

import json
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

from benchmarks.common import cli, efficiency  # noqa: E402
from benchmarks.common.output import load_cells, saved_cell, write_json, write_summary  # noqa: E402
from benchmarks.common.replay import recording  # noqa: E402

# ASHA's rungs of the real search, in a full-length trial's tokens (grace 250k, factor 3)
RUNGS = [efficiency.GRACE_PERIOD * efficiency.REDUCTION_FACTOR ** k for k in range(2)]
COOLDOWN_FRAC = 0.2
CELL_KEYS = ("key", "config", "points", "cosine_points", "rung_iters", "read_tokens")


def wsd_config(knobs: dict[str, Any]) -> dict[str, Any]:
    """The table's config with its cosine decay swapped for WSD, everything else kept."""
    return {**knobs, "lr_schedule": "wsd", "cooldown_frac": COOLDOWN_FRAC}


def run_one(line: dict[str, Any], path: str, factor: float, frac: float) -> dict[str, Any]:
    """Train one config under WSD with rung reads (one thread); its cell."""
    from tune_gpt.config import from_mapping
    from tune_gpt.data import prepare
    from tune_gpt.rung_read import RungReads
    from tune_gpt.train import train

    data = prepare(path)

    knobs = wsd_config(line["config"])
    out_dir = tempfile.TemporaryDirectory(prefix="rung-reads-")  # removed when the run ends
    cfg = from_mapping({**knobs, "dataset": str(data.dir), "device": "cpu",
                        "out_dir": out_dir.name})
    reads = RungReads.for_trial(cfg, [r * factor for r in RUNGS], frac)
    points: list[list[Any]] = []

    def on_eval(rec: Any, _ckpt: Any) -> bool:
        points.append([rec.tokens, round(rec.val_loss, 5), round(rec.train_loss, 5),
                       None if rec.stable_val_loss is None else round(rec.stable_val_loss, 5),
                       rec.read_after])
        return False

    t0 = time.time()
    with out_dir:
        result = train(cfg, on_eval=on_eval, threads=1, data=data, reads=reads)
    return {"key": line["key"], "config": knobs, "points": points,
            "cosine_points": line["points"], "diverged": result.diverged,
            "rung_iters": sorted(reads.iters) if reads else [],
            "read_tokens": result.records[-1].read_tokens if result.records else 0,
            "tokens": result.tokens, "wall_s": round(time.time() - t0, 1)}


def _work(args: tuple[Any, ...]) -> dict[str, Any]:
    return run_one(*args)


def spearman(a: list[float], b: list[float]) -> float | None:
    """tune_gpt.report.stats.spearman (ties share their mean rank); None where undefined."""
    import pandas as pd

    from tune_gpt.report.stats import spearman as rho

    r, _ = rho(pd.Series(a), pd.Series(b))
    return None if math.isnan(r) else r


def _loss(v: Any, penalty: float) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else penalty


def _at(points: list[list[Any]], tokens: float, col: int, penalty: float) -> float:
    """The loss in column `col` of the first evaluation at or past `tokens` (ASHA's rule;
    col 3, the plateau's, falls back to col 1 where the evaluation was no read)."""
    for p in points:
        if p[0] >= tokens:
            return _loss(p[col] if p[col] is not None else p[1], penalty)
    return penalty  # the run ended (diverged) before the rung


def rung_view(fin: list[float], at_rung: list[float], keep: float) -> dict[str, Any]:
    """How well losses at a rung predict the finished runs: Spearman, whether the best finish
    is among the third kept, and the regret of the rung's best."""
    n_keep = max(1, math.floor(len(fin) / keep))
    kept = sorted(range(len(fin)), key=lambda i: at_rung[i])[:n_keep]
    best = min(range(len(fin)), key=lambda i: fin[i])
    return {"spearman": spearman(at_rung, fin), "best_finish_kept": best in kept,
            "regret_of_rung_best": fin[kept[0]] - fin[best]}


def summarize(cells: list[dict[str, Any]], factor: float, penalty: float, frac: float,
              table: str, data: str) -> dict[str, Any]:
    cells = sorted(cells, key=lambda c: c["key"])
    cos_fin = [_loss(c["cosine_points"][-1][1] if c["cosine_points"] else None, penalty)
               for c in cells]
    wsd_fin = [_loss(c["points"][-1][1] if c["points"] else None, penalty) for c in cells]
    rungs = {}
    for r in RUNGS:
        t = r * factor
        keep = efficiency.REDUCTION_FACTOR
        rungs[str(int(r))] = {
            "tokens": t,
            "cosine_mid_schedule": rung_view(
                cos_fin, [_at(c["cosine_points"], t, 1, penalty) for c in cells], keep),
            "wsd_read": rung_view(wsd_fin, [_at(c["points"], t, 1, penalty) for c in cells],
                                  keep),
            "wsd_plateau": rung_view(wsd_fin, [_at(c["points"], t, 3, penalty)
                                               for c in cells], keep)}
    both = [(w, c) for w, c in zip(wsd_fin, cos_fin) if w < penalty and c < penalty]
    diffs = [w - c for w, c in both]
    stable = sum(c["tokens"] for c in cells)
    return {
        "data": data, "table": table, "factor": factor, "frac": frac,
        "cooldown_frac": COOLDOWN_FRAC, "configs": len(cells), "rungs_full_length": RUNGS,
        "rungs": rungs,
        "finish": {
            "wsd_minus_cosine_mean": statistics.fmean(diffs) if diffs else None,
            "wsd_minus_cosine_se": statistics.stdev(diffs) / math.sqrt(len(diffs))
            if len(diffs) > 1 else None,
            "wsd_better": sum(d < 0 for d in diffs), "paired": len(diffs),
            "best_cosine": min(cos_fin) if cells else None,
            "best_wsd": min(wsd_fin) if cells else None},
        "read_cost": sum(c["read_tokens"] for c in cells) / stable if stable else None,
        "cells": [{"key": c["key"], "cosine_final": f, "wsd_final": w}
                  for c, f, w in zip(cells, cos_fin, wsd_fin)]}


def markdown(s: dict[str, Any]) -> str:
    def f(v: Any, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    out = ["# Rung reads: cosine mid-schedule against WSD after a cool-down branch\n",
           f"{s['configs']} configs of `{s['table']}` (factor {s['factor']:g}) on "
           f"{s['data']}; WSD cool-down {s['cooldown_frac']:g}, read branches {s['frac']:g} "
           f"of the steps so far (they cost {f(s['read_cost'], '.1%')} of the trials' "
           f"tokens).\n",
           "| rung (full length) | read | Spearman with the finish | best finish kept "
           "| regret of the rung's best |", "|---|---|---|---|---|"]
    for r, v in s["rungs"].items():
        for name in ("cosine_mid_schedule", "wsd_read", "wsd_plateau"):
            x = v[name]
            out.append(f"| {int(r):,} | {name.replace('_', ' ')} | {f(x['spearman'])} | "
                       f"{'yes' if x['best_finish_kept'] else 'no'} | "
                       f"{f(x['regret_of_rung_best'], '+.3f')} |")
    fin = s["finish"]
    out.append(f"\nFinished runs: WSD - cosine {f(fin['wsd_minus_cosine_mean'], '+.4f')} +- "
               f"{f(fin['wsd_minus_cosine_se'], '.4f')} (paired se over {fin['paired']} "
               f"configs; WSD lower on {fin['wsd_better']}); best finish: cosine "
               f"{f(fin['best_cosine'], '.4f')}, WSD {f(fin['best_wsd'], '.4f')}.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="3 configs of a tiny table recorded first "
                                            "(a few minutes)")
    cli.add_data(p, "the text file or nanoGPT folder the table was recorded on")
    cli.add_out(p, "rung_reads")
    p.add_argument("--table", help="a folder record_curves.py --out wrote (cosine runs)")
    p.add_argument("--frac", type=float, default=0.1,
                   help="a read's cool-down branch, as a share of the steps so far")
    p.add_argument("--limit", type=int, default=None, help="train at most this many configs")
    p.add_argument("--workers", type=int, default=1,
                   help="configs trained at once, 1 thread each (0: in this process)")
    args = p.parse_args(argv)
    if not cli.have_data(args.data) or (out := cli.out_folder(args, "rung_reads")) is None:
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    table = Path(args.table) if args.table else None
    if args.quick and table is None:  # the 9 manual runs and 4 grid configs, 100x shorter
        import subprocess
        table = out / "table"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "record_curves.py"),
                        "--quick", "--data", args.data, "--out", str(table), "--workers", "0",
                        "--limit", "13"], check=True)
    meta = recording.read_meta(table) if table else None
    if meta is None:
        print(f"error: no table.json in {table}; pass --table, a folder record_curves.py "
              f"--out wrote", file=sys.stderr)
        return 2
    if wrong := recording.data_mismatch(meta, recording.data_identity(args.data)):
        print(f"error: the table was {wrong}; pass its --data", file=sys.stderr)
        return 2
    from tune_gpt.data import prepare

    data = prepare(args.data)  # tokenised once, before the workers read the cache
    penalty = math.log(max(data.vocab_size, 2)) + 1.0  # as a search ranks a run without loss
    lines = [json.loads(x) for x in (table / recording.CURVES).read_text().splitlines()
             if x.strip()]
    grid = [x for x in lines if x["kind"] == "grid"][:3 if args.quick else None]
    cells_dir = out / "cells"

    def cell_path(key: str) -> Path:
        return cells_dir / (key.replace(":", "_") + ".json")

    todo = [x for x in grid if saved_cell(cell_path(x["key"]), CELL_KEYS) is None]
    todo = todo[:args.limit] if args.limit is not None else todo
    import contextlib
    import multiprocessing as mp

    with contextlib.ExitStack() as stack:
        work = [(x, args.data, meta["factor"], args.frac) for x in todo]
        if args.workers > 0:
            pool = stack.enter_context(mp.get_context("spawn").Pool(args.workers))
            results = pool.imap_unordered(_work, work)
        else:
            results = map(_work, work)
        for cell in results:  # each written as it finishes: an interrupted run resumes
            write_json(cell_path(cell["key"]), cell, indent=1)
            print(f"{cell['key']}: wsd {cell['points'][-1][1] if cell['points'] else 'nan'}, "
                  f"cosine {cell['cosine_points'][-1][1]}, {cell['wall_s']:.0f} s", flush=True)
    cells = load_cells(sorted(cells_dir.glob("*.json")), CELL_KEYS)
    s = summarize(cells, meta["factor"], penalty, args.frac, str(table), args.data)
    md = markdown(s)
    written = write_summary(out / "summary.json", s, md, indent=1)
    if args.json:
        written += write_summary(args.json, s, md, indent=1)
    print(f"{md}\n{len(cells)} of {len(grid)} configs; written: "
          f"{', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
