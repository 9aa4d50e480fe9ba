"""Record the learning curves the search-efficiency replay runs on, for any data.

    python benchmarks/record_curves.py --out benchmarks/results/replay
                                # the whole table (~2.4 h on 2 cores), resuming the committed one
    python benchmarks/record_curves.py --data PATH --out DIR --grid quick
                                # a table for any text or nanoGPT folder (<30 min)
    python benchmarks/record_curves.py --out DIR --workers 1     # leave a core free
    python benchmarks/record_curves.py --quick        # a tiny smoke run, in a temp folder

Every config of a fixed grid over the CPU space the real benchmark searches (batch_size,
learning_rate on a log grid, n_layer, n_embd; the other knobs are nanoGPT's CPU recipe, as
in `search_efficiency.py`) is trained once for the search's full trial budget (2M tokens,
cosine decay over that budget, exactly as a search trial of that config would train), and
evaluated every 125k tokens. The nine runs of the guide's manual sweeps (CPU sizing) are
recorded too, each as the sweep runs it, so the replay's target (the manual best) comes from
this table. That is `--grid full` (90 configs). `--grid quick` records 40 of them with every
run, the manual sweeps' included, shortened to 0.2 of its length, evaluated 8 times: a table
for a new corpus in under 30 minutes (29 min measured with one worker on a busy 2-core
machine, training 1,735 s of it), whose target is the manual best at that length. The
grids and why: `benchmarks/common/replay/recording.py`.

OUT/table.json, written before anything is trained, says the plan (grid, factor) and the
data (path, sha256, vocabulary), so the replay knows both; a folder holding another plan or
another data's table is refused in one line. Each finished config is added as one JSON line
to OUT/curves.jsonl (the file rewritten whole, atomically), so an interrupted recording
continues where it stopped: configs already in the file are skipped, and a line cut short
(a table from before the atomic writes) is dropped and its config recorded again. Lines hold
the knobs, parameter count, FLOPs per token and, per evaluation, tokens, val_loss,
train_loss and the wall time since the start of the run. The table's summary (per config
its last evaluation) goes to --json when given. OUT is --out DIR; by default the folder
beside --json OUT.json, or a temporary one with --quick.

Not a test: it prints figures; the wall times carry the machine's noise (the replay counts
compute in tokens and FLOPs, which the noise does not touch).
"""

from __future__ import annotations

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

from benchmarks.common import cli, efficiency  # noqa: E402
from benchmarks.common.output import read_jsonl, write_jsonl, write_summary  # noqa: E402
from benchmarks.common.replay import recording  # noqa: E402
from benchmarks.common.replay.recording import PLANS, Plan  # noqa: E402

TOKENS_PER_TRIAL = efficiency.TOKENS_PER_TRIAL   # the real benchmark's budget.tokens_per_trial
# nanoGPT's CPU recipe, as the real benchmark fixes it, with the training defaults spelled
# out (a line's config is then the whole recipe) and no logging to speak of
BASE = {**efficiency.BASE, "log_interval": 100_000, "weight_decay": 0.1, "grad_clip": 1.0,
        "seed": 0}
# What every table line holds (a line without them is recorded again).
LINE_KEYS = ("key", "kind", "config", "tokens", "points")


Item = tuple[str, dict[str, Any], "str | None"]     # (kind, config, manual experiment)


