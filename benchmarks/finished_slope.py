"""Do finished runs of a plan's config at 1/4, 1/2 and 1x its trial's tokens say how far its
loss falls over a run 8x longer? (A candidate for `tune-gpt plan`'s prediction; it failed on
both report corpora, so the product does not use it: README, "Your long run".)

    python benchmarks/finished_slope.py --data ../shared/data/shakespeare_char/input.txt \
        --out benchmarks/results/finished_slope
    python benchmarks/finished_slope.py --quick   # smoke-sized (a temporary folder)

`tune-gpt plan` brings a search's loss from a trial's end (D_end tokens) to a longer run as
L_end * (D_end / D)^0.10, an exponent measured on tinyshakespeare; on the other corpora of
benchmarks/results/horizon_transfer/ the 8x runs took 0.09-0.16 (tune_gpt/horizon.py). The
slope of one run's own curve does not tell them apart: under a decaying learning rate a run
falls fastest at its end (README, "Your long run"). A finished run at each length does not
have that problem: a run of D/2 tokens and one of D, each with its whole schedule, give the
local exponent ln(L(D/2) / L(D)) / ln 2 without the schedule in it. A search whose rungs are
read after a cool-down (WSD) measures exactly that for its winner.

The candidate rule (chosen on the development corpora, tinyshakespeare and licenses, and
committed before any report-corpus run: commit 9392303): the runs at RULE_FRACTIONS fitted by
the data term of Hoffmann et al. 2022 (eq. 2) for one model size, L(D) = E + A * D^-ALPHA,
E and A by least squares with ALPHA fixed at 0.33 (tinyshakespeare's three runs fit exactly
at 0.331), read at the plan's horizon (or its overfitting onset); where the runs bend far
faster (a free fit's exponent past SATURATED_ALPHA, as on licenses: running out of data,
Muennighoff et al. 2023), no gain past the longest run.

Per corpus, the trial the plan of horizon_transfer's search chose (--horizon, cells
CORPUS/{search,plan}.json: its config, lr and cosine schedule as the trial ran them; with
--which winner the search's winner, cells CORPUS-winner; they differ only on licenses) is
trained for --fractions x its trial's tokens (max_iters and lr_decay_iters scaled, warmup
kept) on each of --seeds, `tune-gpt train` then `tune-gpt eval` on the whole validation
split, beside that folder's 8x runs (the plan's, the winner unchanged). Cells:
OUT/cells/CORPUS/f<x>[-s<seed>].json (resumable: a finished cell is skipped; a cut-short run
resumes from its last.pt); runs: OUT/work/CORPUS/. OUT/summary.{json,md} are rebuilt from
every corpus's cells.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common.arms import ArmFailed  # noqa: E402
from benchmarks.common.cli import (add_data, add_out, benchmark_parser,  # noqa: E402
                                   have_data, out_folder)
from benchmarks.common.output import publish, saved_cell  # noqa: E402
from benchmarks.common.runs import (FULL, QUICK, Sizing, corpus_name,  # noqa: E402
                                    for_training, tokens_per_iter, train_cell)

NAME = "finished_slope"
RULE_FRACTIONS = (0.25, 0.5, 1.0)
ALPHA = 0.33
SATURATED_ALPHA = 2 * ALPHA
HORIZON = ROOT / "benchmarks" / "results" / "horizon_transfer"
FRACTIONS = (0.25, 0.5, 1.0, 2.0)


def arm(f: float, seed: int = 0) -> str:
    return f"f{f:g}" + (f"-s{seed}" if seed else "")


def scaled(winner: dict[str, Any], f: float, s: Sizing, seed: int = 0) -> dict[str, Any]:
    """The winner's config for f x its trial's tokens: max_iters and lr_decay_iters scaled."""
    iters = max(1, round(int(winner["max_iters"]) * f))
    decay = max(1, round(int(winner.get("lr_decay_iters", winner["max_iters"])) * f))
    return for_training(winner, s, max_iters=iters, lr_decay_iters=decay) | {"seed": seed}


def fixed_fit_weights(tokens: list[float], at: float) -> list[float]:
    """w such that sum(w_i * L_i) is the least-squares fit of E + A * D^-ALPHA to losses L_i
    at `tokens`, read at `at` tokens."""
    x = [float(t) ** -ALPHA for t in tokens]
    if len(set(x)) < 2:
        raise ValueError("a fit needs finished runs of at least two lengths")
    mean = sum(x) / len(x)
    sxx = sum((v - mean) ** 2 for v in x)
    x0 = float(at) ** -ALPHA
    return [1 / len(x) + (x0 - mean) * (v - mean) / sxx for v in x]


def rule_predict(points: list[tuple[float, float]], at: float) -> dict[str, Any]:
    """The candidate rule's loss at `at` tokens from finished runs (tokens, loss)."""
    from tune_gpt.horizon import fit_curve

    pts = sorted((float(t), float(v)) for t, v in points)
    w = fixed_fit_weights([t for t, _ in pts], at)
    free = fit_curve([t for t, _ in pts], [v for _, v in pts])
    alpha = free.alpha if free.fitted else ALPHA
    saturated = alpha > SATURATED_ALPHA and at > pts[-1][0]
    loss = pts[-1][1] if saturated else sum(wi * v for wi, (_, v) in zip(w, pts))
    return {"predicted": loss, "alpha": alpha, "saturated": saturated,
            "noise_x": 1.0 if saturated else math.sqrt(sum(wi * wi for wi in w))}


