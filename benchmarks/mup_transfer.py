"""Benchmark: under µP, is wider better at the base width's learning rate, and as good as SP tuned?

    python benchmarks/mup_transfer.py --data PATH --widths 128 256 512 --tokens 1M --seeds 1 \\
        --json OUT.json   # the full run, resumable, in benchmarks/results/mup_transfer/
    python benchmarks/mup_transfer.py --max-cells 2   # at most 2 missing cells, then the summary
    python benchmarks/mup_transfer.py --max-cells 0   # only rebuild the summary
    python benchmarks/mup_transfer.py --quick         # a smoke run (~20 s) that a test calls

What runs: GPTs of 4 layers and 4 heads at the widths (n_embd) of --widths, the smallest the
base; every run trains --tokens tokens with tune_gpt.train on --data (TrainConfig's batches of
12 x 64, warmup a tenth, cosine to lr/10, its other defaults) and is scored by its loss on the
WHOLE validation split (no sampling noise in differences of 0.02 nats; diverged: ln(vocab)).
  1. the coordinate check (tune_gpt.mup.coord_check: 4 Adam steps at 1e-2), SP and µP;
  2. µP (parametrization: mup, mup_base_width = the base width) at the base width, at every
     lr of LRS (2.5e-4 to 8e-3, 6 points, doubling); the best is the base lr;
  3. µP at every wider width at exactly the base lr (attention 1/d_head with the base head
     size, hidden lr / m, Adam eps / m, mup_input_mult = mup_output_mult = 1);
  4. SP at the largest width at every lr of LRS. SP is swept at the base and the largest
     widths only: at the base width its runs are step 2's (µP at m = 1 is SP exactly, as
     tests/test_mup.py checks); the widths between are not swept, to save compute.
Steps 2-4 run for seeds 0 .. --seeds-1; a figure is the mean over seeds.

Cost of the full run (--widths 128 256 512 --tokens 1M --seeds 1): 16 cells (2 coordinate
checks, 6 + 2 µP runs, 6 SP runs). Alone on the 2 cores, 37k tokens/s at width 128, 14.6k at
256 and 3.7k at 512 (measured) make it 6 x 0.5 + 1.1 + 7 x 4.5 min = ~36 min; at the 1.3k
tokens/s width 512 gets while other work shares the cores (~13 min a cell), ~95 min; each
further seed as much again. Every run is a cell in OUT/cells_v2/, named by parametrization,
width, base width, layers, tokens, lr and seed, skipped when the script runs again (one cut
short is run again); the old cells (OUT/cells/: 2 layers, 200 steps) are never read.

Targets: (a) wider is better: µP at the base lr gains >= 0.02 nats at every step to the next
width; (b) gap_to_sp_best = µP's loss at the largest width - SP's best of its sweep there
<= 0.02; (c) coordinate check: under µP every layer's activation size at the widest width is
within 2x of the narrowest (mup_growth, the largest ratio, is reported beside sp_growth).
Selection works against (a) and (b): the base-width loss is a minimum, so is SP's best.

OUT/summary.{json,md}, OUT/lr_sweeps.png and OUT/coord_check.png are rebuilt from the cells
present (the summary also to --json); a figure whose cells are missing is null, and the summary
says "incomplete: M of T cells". OUT: --out DIR (--out benchmarks/results/mup_transfer for
the committed cells), else beside --json OUT.json, or with --quick a temporary folder;
nothing is written to results unless asked. --quick runs on 1 torch thread.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import (  # noqa: E402
    saved_cell, write_figure, write_json, write_summary)

LRS = [2.5e-4 * 2 ** k for k in range(6)]       # 2.5e-4 .. 8e-3: SP's 512 to µP's 128 optimum
FULL = {"widths": [128, 256, 512], "n_layer": 4, "tokens": 1_000_000, "lrs": LRS}
# Tiny widths, 40 steps of 12 x 64 tokens: checks the script, not the figures.
QUICK = {"widths": [32, 64, 128], "n_layer": 2, "tokens": 30_720,
         "lrs": [2e-3 * 2 ** k for k in range(5)]}
N_HEAD = 4
COORD_STEPS, COORD_LR = 4, 1e-2   # tune_gpt.mup's defaults: SP's growth shows after 4 steps
TARGET_STEP = 0.02   # (a) nats gained at every step to the next width, at least
TARGET_GAP = 0.02    # (b) µP-transferred minus SP-best at the largest width, at most
TARGET_FLAT = 2.0    # (c) µP coordinate sizes, widest / narrowest, within this factor
CELL_KEYS = ("param", "width", "lr", "seed", "val_loss", "diverged", "data_sha256")
COORD_KEYS = ("param", "widths", "sizes")
Key = tuple[str, int, float, int]                # (param, width, lr, seed)


@dataclass(frozen=True)
class Plan:
    widths: list[int]   # sorted: the first is the base width
    n_layer: int
    tokens: int         # a run's, as --tokens says (the runs train whole batches up to it)
    lrs: list[float]    # sorted
    seeds: list[int]

    @property
    def base(self) -> int:
        return self.widths[0]

    def cell_path(self, out: Path, key: Key) -> Path:
        param, width, lr, seed = key
        return out / "cells_v2" / (f"{param}-w{width}-b{self.base}-L{self.n_layer}-"
                                   f"t{self.tokens}-lr{lr:.3e}-s{seed}.json")

    def coord_path(self, out: Path, param: str) -> Path:
        ws = "-".join(map(str, self.widths))
        return out / "cells_v2" / f"coord-{param}-w{ws}-L{self.n_layer}.json"

    def keys(self, base_lr: float | None) -> list[Key]:
        """The training runs, in the order they run: the base sweep, the transfer (once the
        base lr is known), SP's sweep at the largest width."""
        keys = [("mup", self.base, lr, s) for s in self.seeds for lr in self.lrs]
        if base_lr is not None:
            keys += [("mup", w, base_lr, s) for s in self.seeds for w in self.widths[1:]]
        return keys + [("sp", self.widths[-1], lr, s) for s in self.seeds for lr in self.lrs]