def grid_config(batch_size: int, learning_rate: float, n_layer: int, n_embd: int,
                plan: Plan = PLANS["full"]) -> dict[str, Any]:
    """The knobs a search trial of this config trains with, shortened by the plan's factor:
    max_iters from the token budget, lr decay over all of it to learning_rate/10, warmup
    capped at a tenth of the run, `plan.evals_per_run` evaluations."""
    tokens = round(TOKENS_PER_TRIAL * plan.factor)
    tpi = batch_size * BASE["block_size"]
    max_iters = max(1, math.ceil(tokens / tpi))
    return {**BASE, "batch_size": batch_size, "learning_rate": learning_rate,
            "n_layer": n_layer, "n_embd": n_embd, "max_iters": max_iters,
            "lr_decay_iters": max_iters, "min_lr": learning_rate / 10,
            "warmup_iters": min(round(BASE["warmup_iters"] * plan.factor), max_iters // 10),
            "eval_interval": max(1, math.ceil(tokens // plan.evals_per_run / tpi)),
            "eval_iters": plan.eval_iters}


def manual_config(run: dict[str, Any], plan: Plan = PLANS["full"]) -> dict[str, Any]:
    """A manual sweep's run as the sweep runs it, shortened by the plan's factor (its
    iterations, lr decay, warmup and evaluation interval alike)."""
    cfg = {**BASE, **{k: v for k, v in run.items() if k != "experiment"}}
    if plan.factor == 1.0:
        return cfg
    f = plan.factor
    iters = max(1, round(cfg["max_iters"] * f))
    return {**cfg, "max_iters": iters, "lr_decay_iters": max(1, round(cfg["lr_decay_iters"] * f)),
            "warmup_iters": min(round(cfg["warmup_iters"] * f), iters // 10),
            "eval_interval": max(1, round(cfg["eval_interval"] * f)),
            "eval_iters": plan.eval_iters}


def key_of(kind: str, cfg: dict[str, Any]) -> str:
    return (f"{kind}:b{cfg['batch_size']}:lr{cfg['learning_rate']:.3g}:"
            f"{cfg['n_layer']}x{cfg['n_embd']}:it{cfg['max_iters']}")


def plan_items(plan: Plan = PLANS["full"]) -> list[Item]:
    """(kind, config, experiment) in recording order: the manual runs first (the replay's
    target), then the grid."""
    import itertools

    manual: list[Item] = [("manual", manual_config(run, plan), run["experiment"])
                          for run in efficiency.manual_plan(1.0)]
    # One batch size at a time (each pass a full grid over lr x shape), shuffled within:
    # a partial table is then a complete grid at the batch sizes recorded so far.
    g = plan.grid
    grid: list[Item] = []
    for b in g["batch_size"]:
        layer: list[Item] = [("grid", grid_config(b, *p, plan=plan), None) for p in
                             itertools.product(g["learning_rate"], g["n_layer"], g["n_embd"])]
        random.Random(b).shuffle(layer)
        grid += layer
    return manual + grid


def record_one(item: Item, data: str) -> dict[str, Any]:
    """Train one config to its end and return its table line."""
    from tune_gpt.config import from_mapping
    from tune_gpt.data import prepare
    from tune_gpt.estimate import count_params, flops_per_token
    from tune_gpt.train import train

    kind, knobs, experiment = item
    prepared = prepare(data)
    points: list[list[float]] = []

    def on_eval(rec, _ckpt) -> bool:
        points.append([rec.tokens, round(rec.val_loss, 5), round(rec.train_loss, 5),
                       round(rec.elapsed_s, 2)])
        return False

    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="rec-") as out_dir:  # nothing left behind
        cfg = from_mapping({**knobs, "dataset": data, "device": "cpu", "out_dir": out_dir})
        result = train(cfg, on_eval=on_eval, threads=1, data=prepared)
    n, _ = count_params(cfg.n_layer, cfg.n_embd, cfg.block_size, prepared.vocab_size, cfg.bias)
    fpt = flops_per_token(n, cfg.n_layer, cfg.n_embd, cfg.block_size)
    return {"key": key_of(kind, knobs), "kind": kind, "config": knobs,
            **({"experiment": experiment} if experiment else {}),
            "n_params": result.n_params, "flops_per_token": fpt,
            "tokens": result.tokens, "diverged": result.diverged,
            "wall_s": round(time.time() - t0, 1), "points": points}


def _work(args: tuple[Item, str]) -> dict[str, Any]:
    return record_one(*args)


def recorded(table: Path) -> list[str]:
    """The table's whole lines, to resume from. Lines cut short (or lacking a key every line
    has) are dropped from the file, said in one line, and their configs recorded again."""
    kept, cut = read_jsonl(table, LINE_KEYS)
    if cut:
        print(f"{table}: {cut} line(s) cut short or incomplete: dropped, their configs are "
              f"recorded again", flush=True)
        write_jsonl(table, kept)
    return kept


def summarize(lines: list[dict[str, Any]], table: Path, total: int,
              meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the table holds: per line its last evaluation (pure: main writes it)."""
    rows = []
    for d in lines:
        last = d["points"][-1] if d["points"] else [0, math.nan, math.nan, 0.0]
        rows.append({"key": d["key"], "kind": d["kind"], "tokens": d["tokens"],
                     "diverged": bool(d.get("diverged")), "final_val_loss": last[1],
                     "evaluations": len(d["points"]), "wall_s": d.get("wall_s")})
    return {"table": str(table), "meta": meta, "configs_planned": total,
            "configs_recorded": len(rows),
            "training_s": round(sum(r["wall_s"] or 0.0 for r in rows), 1), "lines": rows}


def markdown(s: dict[str, Any]) -> str:
    m = s.get("meta") or {}
    what = (f" Plan `{m['plan']}` (every run {m['factor']:g} of its full length) on "
            f"{m['data']['path']} (sha256 {m['data']['sha256'][:12]}…).") if m else ""
    lines = ["# Recorded learning curves\n",
             f"{s['configs_recorded']} of {s['configs_planned']} configs in `{s['table']}`."
             f"{what} Training time, all runs together: {s['training_s'] / 60:.1f} min.\n",
             "| key | kind | tokens | evaluations | final val_loss | diverged | wall s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['key']} | {r['kind']} | {r['tokens']:,} | {r['evaluations']} | "
              f"{r['final_val_loss']:.4f} | {'yes' if r['diverged'] else 'no'} | "
              f"{r['wall_s']} |" for r in s["lines"]]
    return "\n".join(lines) + "\n"


def check_folder(out: Path, plan: Plan, identity: dict[str, Any]) -> str | None:
    """Why the table in `out` cannot be continued with this plan and data (None: it can)."""
    meta = recording.read_meta(out)
    table = out / recording.CURVES
    if meta is None:
        if table.is_file() and table.read_text().strip():
            return (f"{table} has no {recording.META} beside it (its plan and data are "
                    f"unknown); pass another --out")
        return None
    wrong = recording.plan_mismatch(meta, plan)
    if wrong:
        return f"{out} holds a table of another plan ({wrong}); pass another --out"
    wrong = recording.data_mismatch(meta, identity)
    if wrong:
        return f"{out} holds a table {wrong}; pass another --out"
    return None


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="4 tiny configs and the 9 manual runs, 100 times "
                                            "shorter than the grid's (well under a minute)",
                             json="write the table's summary here (per config its last "
                                  "evaluation), and its markdown beside it (OUT.md)")
    cli.add_data(p, "the text file or nanoGPT data folder to record on")
    cli.add_out(p, "replay", "table (curves.jsonl, table.json)")
    p.add_argument("--grid", choices=tuple(PLANS), default="full",
                   help="full: 90 configs at full length (~2.4 h on 2 cores); quick: 40 "
                        "configs, every run 0.2 as long (29 min with --workers 1 on a "
                        "shared 2-core machine)")
    p.add_argument("--workers", type=int, default=2,
                   help="configs trained at once, 1 thread each (0: in this process)")
    p.add_argument("--limit", type=int, default=None, help="record at most this many new configs")
    args = p.parse_args(argv)
    if not cli.have_data(args.data):
        return 2
    out = cli.out_folder(args, "replay")
    if out is None:
        return 2
    plan = PLANS[args.grid].smoke() if args.quick else PLANS[args.grid]
    identity = recording.data_identity(args.data)
    wrong = check_folder(out, plan, identity)
    if wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tune_gpt.data import prepare
    from tune_gpt.errors import UserError

    try:
        prepared = prepare(args.data)  # tokenise once, before the workers read the cache
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    meta = recording.meta_for(plan, identity, prepared.vocab_size)
    recording.write_meta(out, meta)
    table = out / recording.CURVES
    kept = recorded(table)
    done = {json.loads(line)["key"] for line in kept}
    planned = plan_items(plan)
    items = [it for it in planned if key_of(it[0], it[1]) not in done]
    if args.limit is not None:
        items = items[:args.limit]
    print(f"plan {plan.name}: {len(done)} of {len(planned)} configs already in {table}; "
          f"recording {len(items)} with {args.workers or 'no'} worker process(es)", flush=True)

    import contextlib
    import multiprocessing as mp

    t0 = time.time()
    work = [(it, args.data) for it in items]
    with contextlib.ExitStack() as stack:
        if args.workers > 0:
            pool = stack.enter_context(mp.get_context("spawn").Pool(args.workers,
                                                                    maxtasksperchild=8))
            results = pool.imap_unordered(_work, work)
        else:
            results = map(_work, work)
        for i, line in enumerate(results):
            kept.append(json.dumps(line, separators=(",", ":")))
            write_jsonl(table, kept)
            last = line["points"][-1] if line["points"] else [0, math.nan]
            print(f"[{i + 1}/{len(items)} {time.time() - t0:6.0f}s] {line['key']}: "
                  f"val_loss {last[1]:.4f} at {last[0]:,} tokens, {line['wall_s']:.0f} s",
                  flush=True)
    print(f"table: {table} ({len(items)} configs recorded in {time.time() - t0:.0f} s)")
    if args.json:
        s = summarize([json.loads(line) for line in kept], table, len(planned), meta)
        written = write_summary(args.json, s, markdown(s), indent=1)
        print(f"written: {written[0]}, {written[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
