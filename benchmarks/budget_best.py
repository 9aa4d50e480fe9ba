"""With the quickstart's budget, is the search's final model better than nanoGPT's CPU recipe
trained on the same compute, and better than the search's own prior trained on it?

    python benchmarks/budget_best.py --data ../shared/data/shakespeare_char/input.txt \
        --seeds 0 1 2 --out benchmarks/results/budget_best \
        --json benchmarks/results/budget_best/summary.json
    python benchmarks/budget_best.py --quick       # one tiny seed (a temporary folder)

Per seed, three arms, all real runs, each a subprocess of the `tune-gpt` command:
- search: `tune-gpt search SPACE --seed S` (beginner.yaml by default), final phase included;
  its meta.json's "final" gives the final model, the training FLOPs of the whole search
  (every trial and the final run, as `tune-gpt estimate` counts them) and its wall time.
  A search cut short is resumed (`tune-gpt resume`), never started again.
- recipe: nanoGPT's CPU recipe (4x128, block 64, batch 12, lr 1e-3 cosine to 1e-4, warmup
  100) trained with `tune-gpt train` for as many iterations as the search's FLOPs buy.
- prior: the search's first trial (its prior) trained the same way on the same FLOPs: its
  knobs, the decay over the whole run, min_lr = learning_rate / 10.
Recipe and prior evaluate ~40 times (eval_iters 20), keep their best-validation model and
train with 2 threads (warmup capped at a tenth of the run: only --quick feels it); one cut
short continues from its last.pt (`--resume`). Every arm is scored by
`tune-gpt eval CKPT --json` on the whole validation split; a searched model with a longer
block than the recipe's 64 is scored again with `--context 64` (search @64 in the summary),
so that what the longer context buys is told apart from what the search buys.

Each seed is a cell, OUT/cells/seed_S.json (--quick: quick_seed_S.json), written atomically
and skipped when the script runs again; its runs are under OUT/work/seed_S/ (the search's
runs/ and reports/, recipe/ and prior/, one file per finished arm, so a resumed cell reruns
only what had not finished). OUT/summary.{json,md} (and --json OUT) hold every cell and,
over seeds, search - recipe and search - prior: the mean paired difference and its
standard error (negative: the search's model is better). --quick shrinks the search by
`--set` overrides (QUICK_SETS); the other arms follow its FLOPs: the same code path with
smaller numbers. Not a test: it prints figures.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common.arms import (ArmFailed, flags_of, run_logged,  # noqa: E402
                                    score, timed, tune_gpt)
from benchmarks.common.cli import (add_data, add_out, benchmark_parser,  # noqa: E402
                                   have_data, out_folder)
from benchmarks.common.output import (load_cells, publish, saved_cell,  # noqa: E402
                                      write_json, write_text)

NAME = "budget_best"
ARMS = ("search", "recipe", "prior")
THREADS = 2
EVALS, EVAL_ITERS = 40, 20              # ~40 evaluations of 20 batches a training arm
QUICK_EVALS, QUICK_EVAL_ITERS = 10, 4
# nanoGPT's CPU recipe for shakespeare_char; max_iters (and what follows it) from the FLOPs.
RECIPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12,
          "learning_rate": 1e-3, "min_lr": 1e-4, "dropout": 0.0, "warmup_iters": 100,
          "beta2": 0.99, "weight_decay": 0.1, "grad_clip": 1.0, "dtype": "float32",
          "compile": False}
# --quick: the CPU profile's search shrunk to two trials of ~26 iterations each, and a
# budget whose end (120k tokens, or 2 minutes) leaves the final phase ~80k tokens
QUICK_SETS = ["budget.num_samples=2", "budget.tokens_per_trial=20000",
              "budget.tokens_per_eval=5000", "scheduler.grace_period=5000",
              "fixed.warmup_iters=2", "fixed.eval_iters=2", "budget.total_tokens=120000",
              "budget.time_budget_s=120"]
FINAL_KEYS = ("checkpoint", "flops_total", "wall_s_total", "prior_config")
NO_FINAL = "the search ran no final phase: add `final:` to the space"
CELL_KEYS = ("seed", *ARMS, "flops", "wall_s", "tokens")
ARM_KEYS = ("val_loss", "wall_s")       # what a finished-arm file holds at least
AT_CONTEXT = "search_at_recipe_context"


# ----------------------------------------------------------------------------- the arms' knobs

def flops_per_iter(knobs: Mapping[str, Any], vocab: int) -> int:
    """Training FLOPs of one iteration of `knobs`, as `tune-gpt estimate` counts them."""
    from tune_gpt.config import from_mapping
    from tune_gpt.estimate import estimate

    cfg = from_mapping(knobs)
    return estimate(cfg, vocab).flops_per_token * cfg.tokens_per_iter()


def iters_for(knobs: Mapping[str, Any], flops: float, vocab: int) -> int:
    """The iterations of `knobs` whose training FLOPs come nearest to `flops`."""
    return max(1, round(flops / flops_per_iter(knobs, vocab)))


def _whole_budget(knobs: dict[str, Any], flops: float, vocab: int, evals: int,
                  eval_iters: int) -> dict[str, Any]:
    iters = iters_for(knobs, flops, vocab)
    every = max(1, iters // evals)
    return {**knobs, "max_iters": iters, "lr_decay_iters": iters, "eval_interval": every,
            "eval_iters": eval_iters, "log_interval": every,
            "warmup_iters": min(int(knobs.get("warmup_iters", 100)), iters // 10)}


def recipe_knobs(seed: int, flops: float, vocab: int, evals: int = EVALS,
                 eval_iters: int = EVAL_ITERS) -> dict[str, Any]:
    """nanoGPT's CPU recipe trained on `flops`: cosine to the end, seed `seed`."""
    return _whole_budget({**RECIPE, "seed": seed}, flops, vocab, evals, eval_iters)


