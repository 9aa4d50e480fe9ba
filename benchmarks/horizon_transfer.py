"""Does `tune-gpt plan` carry a search to a run --factor times longer than its trials: is its
learning rate the best there, its config better than the winner merely run longer, and its
predicted loss right?

    python benchmarks/horizon_transfer.py --data ../shared/data/shakespeare_char/input.txt \
        --factor 8 --out benchmarks/results/horizon_transfer \
        --json benchmarks/results/horizon_transfer/summary.json
    python benchmarks/horizon_transfer.py --quick   # smoke-sized, factor 2 (a temporary folder)

Per corpus (--data: named by its file, or by its folder when the file is input.txt), real
runs, each a subprocess of the `tune-gpt` command:
1. search: `tune-gpt search beginner.yaml --profile cpu --seed 0` with FULL.sets: 14 trials
   of at most 1M tokens (evaluated every 125k), 2 at a time, 13 minutes at most, no `final:`
   phase. Cut short, it is resumed (`tune-gpt resume`), never started again.
2. plan: T = --factor x the winner's trial tokens (its max_iters x tokens per iteration: 8M
   at most at factor 8); `tune-gpt plan NAME --tokens T --json`: plan_lr, the predicted
   val_loss and its 95% interval, the config.
3. six runs of T tokens, `tune-gpt train` (2 threads, ~40 evaluations of 20 batches, the
   best-validation model kept, one cut short resumed from its last.pt), each scored by
   `tune-gpt eval CKPT --json` on the whole validation split: the plan's config at plan_lr x
   1/2, 1/sqrt2, 1, sqrt2, 2 (min_lr moved with it, so x1 is the plan as written), and the
   search's winner unchanged (its own lr, min_lr and warmup; max_iters and lr_decay_iters x
   factor). All on seed 0.
Cost per corpus on 2 cores, measured (2026-12-06, tinyshakespeare and manpages): the search
6-8 min, then 6 runs of 8M tokens at 17-22k tokens/s: 6-8 min each, 47 min in all.

Targets per corpus (pass true / false; null while a number is missing):
  (a) plan_lr is the sweep's best learning rate or next to it;
  (b) measured_plan <= winner_unchanged (the difference also in units of the reference seed
      noise, judge.REFERENCE_SEED_NOISE, and whether it is beyond that noise);
  (c) |predicted - measured_plan| <= 0.03 (and whether it is inside the plan's interval).
Cells (one a finished step, written atomically, skipped when run again): OUT/cells/CORPUS/
{setup,search,plan,<run>}.json; runs: OUT/work/CORPUS/. OUT/summary.{json,md} (and --json
OUT) are rebuilt from every corpus's cells under OUT (another --data adds its corpus);
missing cells give nulls and "incomplete: M of T cells".
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common.arms import ArmFailed, run_logged, tune_gpt  # noqa: E402
from benchmarks.common.cli import (add_data, add_out, benchmark_parser,  # noqa: E402
                                   have_data, out_folder)
from benchmarks.common.output import (publish, saved_cell, write_json,  # noqa: E402
                                      write_text)
from benchmarks.common.runs import (FULL, QUICK, RUN_KEYS, SEED, Sizing,  # noqa: E402,F401
                                    corpus_name, for_training, json_safe, tokens_per_iter,
                                    train_cell)
from tune_gpt import judge  # noqa: E402  (light: scipy only inside t_quantile)

NAME = "horizon_transfer"
SPACE = ROOT / "search_spaces" / "beginner.yaml"
SEARCH = "horizon-search"              # the search's name in OUT/work/CORPUS/runs
STEPS = (0, 1, -1, 2, -2)              # the sweep: plan_lr x 2^(k/2), in the order run
TOLERANCE = 0.03                       # (c): nats between predicted and measured, at most
SETUP_KEYS = ("data", "factor", "quick", "seed")
SEARCH_KEYS = ("name", "storage", "winner_trial", "winner_config", "winner_tokens")
PLAN_KEYS = ("plan_lr", "predicted", "interval", "config", "tokens", "trial_id")


# ----------------------------------------------------------------------------- names and knobs

def lr_key(lr: float) -> str:
    """A learning rate as the summary's keys write it (sweep, plan_lr's key)."""
    return format(lr, ".6g")


def sweep_lr(plan_lr: float, k: int) -> float:
    return plan_lr * 2 ** (k / 2)     # k = 0: plan_lr itself, exactly


def arm(k: int) -> str:
    return f"lr_x{2 ** (k / 2):.3g}"  # lr_x0.5, lr_x0.707, lr_x1, lr_x1.41, lr_x2


ARMS = (*(arm(k) for k in sorted(STEPS)), "winner")


def horizon_tokens(winner: dict[str, Any], factor: float) -> int:
    """T: `factor` times the winner's trial, in whole iterations of it."""
    return round(int(winner["max_iters"]) * factor) * tokens_per_iter(winner)