def local_exponent(a: tuple[float, float], b: tuple[float, float]) -> float | None:
    """ln(L_a / L_b) / ln(D_b / D_a) for two finished runs (tokens, loss), a shorter."""
    (ta, la), (tb, lb) = a, b
    if min(ta, tb, la, lb) <= 0 or tb <= ta:
        return None
    return math.log(la / lb) / math.log(tb / ta)


def corpus_summary(cells: Path, horizon: Path) -> dict[str, Any]:
    runs = {}
    for p in sorted(cells.glob("f*.json")):
        got = saved_cell(p, ("val_loss", "tokens"))
        if got is not None:
            runs[p.stem] = {"tokens": got["tokens"], "val_loss": got["val_loss"],
                            "wall_s": got.get("wall_s")}
    pts = sorted((r["tokens"], r["val_loss"]) for k, r in runs.items() if "-s" not in k)
    slopes = {f"{a[0]:.0f}->{b[0]:.0f}": local_exponent(a, b) for a, b in zip(pts, pts[1:])}
    long = {}
    for name, cell in (("plan", "lr_x1"), ("winner", "winner")):  # the plan as written: x1
        got = saved_cell(horizon / f"{cell}.json", ("val_loss", "tokens"))
        if got is not None:
            long[name] = {"tokens": got["tokens"], "val_loss": got["val_loss"]}
    end = runs.get(arm(1.0))
    to_long = {k: local_exponent((end["tokens"], end["val_loss"]), (v["tokens"], v["val_loss"]))
               for k, v in long.items()} if end else {}
    return {"runs": runs, "local_exponents": slopes, "long_runs": long,
            "exponent_to_long": to_long,
            "rule": rule_check(runs, horizon, long.get("plan")) if "-" not in cells.name
            else None}  # CORPUS-winner: another trial than the plan's (licenses)


def predicted_at(horizon: Path) -> int | None:
    """The tokens the plan predicted at: its length, or where its model starts to overfit
    (the plan says so in its evidence)."""
    plan = saved_cell(horizon / "plan.json", ("tokens",))
    if plan is None:
        return None
    for line in plan.get("evidence", []):
        if (m := re.search(r"predicted at ([\d,]+) tokens", line)):
            return int(m.group(1).replace(",", ""))
    return int(plan["tokens"])


def rule_check(runs: dict[str, Any], horizon: Path, plan: dict[str, Any] | None
               ) -> dict[str, Any]:
    """The candidate rule (rule_predict, on each seed's runs at RULE_FRACTIONS) against the
    plan's measured run."""
    at = predicted_at(horizon)
    out: dict[str, Any] = {"at": at, "measured": plan["val_loss"] if plan else None,
                           "alpha": ALPHA, "by_seed": {}}
    seeds = sorted({int(k.split("-s")[1]) if "-s" in k else 0 for k in runs})
    for seed in seeds:
        pts = [runs.get(arm(f, seed)) for f in RULE_FRACTIONS]
        if at is None or any(r is None for r in pts):
            continue
        got = rule_predict([(r["tokens"], r["val_loss"]) for r in pts], at)
        out["by_seed"][str(seed)] = got | {
            "error": got["predicted"] - plan["val_loss"] if plan else None}
    return out