def prior_knobs(prior: Mapping[str, Any], seed: int, flops: float, vocab: int,
                evals: int = EVALS, eval_iters: int = EVAL_ITERS) -> dict[str, Any]:
    """The search's first trial (its knob mapping) trained on `flops`: its knobs (keys that
    are no TrainConfig knob, and its data set and folder, left out), the decay over the
    whole run, min_lr a tenth of its learning rate, seed `seed`."""
    from tune_gpt.config import KNOBS

    knobs = {k: v for k, v in prior.items() if k in KNOBS and k not in ("dataset", "out_dir")}
    knobs |= {"seed": seed, "min_lr": float(knobs.get("learning_rate", 1e-3)) / 10}
    return _whole_budget(knobs, flops, vocab, evals, eval_iters)


# ----------------------------------------------------------------------------- running

def read_final(meta_path: Path) -> dict[str, Any]:
    """The search's final phase as its meta.json records it; ArmFailed when it has none."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArmFailed(f"the search wrote no {meta_path}") from None
    except ValueError:
        raise ArmFailed(f"{meta_path} does not parse") from None
    final = meta.get("final") if isinstance(meta, dict) else None
    if not isinstance(final, dict):
        if _asked_final(meta_path.parent.parent / "space.yaml"):   # the space it ran
            raise ArmFailed(f"the search's final phase trained no model (see its log); "
                            f"{meta_path} records none")
        raise ArmFailed(NO_FINAL)
    missing = [k for k in FINAL_KEYS if final.get(k) is None]
    if missing:
        raise ArmFailed(f"{meta_path}: the final phase records no {', '.join(missing)}")
    return final


def _asked_final(space: Path) -> bool:
    import yaml

    try:
        raw = yaml.safe_load(space.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("final") is not None


def _search_tokens(final: Mapping[str, Any]) -> float | None:
    """The search's training tokens, exploring's and the final run's, where both are said."""
    explore = final.get("explore")
    got = (final.get("tokens"), explore.get("tokens") if isinstance(explore, dict) else None)
    return None if None in got else float(got[0]) + float(got[1])