def tokens_arg(text: str) -> int:
    """1000000, 1e6, 1M or 250k."""
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        n = int(float(text[:-1] if mult > 1 else text) * mult)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"not a positive token count: {text!r} (e.g. 1M)")
    return n


# ----------------------------------------------------------------------------- running

def run_cell(key: Key, plan: Plan, data) -> dict[str, Any]:
    from tune_gpt.config import TrainConfig
    from tune_gpt.evaluate import whole_split_loss
    from tune_gpt.train import train

    param, width, lr, seed = key
    iters = math.ceil(plan.tokens / TrainConfig().tokens_per_iter())
    cfg = TrainConfig(dataset=data.source, n_layer=plan.n_layer, n_head=N_HEAD, n_embd=width,
                      max_iters=iters, eval_interval=iters, eval_iters=1, lr_decay_iters=iters,
                      warmup_iters=max(1, iters // 10), learning_rate=lr, min_lr=lr / 10,
                      parametrization=param, mup_base_width=plan.base, seed=seed, device="cpu")
    scored: list[float] = []

    def on_eval(record, checkpointer) -> None:  # the last evaluation: score the whole split
        if record.iter == iters and not record.diverged:
            scored.append(whole_split_loss(checkpointer.model, data.val_path, cfg.block_size)[0])

    r = train(cfg, data=data, on_eval=on_eval)
    loss = scored[0] if scored and math.isfinite(scored[0]) else None
    return {"param": param, "width": width, "lr": lr, "seed": seed, "val_loss": loss,
            "diverged": loss is None, "vocab_size": data.vocab_size, "tokens": r.tokens,
            "tokens_per_s": round(r.final.tokens_per_s), "wall_s": round(r.wall_s, 1),
            "data": data.source, "data_sha256": data.sha256, "config": cfg.to_dict()}


def run_coord(plan: Plan, param: str, vocab_size: int) -> dict[str, Any]:
    from tune_gpt.mup import coord_check

    sizes = coord_check(plan.widths, param, steps=COORD_STEPS, lr=COORD_LR,
                        n_layer=plan.n_layer, n_head=N_HEAD, vocab_size=vocab_size)
    return {"param": param, "widths": plan.widths, "n_layer": plan.n_layer,
            "steps": COORD_STEPS, "lr": COORD_LR, "sizes": {str(w): s for w, s in sizes.items()}}


def load(plan: Plan, out: Path) -> dict[Key, dict[str, Any]]:
    """The saved cells of the plan (the transfer's are known once the base sweep's are)."""
    cells: dict[Key, dict[str, Any]] = {}
    for _ in range(2):
        cells |= {k: c for k in plan.keys(base_lr(plan, cells)) if k not in cells
                  and (c := saved_cell(plan.cell_path(out, k), CELL_KEYS))}
    return cells


# ----------------------------------------------------------------------------- summary

def mean_loss(plan: Plan, cells: dict, param: str, width: int, lr: float | None
              ) -> float | None:
    """Mean over seeds (a diverged run: ln(vocab)); None unless every seed's cell is there."""
    got = [cells.get((param, width, lr, s)) for s in plan.seeds]
    return None if lr is None or None in got else statistics.fmean(
        math.log(c["vocab_size"]) if c["val_loss"] is None else c["val_loss"] for c in got)


def sweep(plan: Plan, cells: dict, param: str, width: int) -> dict[float, float | None]:
    return {lr: mean_loss(plan, cells, param, width, lr) for lr in plan.lrs}


def best(curve: dict[float, float | None]) -> float | None:
    """The grid lr of the lowest loss; None while a point is missing."""
    return None if None in curve.values() else min(curve, key=curve.get)


def base_lr(plan: Plan, cells: dict) -> float | None:
    return best(sweep(plan, cells, "mup", plan.base))


def ratios(coord: dict[str, Any]) -> dict[str, float]:
    """Per layer: its size at the widest width over its size at the narrowest."""
    lo, hi = (coord["sizes"][str(coord["widths"][i])] for i in (0, -1))
    return {layer: hi[layer] / lo[layer] for layer in lo}


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def target(text: str, measured: Any, ok: bool | None, **more: Any) -> dict[str, Any]:
    """A target's entry in the summary; ok is None while its figure is missing."""
    return {"target": text, "measured": measured, **more, "pass": ok}


def check(value: float | None, lo: float = -math.inf, hi: float = math.inf) -> bool | None:
    return None if value is None else lo <= value <= hi


def summarize(plan: Plan, cells: dict, coords: dict[str, Any], data: str) -> dict[str, Any]:
    lr0, widths, top = base_lr(plan, cells), plan.widths, plan.widths[-1]
    loss = {w: mean_loss(plan, cells, "mup", w, lr0) for w in widths}
    sweeps = {plan.base: sweep(plan, cells, "mup", plan.base),  # SP at m = 1 is µP
              top: sweep(plan, cells, "sp", top)}
    sp_lr = {w: best(c) for w, c in sweeps.items()}
    sp_loss = {w: None if sp_lr[w] is None else sweeps[w][sp_lr[w]] for w in sweeps}
    gap = minus(loss[top], sp_loss[top])
    steps = {f"{a}->{b}": minus(loss[a], loss[b]) for a, b in zip(widths, widths[1:])}
    least = None if None in steps.values() else min(steps.values())
    r = {p: ratios(c) for p, c in coords.items()}
    growth = {p: max(r[p].values()) if p in r else None for p in ("mup", "sp")}
    worst = max(r["mup"].values(), key=lambda x: abs(math.log(x))) if "mup" in r else None
    done, total = len(cells) + len(coords), 2 + len(plan.keys(base_lr=0.0))
    edges = (plan.lrs[0], plan.lrs[-1])
    notes = [f"{who} lr {lr:g} is at the edge of the grid {edges[0]:g}..{edges[1]:g}"
             for who, lr in (("µP's base", lr0), (f"SP's best at {top}", sp_lr[top]))
             if lr in edges]
    return {
        "mup": {"base_lr": lr0, "loss_by_width": {str(w): v for w, v in loss.items()},
                "gap_to_sp_best": gap,
                "base_sweep": {f"{k:.6g}": v for k, v in sweeps[plan.base].items()}},
        "sp": {"best_lr_by_width": {str(w): v for w, v in sp_lr.items()},
               "best_loss_by_width": {str(w): v for w, v in sp_loss.items()},
               "sweeps": {str(w): {f"{k:.6g}": v for k, v in c.items()}
                          for w, c in sweeps.items()},
               "swept_widths": sorted(sweeps), "base_width_runs": "µP's (m = 1: the same model)"},
        "coord_check": {"mup_growth": growth["mup"], "sp_growth": growth["sp"],
                        "ratio_by_layer": r, "steps": COORD_STEPS, "lr": COORD_LR,
                        "sizes": {p: c["sizes"] for p, c in coords.items()}},
        "targets": {
            "wider_is_better": target(
                f"µP at the base lr: val_loss falls >= {TARGET_STEP} at every width step",
                steps, check(least, lo=TARGET_STEP), least=least),
            "gap_to_sp_best": target(f"<= {TARGET_GAP}", gap, check(gap, hi=TARGET_GAP)),
            "coord_check_mup_growth": target(
                f"under µP every layer within {TARGET_FLAT:g}x from the narrowest width to "
                f"the widest", growth["mup"], check(worst, 1 / TARGET_FLAT, TARGET_FLAT),
                worst_layer_ratio=worst)},
        "complete": done == total, "cells": {"done": done, "total": total},
        "note": f"complete: {total} cells" if done == total else
                f"incomplete: {done} of {total} cells", "notes": notes,
        "data": data, "tokens": plan.tokens, "seeds": len(plan.seeds), "widths": widths,
        "n_layer": plan.n_layer, "n_head": N_HEAD, "lrs": plan.lrs}


def markdown(s: dict[str, Any]) -> str:
    def f(v: Any, spec: str = ".3f") -> str:
        return "—" if v is None else format(v, spec)

    m, sp, t, c = s["mup"], s["sp"], s["targets"], s["coord_check"]
    lines = [f"# µP: wider is better at the base lr, and as good as SP tuned ({s['note']})\n",
             (f"{s['n_layer']} layers, {s['tokens']:,} tokens a run, {s['seeds']} seed(s), "
              f"{s['data']}; µP's base lr (best of its sweep at width {s['widths'][0]}): "
              f"{f(m['base_lr'], 'g')}.\n"),
             "| width | µP at the base lr | SP's best lr | SP's best loss |", "|---|---|---|---|"]
    lines += [f"| {w} | {f(m['loss_by_width'][w])} | {f(sp['best_lr_by_width'].get(w), 'g')} | "
              f"{f(sp['best_loss_by_width'].get(w))} |" for w in map(str, s["widths"])]
    lines += ["", (f"gap_to_sp_best: {f(m['gap_to_sp_best'], '+.3f')}. Coordinate check, "
                   f"largest size ratio widest/narrowest: µP {f(c['mup_growth'], '.2f')}x, "
                   f"SP {f(c['sp_growth'], '.2f')}x."), "", "| target | measured | pass |",
              "|---|---|---|"]
    lines += [f"| {name}: {v['target']} | {f(v.get('least', v['measured']), '.3f')} | "
              f"{v['pass']} |" for name, v in t.items()]
    return "\n".join(lines + [f"\n{n}." for n in s["notes"]]) + "\n"


def plot_sweeps(s: dict[str, Any]) -> Any:
    """µP's base sweep (= SP's at the base width), SP's sweep at the largest width and µP's
    transferred runs: a bare matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    ax = (fig := Figure(figsize=(6, 4))).subplots()
    for w, curve in s["sp"]["sweeps"].items():
        pts = sorted((float(k), v) for k, v in curve.items() if v is not None)
        if pts:
            who = "µP = SP" if int(w) == s["widths"][0] else "SP"
            ax.plot(*zip(*pts), marker="o", ms=3, label=f"{who}, width {w}")
    lr0 = s["mup"]["base_lr"]
    for w, v in s["mup"]["loss_by_width"].items():
        if v is not None and int(w) != s["widths"][0]:
            ax.plot([lr0], [v], marker="*", ms=10, ls="", label=f"µP at the base lr, width {w}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="val_loss (whole split, seed mean)",
           title=s["note"])
    ax.set_xticks(s["lrs"], [f"{x:g}" for x in s["lrs"]])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_coords(coords: dict[str, Any]) -> Any:
    """Activation size per layer against width, one panel per parametrization."""
    from matplotlib.figure import Figure

    axes = (fig := Figure(figsize=(9, 3.8))).subplots(1, 2, sharey=True)
    for ax, param in zip(axes, ("sp", "mup")):
        c = coords[param]
        for layer in c["sizes"][str(c["widths"][0])]:
            ax.plot(c["widths"], [c["sizes"][str(w)][layer] for w in c["widths"]], marker="o",
                    ms=3, label=layer)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="n_embd", title=f"{param}: after {c['steps']} Adam steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean |coordinate|")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- main

def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # one line, no traceback
    return 2


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="widths 32 64 128, 2 layers, 40 steps (~20 s)")
    cli.add_data(p, "a text file or a nanoGPT data folder")
    p.add_argument("--out", metavar="DIR", help="folder of the cells, summary and figures "
                   "(default: benchmarks/results/mup_transfer; --quick: as the other scripts)")
    p.add_argument("--widths", type=int, nargs="+", help="n_embd; the smallest is the base "
                   f"(default {FULL['widths']}; --quick {QUICK['widths']})")
    p.add_argument("--tokens", type=tokens_arg, help="tokens a run trains: 1M, 250k, ... "
                   f"(default 1M; --quick {QUICK['tokens']})")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0 .. K-1 (default 1)")
    p.add_argument("--n-layer", type=int, help="default 4; --quick 2")
    p.add_argument("--lrs", type=float, nargs="+", help=">= 5 learning rates (default "
                   f"{' '.join(f'{x:g}' for x in LRS)}; --quick "
                   f"{' '.join(f'{x:g}' for x in QUICK['lrs'])})")
    p.add_argument("--max-cells", type=int, help="run at most this many missing cells")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's; --quick 1)")
    args = p.parse_args(argv)
    pick = {k: getattr(args, k) or v for k, v in (QUICK if args.quick else FULL).items()}
    plan = Plan(**{k: sorted(set(v)) if isinstance(v, list) else v for k, v in pick.items()},
                seeds=list(range(args.seeds)))
    if len(plan.lrs) < 5 or len(plan.widths) < 2 or args.seeds < 1 or \
            any(w % N_HEAD for w in plan.widths):
        return fail(f"need 5 --lrs or more, 2 --widths or more (multiples of {N_HEAD}) and "
                    f"--seeds >= 1")
    if not cli.have_data(args.data):
        return 2
    out = cli.out_folder(args, "mup_transfer")
    if out is None:
        return 2
    import torch

    from tune_gpt.data import prepare
    from tune_gpt.errors import UserError

    if threads := args.threads or (1 if args.quick else None):
        torch.set_num_threads(threads)  # tiny models: a 2nd thread only spins on a busy machine
    try:
        data = prepare(args.data)
    except UserError as e:
        return fail(str(e))
    cells = load(plan, out)
    if other := {c.get("data") for c in cells.values() if c["data_sha256"] != data.sha256}:
        return fail(f"the cells in {out / 'cells_v2'} were trained on other data "
                    f"({other.pop()}); pass --out another folder")
    coords = {q: c for q in ("sp", "mup")
              if (c := saved_cell(plan.coord_path(out, q), COORD_KEYS))}
    skipped, ran = len(cells) + len(coords), 0
    budget = math.inf if args.max_cells is None else args.max_cells
    for param in ("sp", "mup"):
        if param not in coords and ran < budget:
            coords[param] = run_coord(plan, param, data.vocab_size)
            write_json(plan.coord_path(out, param), coords[param])
            ran += 1
    while ran < budget and (todo := [k for k in plan.keys(base_lr(plan, cells))
                                     if k not in cells]):
        cells[todo[0]] = cell = run_cell(todo[0], plan, data)
        write_json(path := plan.cell_path(out, todo[0]), cell, indent=1)
        ran += 1
        print(f"{path.stem}: val_loss {cell['val_loss']}, {cell['wall_s']:.0f} s", flush=True)
    print(f"cells: {skipped} skipped (saved before), {ran} run", flush=True)
    s = summarize(plan, cells, coords, args.data)
    md = markdown(s)
    written = [*write_summary(out / "summary.json", s, md, indent=1), out / "lr_sweeps.png"]
    write_figure(plot_sweeps(s), written[-1], dpi=110)
    if len(coords) == 2:
        written.append(out / "coord_check.png")
        write_figure(plot_coords(coords), written[-1], dpi=110)
    if args.json:
        written += write_summary(args.json, s, md, indent=1)
    print(f"{md}\nwritten: {', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