def markdown(s: dict[str, Any]) -> str:
    lines = ["# Finished runs of each plan's trial at fractions of its tokens",
             "", "Val loss on the whole validation split; exponents ln(L_a/L_b)/ln(D_b/D_a).",
             "", "| corpus | runs (tokens: loss) | local exponents | 1x -> 8x (plan; winner) "
             "| the candidate rule: predicted at (seed: predicted, error) | measured |",
             "|---|---|---|---|---|---|"]
    for c, v in s["corpora"].items():
        runs = ", ".join(f"{r['tokens'] / 1e6:.2f}M{' s' + k.split('-s')[1] if '-s' in k else ''}"
                         f": {r['val_loss']:.4f}" for k, r in sorted(
                             v["runs"].items(), key=lambda kr: ("-s" in kr[0], kr[0],
                                                                kr[1]["tokens"])))
        slopes = ", ".join(f"{k}: {x:.3f}" for k, x in v["local_exponents"].items()
                           if x is not None)
        lg = "; ".join(f"{k} {x:.3f}" for k, x in v["exponent_to_long"].items() if x is not None)
        r = v["rule"] or {"at": None, "measured": None}
        rule = f"{r['at']:,}: " + "; ".join(
            f"{k}: {x['predicted']:.4f}" + (f", {x['error']:+.4f}" if x["error"] is not None
                                            else "") for k, x in r["by_seed"].items()) \
            if r["at"] else ""
        meas = f"{r['measured']:.4f}" if r["measured"] is not None else ""
        lines.append(f"| {c} | {runs} | {slopes} | {lg} | {rule} | {meas} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = benchmark_parser(__doc__, "smoke-sized: horizon_transfer --quick's search, 2 lengths")
    add_data(p)
    add_out(p, NAME)
    p.add_argument("--horizon", default=str(HORIZON),
                   help="horizon_transfer's output folder (its cells/CORPUS/search.json)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="seed numbers to train each length with (cells f<x>-s<seed> but 0)")
    p.add_argument("--which", choices=("plan", "winner"), default="plan",
                   help="the trial the plan chose (default), or the search's winner (cells "
                        "CORPUS-winner); the same trial on every corpus but licenses")
    args = p.parse_args(argv)
    if args.quick:
        return quick()
    if not have_data(args.data):
        return 2
    out = out_folder(args, NAME)
    corpus = corpus_name(args.data)
    horizon = Path(args.horizon) / "cells" / corpus
    config = trial_config(horizon, args.which)
    if config is None:
        print(f"no horizon search and plan for {corpus} under {args.horizon}/cells: run "
              f"benchmarks/horizon_transfer.py --data {args.data} first", file=sys.stderr)
        return 2
    name = corpus if args.which == "plan" else f"{corpus}-winner"
    return run(name, args.data, config, args.fractions, FULL, out, Path(args.horizon),
               args.seeds)


def trial_config(horizon: Path, which: str) -> dict[str, Any] | None:
    """The config a trial of horizon_transfer's search trained: the search's winner, or the
    trial the plan chose (its config at the plan's length, brought back: the trial's lr,
    min_lr and length)."""
    search = saved_cell(horizon / "search.json", ("winner_config", "winner_tokens"))
    if search is None:
        return None
    if which == "winner":
        return search["winner_config"]
    plan = saved_cell(horizon / "plan.json", ("config", "lr_from", "tokens"))
    if plan is None:
        return None
    c = dict(plan["config"])
    iters = round(int(c["max_iters"]) * search["winner_tokens"] / plan["tokens"])
    ratio = float(c["min_lr"]) / float(c["learning_rate"])
    return c | {"learning_rate": plan["lr_from"], "min_lr": plan["lr_from"] * ratio,
                "max_iters": iters, "lr_decay_iters": iters}


def run(corpus: str, data: str, winner: dict[str, Any], fractions: list[float], s: Sizing,
        out: Path, horizon: Path = HORIZON, seeds: tuple[int, ...] = (0,)) -> int:
    cells, work = out / "cells" / corpus, out / "work" / corpus
    print(f"{corpus}: the winner {winner['n_layer']}x{winner['n_embd']}, lr "
          f"{winner['learning_rate']:.3g}, {int(winner['max_iters']) * tokens_per_iter(winner):,}"
          f" tokens a trial", flush=True)
    try:
        for seed in seeds:
            for f in fractions:
                train_cell(arm(f, seed), scaled(winner, f, s, seed), data, cells, work,
                           s.threads)
    except ArmFailed as e:
        print(f"{corpus}: {e}", file=sys.stderr)
        return 1
    summary = {"corpora": {c.name: corpus_summary(c, horizon / "cells" / c.name.split("-")[0])
                           for c in sorted((out / "cells").iterdir()) if c.is_dir()}}
    publish(out / "summary.json", None, summary, markdown(summary))
    return 0


def quick() -> int:
    """Two tiny lengths of a smoke-sized config on tinyshakespeare, in a temporary folder."""
    from dataclasses import asdict

    from benchmarks.common.cli import DEFAULT_DATA
    from tune_gpt.config import TrainConfig

    data = str(DEFAULT_DATA)
    winner = json.loads(json.dumps(asdict(TrainConfig()))) | {
        "n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4,
        "max_iters": 40, "lr_decay_iters": 40, "warmup_iters": 4}
    with tempfile.TemporaryDirectory() as tmp:
        return run("quick", data, winner, [0.5, 1.0], QUICK, Path(tmp), Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