def _model_path(p: str, places: Iterable[Path]) -> Path:
    path = Path(p).expanduser()
    if path.is_absolute():
        return path
    return next((d / path for d in places if (d / path).is_file()), path)


def search_arm(seed: int, space: str, data: str, work: Path, sets: list[str]
               ) -> dict[str, Any]:
    """The search of one seed (started, resumed, or found finished) and its final model."""
    done = work / "search.json"
    arm = saved_cell(done, (*ARM_KEYS, "flops", "prior_config"))
    if arm is not None:
        return arm
    name, storage = f"bb-seed-{seed}", work / "runs"
    folder, state = storage / name, storage / name / "state.json"
    log = work / "search.log"
    finished = state.is_file() and json.loads(state.read_text()).get("finished") is True
    if state.is_file() and not finished:
        print(f"  search: continuing {name} (`tune-gpt resume`) ...", flush=True)
        run_logged([*tune_gpt(), "resume", name, "--storage-path", str(storage)], log, work)
    elif not finished:
        print(f"  search: {name} ... (log: {log})", flush=True)
        flags = flags_of("search", ("--quiet", "--reports-dir"))
        cmd = [*tune_gpt(), "search", space, "--data", data, "--seed", str(seed), "--name",
               name, "--storage-path", str(storage)]
        # the report goes to work/reports either way: the search runs in `work`
        cmd += ["--reports-dir", str(work / "reports")] if "--reports-dir" in flags else []
        cmd += ["--quiet"] if "--quiet" in flags else []
        run_logged(cmd + [a for s in sets for a in ("--set", s)], log, work)
    final = read_final(folder / "results" / "meta.json")
    ckpt = _model_path(str(final["checkpoint"]), (work, folder, folder / "results"))
    got = score(ckpt, data, log, work)
    # the recipe reads 64-token windows: the searched model scored in the same windows too
    block, ctx = int(final.get("config", {}).get("block_size", 0)), RECIPE["block_size"]
    same = score(ckpt, data, log, work, ctx)["val_loss"] if block > ctx else got["val_loss"]
    arm = {"val_loss": got["val_loss"], "val_tokens": got["tokens"],
           "val_loss_at_recipe_context": same,
           "flops": float(final["flops_total"]), "wall_s": float(final["wall_s_total"]),
           "tokens": final.get("tokens_total", _search_tokens(final)),
           "checkpoint": str(ckpt),
           "prior_config": dict(final["prior_config"])}
    write_json(done, arm, indent=1)
    return arm


def train_arm(name: str, knobs: dict[str, Any], data: str, work: Path) -> dict[str, Any]:
    """One `tune-gpt train` run of `knobs` (resumed from its last.pt if cut short), scored."""
    done = work / f"{name}.json"
    arm = saved_cell(done, ARM_KEYS)
    if arm is not None:
        return arm
    import yaml

    out_dir = work / name
    cfg_file = out_dir / "config.yaml"
    write_text(cfg_file, yaml.safe_dump({**knobs, "out_dir": str(out_dir)}, sort_keys=False))
    resume = (out_dir / "last.pt").is_file()
    cmd = [*tune_gpt(), "train", str(cfg_file), "--data", data, "--threads", str(THREADS)]
    log = out_dir / "train.log"
    print(f"  {name}: {knobs['max_iters']:,} iterations{' (resumed)' if resume else ''} ... "
          f"(log: {log})", flush=True)
    wall = timed(out_dir / "clock.json", out_dir / "last.pt",
                 lambda: run_logged(cmd + (["--resume"] if resume else []), log, work))
    got = score(out_dir / "ckpt.pt", data, log, work)
    arm = {"val_loss": got["val_loss"], "val_tokens": got["tokens"], "wall_s": wall,
           "config": knobs, "checkpoint": str(out_dir / "ckpt.pt")}
    write_json(done, arm, indent=1)
    return arm