def sweep_knobs(plan_config: dict[str, Any], lr: float, s: Sizing) -> dict[str, Any]:
    """The plan's config at `lr`, min_lr moved with it (at plan_lr: the plan as written)."""
    ratio = float(plan_config["min_lr"]) / float(plan_config["learning_rate"])
    return for_training(plan_config, s, learning_rate=lr, min_lr=lr * ratio)


def winner_knobs(winner: dict[str, Any], factor: float, s: Sizing) -> dict[str, Any]:
    """The search's winner unchanged, its schedule stretched `factor` times."""
    iters = round(int(winner["max_iters"]) * factor)
    decay = round(int(winner.get("lr_decay_iters", winner["max_iters"])) * factor)
    return for_training(winner, s, max_iters=iters, lr_decay_iters=decay)


# ----------------------------------------------------------------------------- the cells

def _cell(path: Path, keys: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The JSON object at `path` if it holds `keys`; None: no file, or not a whole one."""
    try:
        got = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) and all(k in got for k in keys) else None


def search_cell(cells: Path, work: Path, data: str, s: Sizing) -> dict[str, Any]:
    """The search (started, resumed, or found finished) and its winner."""
    if (got := saved_cell(cells / "search.json", SEARCH_KEYS)) is not None:
        print("  search: saved, skipped", flush=True)
        return got
    storage, log, folder = work / "runs", work / "search.log", work / "runs" / SEARCH
    state = _cell(folder / "state.json")
    if state is not None and state.get("finished") is not True:
        print(f"  search: continuing {SEARCH} (`tune-gpt resume`) ... (log: {log})", flush=True)
        run_logged([*tune_gpt(), "resume", SEARCH, "--storage-path", str(storage)], log, work)
    elif state is None:
        print(f"  search: {SEARCH} ... (log: {log})", flush=True)
        cmd = [*tune_gpt(), "search", str(SPACE), "--profile", "cpu", "--data", data,
               "--seed", str(SEED), "--name", SEARCH, "--storage-path", str(storage)]
        run_logged(cmd + [a for x in s.sets for a in ("--set", x)], log, work)
    meta = _cell(folder / "results" / "meta.json") or {}
    best = meta.get("best")
    if not isinstance(best, dict) or not isinstance(best.get("config"), dict):
        raise ArmFailed(f"the search recorded no best trial in {folder / 'results'} ({log})")
    w = best["config"]
    cell = {"name": SEARCH, "storage": str(storage), "winner_trial": str(best["trial_id"]),
            "winner_val_loss": best.get("best_val_loss"), "winner_config": w,
            "winner_tokens": int(w["max_iters"]) * tokens_per_iter(w),
            "wall_s": meta.get("wall_s"), "counts": meta.get("counts")}
    write_json(cells / "search.json", json_safe(cell), indent=1)
    return cell


def plan_cell(cells: Path, work: Path, search: dict[str, Any], tokens: int) -> dict[str, Any]:
    """`tune-gpt plan NAME --tokens T --json`: the plan's lr, prediction and config."""
    if (got := saved_cell(cells / "plan.json", PLAN_KEYS)) is not None:
        print("  plan: saved, skipped", flush=True)
        return got
    cmd = [*tune_gpt(), "plan", search["name"], "--storage-path", search["storage"],
           "--tokens", str(tokens), "--json", "--out", str(work / "plan")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, check=False)
    write_text(work / "plan.log", f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    p = json.loads(proc.stdout) if proc.returncode == 0 else {}
    if p.get("predicted") is None:
        said = (proc.stderr.strip().splitlines() or ["no prediction"])[-1]
        raise ArmFailed(f"`tune-gpt plan --tokens {tokens:,}`: {said} ({work / 'plan.log'})")
    cell = {"plan_lr": p["learning_rate"], **{k: p[k] for k in (
        "lr_from", "predicted", "interval", "requested", "tokens", "trial_id", "config",
        "noise", "evidence")}}
    write_json(cells / "plan.json", json_safe(cell), indent=1)
    return cell


def run_corpus(corpus: str, data: str, factor: float, s: Sizing, out: Path) -> None:
    """Every missing cell of one corpus, in order: search, plan, plan_lr, winner, the rest."""
    cells, work = out / "cells" / corpus, out / "work" / corpus
    setup = {"data": data, "factor": factor, "quick": s is QUICK, "seed": SEED}
    if (was := saved_cell(cells / "setup.json", SETUP_KEYS)) not in (None, setup):
        raise ArmFailed(f"{cells} holds a corpus started with {was}; use another --out")
    if was is None:
        write_json(cells / "setup.json", setup, indent=1)
    work.mkdir(parents=True, exist_ok=True)
    search = search_cell(cells, work, data, s)
    w = search["winner_config"]
    plan = plan_cell(cells, work, search, horizon_tokens(w, factor))
    runs = [(arm(k), sweep_knobs(plan["config"], sweep_lr(plan["plan_lr"], k), s))
            for k in STEPS]
    runs.insert(1, ("winner", winner_knobs(w, factor, s)))
    for name, knobs in runs:
        train_cell(name, knobs, data, cells, work, s.threads)


# ----------------------------------------------------------------------------- summary

def _num(v: Any) -> bool:  # a finite number
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def target(text: str, value: Any, ok: bool | None, **more: Any) -> dict[str, Any]:
    """A target's entry: pass is None while its number is missing."""
    return {"target": text, "value": value, **more, "pass": None if value is None else ok}


def targets(sweep: list[tuple[float, float | None]], plan_lr: float | None,
            predicted: float | None, interval: list[float] | None, measured: float | None,
            winner: float | None) -> dict[str, Any]:
    """The three targets from the numbers (None: missing; a diverged run's loss: inf)."""
    whole = bool(sweep) and all(v is not None for _, v in sweep)
    best = min(range(len(sweep)), key=lambda i: sweep[i][1]) if whole else None
    off = None if best is None else abs(best - [lr for lr, _ in sweep].index(plan_lr))
    ref = judge.REFERENCE_SEED_NOISE
    gap = judge.t_quantile(ref.dof) * math.sqrt(2) * ref.sd   # a difference of two runs
    diff = None if None in (measured, winner) else measured - winner
    err = None if None in (predicted, measured) else predicted - measured
    return {
        "plan_lr_best_or_next": target(
            "plan_lr is the sweep's best learning rate or next to it", off,
            off is not None and off <= 1, best_lr=None if best is None else sweep[best][0]),
        "plan_beats_winner": target(
            "measured_plan <= winner_unchanged", diff, diff is not None and diff <= 0,
            seed_noise_sd=ref.sd, in_seed_noise_sd=None if diff is None else diff / ref.sd,
            beyond_noise=None if diff is None else abs(diff) > gap, noise_gap=gap,
            noise_source=ref.source),
        "prediction_within": target(
            f"|predicted - measured_plan| <= {TOLERANCE}", err,
            err is not None and abs(err) <= TOLERANCE + 1e-12,
            inside_interval=None if err is None or not interval
            else interval[0] <= measured <= interval[1])}


def corpus_summary(cells: Path) -> dict[str, Any]:
    """One corpus's figures from its cells; nulls where a cell is missing."""
    setup, search, plan = (_cell(cells / f"{n}.json", k) for n, k in (
        ("setup", SETUP_KEYS), ("search", SEARCH_KEYS), ("plan", PLAN_KEYS)))
    setup = setup or {}
    runs = {n: _cell(cells / f"{n}.json", RUN_KEYS) for n in ARMS}
    loss = {n: None if c is None else c["val_loss"] if _num(c["val_loss"]) else math.inf
            for n, c in runs.items()}           # a run without a number diverged: inf
    plan_lr = plan["plan_lr"] if plan else None
    pts = [(sweep_lr(plan_lr, k), loss[arm(k)]) for k in sorted(STEPS)] if plan else []
    measured, winner = loss[arm(0)], loss["winner"]
    done, total = sum(c is not None for c in (search, plan, *runs.values())), 2 + len(ARMS)
    tokens = plan["requested"] if plan else search and setup and horizon_tokens(
        search["winner_config"], setup["factor"])
    t = targets(pts, plan_lr, plan and plan["predicted"], plan and plan["interval"], measured,
                winner)
    return {"plan_lr": plan_lr, "sweep": {lr_key(lr): v for lr, v in pts},
            "predicted": plan and plan["predicted"], "interval": plan and plan["interval"],
            "measured_plan": measured, "winner_unchanged": winner, "tokens": tokens,
            "best_sweep_lr": t["plan_lr_best_or_next"]["best_lr"], "targets": t,
            "winner_lr": search and search["winner_config"]["learning_rate"],
            "winner_trial": search and search["winner_trial"],
            "plan_trial": plan and plan["trial_id"], "plan_config": plan and plan["config"],
            "diverged": [n for n in ARMS if loss[n] == math.inf],
            "wall_s": {n: c.get("wall_s") for n, c in (("search", search), *runs.items()) if c},
            "factor": setup.get("factor"), "data": setup.get("data"),
            "quick": setup.get("quick"), "cells": {"done": done, "total": total},
            "note": f"complete: {total} cells" if done == total
            else f"incomplete: {done} of {total} cells"}


def summarize(out: Path) -> dict[str, Any]:
    folders = sorted(p.parent for p in (out / "cells").glob("*/setup.json"))
    return json_safe({"corpora": {f.name: corpus_summary(f) for f in folders}})


def _f(v: Any, spec: str = ".4f") -> str:
    return format(v, spec) if _num(v) else "—"


def markdown(s: dict[str, Any]) -> str:
    ok = {True: "pass", False: "fail", None: "—"}
    lines = ["# `tune-gpt plan` at --factor times the search's trial tokens", "",
             "Val loss on the whole validation split. (a) plan_lr best of the sweep or next "
             "to it; (b) the plan's run <= the winner unchanged (the difference in reference "
             f"seed-noise SDs); (c) |predicted - measured| <= {TOLERANCE}.", "",
             "| corpus | tokens | plan lr | predicted (95%) | measured | winner unchanged "
             "(its lr) | best sweep lr | (a) | (b) | (c) | cells |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in s["corpora"].items():
        t, iv = c["targets"], c["interval"] or [None, None]
        b = t["plan_beats_winner"]
        lines.append(
            f"| {name} | {_f(c['tokens'], ',')} | {_f(c['plan_lr'], '.3g')} | "
            f"{_f(c['predicted'])} ({_f(iv[0], '.3f')}-{_f(iv[1], '.3f')}) | "
            f"{_f(c['measured_plan'])} | {_f(c['winner_unchanged'])} "
            f"({_f(c['winner_lr'], '.3g')}) | {_f(c['best_sweep_lr'], '.3g')} | "
            f"{ok[t['plan_lr_best_or_next']['pass']]} | {ok[b['pass']]} "
            f"({_f(b['value'], '+.3f')}, {_f(b['in_seed_noise_sd'], '+.1f')} SD) | "
            f"{ok[t['prediction_within']['pass']]} | {c['note']} |")
    lines += ["", "The sweeps (the plan's config at plan_lr x 2^(k/2)):", "",
              "| corpus | " + " | ".join(f"x{2 ** (k / 2):.3g}" for k in sorted(STEPS)) + " |",
              "|---|" + "---|" * len(STEPS)]
    for name, c in s["corpora"].items():
        lines.append(f"| {name} | " + " | ".join(
            _f(v) for v in list(c["sweep"].values()) or [None] * len(STEPS)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = benchmark_parser(__doc__, "smoke.yaml-sized models, a 3-trial search of 24k-token "
                                  "trials, factor 2 (~1 minute)")
    add_data(p, "the corpus: a text file or a nanoGPT data folder")
    add_out(p, NAME, "corpora's cells, runs and summary")
    p.add_argument("--factor", type=float, default=None,
                   help=f"the runs' tokens / the winner's trial tokens (default {FULL.factor:g};"
                        f" --quick {QUICK.factor:g}); the plan refuses more than 10")
    args = p.parse_args(argv)
    s = QUICK if args.quick else FULL
    factor = args.factor or s.factor
    if factor <= 1:
        p.error(f"--factor {factor:g}: the runs must be longer than the trials (e.g. 8)")
    if not have_data(args.data) or (out := out_folder(args, NAME)) is None:
        return 2
    out = out.resolve()
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", str(out / "cache"))
    data = str(Path(args.data).expanduser().resolve())
    corpus, rc = corpus_name(data), 0
    print(f"{corpus}: factor {factor:g} ...", flush=True)
    try:
        run_corpus(corpus, data, factor, s, out)
    except ArmFailed as e:
        print(f"error: {corpus}: {e}", file=sys.stderr, flush=True)
        rc = 1
    summary = summarize(out)
    publish(out / "summary.json", args.json, summary, markdown(summary), indent=1,
            allow_nan=False)
    return rc


if __name__ == "__main__":
    sys.exit(main())