def run_cell(seed: int, space: str, data: str, work: Path, quick: bool = False
             ) -> dict[str, Any]:
    """The three arms of one seed, in `work`; data and space are absolute paths."""
    from tune_gpt.data import vocab_size_of

    setup = {"space": space, "data": data, "quick": quick}
    if (was := saved_cell(work / "setup.json", setup)) is not None and was != setup:
        raise ArmFailed(f"{work} holds a cell started with {was}; use another --out")
    write_json(work / "setup.json", setup)
    s = search_arm(seed, space, data, work, QUICK_SETS if quick else [])
    flops, prior = s["flops"], s["prior_config"]
    evals = (QUICK_EVALS, QUICK_EVAL_ITERS) if quick else (EVALS, EVAL_ITERS)
    vocab = vocab_size_of(data, str(prior.get("tokenizer", "auto")))
    knobs = {"recipe": recipe_knobs(seed, flops, vocab, *evals),
             "prior": prior_knobs(prior, seed, flops, vocab, *evals)}
    arms = {"search": s, **{k: train_arm(k, v, data, work) for k, v in knobs.items()}}
    per_iter = {k: flops_per_iter(v, vocab) for k, v in knobs.items()}
    return {"seed": seed, **{k: arms[k]["val_loss"] for k in ARMS}, "flops": flops,
            "search_at_recipe_context": s.get("val_loss_at_recipe_context"),
            "wall_s": {k: arms[k]["wall_s"] for k in ARMS},
            "tokens": {"search": s.get("tokens"),
                       **{k: v["max_iters"] * v["batch_size"] * v["block_size"]
                          * v.get("gradient_accumulation_steps", 1) for k, v in knobs.items()}},
            "iters": {k: v["max_iters"] for k, v in knobs.items()},
            "arm_flops": {"search": flops,
                          **{k: per_iter[k] * v["max_iters"] for k, v in knobs.items()}},
            "val_tokens": s["val_tokens"], "vocab": vocab, "quick": quick,
            "space": space, "configs": {**knobs, "searched_prior": prior},
            "checkpoints": {k: arms[k]["checkpoint"] for k in ARMS}}


# ----------------------------------------------------------------------------- summary

def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def json_safe(v: Any) -> Any:
    """`v` with every non-finite float as None (JSON has no NaN): the search's own rule."""
    from tune_gpt.search.final import json_safe as safe

    return safe(v)


def paired(cells: list[dict[str, Any]], other: str, key: str = "search") -> dict[str, Any]:
    """`key` - `other` per seed: their mean and its standard error (sample SD / sqrt(n);
    None below two pairs), over the seeds where both losses are numbers."""
    d = [c[key] - c[other] for c in cells if _finite(c.get(key)) and _finite(c[other])]
    n = len(d)
    return {"mean": statistics.fmean(d) if n else None,
            "se": statistics.stdev(d) / math.sqrt(n) if n > 1 else None, "n": n}


def summarize(cells: list[dict[str, Any]], data: str) -> dict[str, Any]:
    summary = {f"search_minus_{o}": paired(cells, o) for o in ("recipe", "prior")}
    # the same models, the searched one read in the recipe's 64-token windows (cells from
    # before this was measured have none, and count no pair)
    summary[f"{AT_CONTEXT}_minus_recipe"] = paired(cells, "recipe", AT_CONTEXT)
    return json_safe({"data": data, "seeds": sorted(cells, key=lambda c: c["seed"]),
                      "summary": summary})


def _f(v: Any, fmt: str = ".4f") -> str:
    return format(v, fmt) if _finite(v) else "-"


def markdown(s: dict[str, Any], quick: bool = False) -> str:
    lines = [f"# The search's final model against the recipe and the prior, same FLOPs "
             f"({s['data']}{', --quick' if quick else ''})", "",
             "Val loss on the whole validation split; wall seconds search / recipe / prior. "
             "search @64: the search's model read in the recipe's 64-token windows "
             "(`tune-gpt eval --context 64`).", "",
             "| seed | search | search @64 | recipe | prior | search - recipe | "
             "search - prior | FLOPs | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for c in s["seeds"]:
        diff = {o: c["search"] - c[o] if _finite(c["search"]) and _finite(c[o]) else None
                for o in ("recipe", "prior")}
        wall = " / ".join(_f(c["wall_s"].get(a), ".0f") for a in ARMS)
        lines.append(f"| {c['seed']} | {_f(c['search'])} | {_f(c.get(AT_CONTEXT))} | "
                     f"{_f(c['recipe'])} | "
                     f"{_f(c['prior'])} | {_f(diff['recipe'], '+.4f')} | "
                     f"{_f(diff['prior'], '+.4f')} | {_f(c['flops'], '.3g')} | {wall} |")
    lines.append("")
    for key, p in s["summary"].items():
        lines.append(f"{key.replace('_', ' ')}: mean {_f(p['mean'], '+.4f')}, standard error "
                     f"{_f(p['se'])} over {p['n']} paired seed(s) (negative: the search's "
                     f"model is better).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = benchmark_parser(__doc__, "seed 0: a tiny search (--set overrides: 2 trials and a "
                                  "short final run) and the recipe and prior on its FLOPs, "
                                  "a few minutes")
    add_data(p)
    add_out(p, NAME, "seed cells, their runs and the summary")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="the seed numbers to run, one cell each (e.g. --seeds 0 1 2; "
                        "default with --quick: 0)")
    p.add_argument("--space", default=str(ROOT / "search_spaces" / "beginner.yaml"),
                   help="the search space (default: search_spaces/beginner.yaml, the "
                        "quickstart's)")
    args = p.parse_args(argv)
    seeds = args.seeds or ([0] if args.quick else None)
    if not seeds:
        p.error("say which seeds to run: --seeds 0 1 2 (seed numbers, one cell each)")
    if not have_data(args.data):
        return 2
    if not Path(args.space).is_file():
        print(f"error: no search space at {args.space}; pass --space PATH", file=sys.stderr)
        return 2
    out = out_folder(args, NAME)
    if out is None:
        return 2
    out = out.resolve()
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", str(out / "cache"))
    data = str(Path(args.data).expanduser().resolve())
    space = str(Path(args.space).resolve())
    prefix = "quick_seed_" if args.quick else "seed_"   # quick cells never pass for real ones
    from tune_gpt.errors import UserError

    rc = 0
    for seed in seeds:
        path = out / "cells" / f"{prefix}{seed}.json"
        if saved_cell(path, CELL_KEYS) is not None:
            print(f"seed {seed}: saved in {path}, skipped", flush=True)
            continue
        print(f"seed {seed}: running ...", flush=True)
        try:
            cell = run_cell(seed, space, data, out / "work" / f"{prefix}{seed}", args.quick)
        except (ArmFailed, UserError) as e:
            print(f"error: seed {seed}: {e}", file=sys.stderr, flush=True)
            rc = 1
            break
        write_json(path, json_safe(cell), indent=1)
        print(f"seed {seed}: search {_f(cell['search'])}, recipe {_f(cell['recipe'])}, "
              f"prior {_f(cell['prior'])} ({cell['flops']:.3g} FLOPs)", flush=True)
    cells = load_cells(sorted((out / "cells").glob(f"{prefix}*.json")), CELL_KEYS)
    summary = summarize(cells, args.data)
    publish(out / "summary.json", args.json, summary, markdown(summary, quick=args.quick),
            indent=1, allow_nan=False)
    return rc


if __name__ == "__main__":
    sys.exit(main())
