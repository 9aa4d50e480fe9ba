"""Benchmark: under µP, is wider better at base-tuned hyperparameters, and as good as SP tuned?

    python benchmarks/mup_transfer.py --data PATH --widths 128 256 512 --tokens 1M --seeds 1 \\
        --json OUT.json   # the full run, resumable, in benchmarks/results/mup_transfer/
    python benchmarks/mup_transfer.py --max-cells 2   # at most 2 missing cells (0: summary only)
    python benchmarks/mup_transfer.py --quick         # a smoke run (~30 s) that a test calls

GPTs of 4 layers and 4 heads at the widths (n_embd) of --widths, the smallest the base, train
--tokens tokens on --data (batches of 12 x 64, warmup a tenth, cosine to lr/10), scored on the
WHOLE validation split (diverged: ln(vocab)):
  1. the coordinate check (tune_gpt.mup.coord_check: 4 Adam steps at 1e-2), SP and µP;
  2. µP at the base width at every lr of LRS (2.5e-4 .. 8e-3, doubling) x every point of MULTS
     (mup_output_mult, mup_init_mult, mup_attn_mult): the base point, the (lr, mults) of the
     lowest loss, is chosen there only. MULTS, coarse and log-spaced: (4^t, 2^t, 2^t) at t = 0
     (the default, always in the grid), 1, 1.5 (the probe's (8, 2.83, 2.83)), 2 (beyond);
  3. µP at every wider width at exactly the base point (hidden lr / m, Adam eps / m, attention
     1/d_head), and at the best lr among the (1, 1, 1) points (loss_by_width_default_mults);
  4. SP at the largest width at every lr (at the base width: step 2's runs at (1, 1, 1), as µP
     at m = 1 with multipliers 1 is SP). Steps 2-4 run seeds 0 .. --seeds-1; figures: means.

The full run (--widths 128 256 512 --tokens 1M --seeds 1) is 36 cells (2 coordinate checks,
6 x 4 µP runs at 128, 2 + 2 at 256 and 512, 6 SP at 512), ~50 min alone on the 2 cores, as
much again per further seed. Cells: OUT/cells_v2/, named by parametrization, width, base
width, layers, tokens, lr, µP's multipliers (-o8-i2.83-a2.83), seed; a rerun reads them.

Targets: (a) µP at the base point gains >= 0.02 nats at every step to the next width; (b)
gap_to_sp_best = µP's loss at the largest width - SP's best there <= 0.02; (c) under µP every
layer's activation size at the widest width is within 2x of the narrowest (mup_growth, beside
sp_growth). Selection works against (a) and (b): the base loss is a minimum, so is SP's best.
OUT/summary.{json,md} (also to --json; "incomplete: M of T cells" while cells are missing) and
the figures are rebuilt from the cells present. OUT: --out DIR, else beside --json OUT.json.
"""

from __future__ import annotations

import argparse
import contextlib
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

Mults = tuple[float, float, float]              # µP's (output, init, attn) multipliers
Point = tuple[float, Mults]                     # (lr, mults): where µP trains every width
Key = tuple[str, int, float, Mults, int]        # (param, width, lr, mults, seed)
MULT_NAMES = ("output", "init", "attn")         # TrainConfig's mup_{name}_mult
ONE: Mults = (1.0, 1.0, 1.0)                    # the defaults; SP's runs carry them too
MULTS: list[Mults] = [ONE, (4.0, 2.0, 2.0), (8.0, 2.83, 2.83), (16.0, 4.0, 4.0)]
LRS = [2.5e-4 * 2 ** k for k in range(6)]       # 2.5e-4 .. 8e-3: SP's 512 to µP's 128 optimum
FULL = {"widths": [128, 256, 512], "n_layer": 4, "tokens": 1_000_000, "lrs": LRS, "mults": MULTS}
# Tiny widths, 40 steps of 12 x 64 tokens, 2 multiplier points: checks the script, not figures.
QUICK = {"widths": [32, 64, 128], "n_layer": 2, "tokens": 30_720,
         "lrs": [2e-3 * 2 ** k for k in range(5)], "mults": [ONE, (8.0, 2.83, 2.83)]}
N_HEAD = 4
COORD_STEPS, COORD_LR = 4, 1e-2   # tune_gpt.mup's defaults: SP's growth shows after 4 steps
TARGET_STEP = 0.02   # (a) nats gained at every step to the next width, at least
TARGET_GAP = 0.02    # (b) µP-transferred minus SP-best at the largest width, at most
TARGET_FLAT = 2.0    # (c) µP coordinate sizes, widest / narrowest, within this factor
CELL_KEYS = ("param", "width", "lr", "seed", "val_loss", "diverged", "data_sha256")
COORD_KEYS = ("param", "widths", "sizes")


def tag(m: Mults) -> str:
    """(8, 2.83, 2.83) -> "o8-i2.83-a2.83": in cell names and the summary's keys."""
    return "-".join(f"{n[0]}{v:g}" for n, v in zip(MULT_NAMES, m))


@dataclass(frozen=True)
class Plan:
    widths: list[int]    # sorted: the first is the base width
    n_layer: int
    tokens: int          # a run's, as --tokens says (the runs train whole batches up to it)
    lrs: list[float]     # sorted
    seeds: list[int]
    mults: list[Mults]   # sorted, ONE among them

    @property
    def base(self) -> int:
        return self.widths[0]

    def cell_path(self, out: Path, key: Key) -> Path:
        param, width, lr, mults, seed = key   # SP has no multipliers: none in its name
        m = f"-{tag(mults)}" if param == "mup" else ""
        return out / "cells_v2" / (f"{param}-w{width}-b{self.base}-L{self.n_layer}-"
                                   f"t{self.tokens}-lr{lr:.3e}{m}-s{seed}.json")

    def coord_path(self, out: Path, param: str) -> Path:
        ws = "-".join(map(str, self.widths))
        return out / "cells_v2" / f"coord-{param}-w{ws}-L{self.n_layer}.json"

    def keys(self, *points: Point | None) -> list[Key]:
        """The runs in the order they run: base grid, transfer at each known point, SP's."""
        return list(dict.fromkeys(  # once: the default point may be the base point
            [("mup", self.base, lr, m, s) for s in self.seeds for m in self.mults
             for lr in self.lrs]
            + [("mup", w, *p, s) for p in points if p for s in self.seeds for w in self.widths[1:]]
            + [("sp", self.widths[-1], lr, ONE, s) for s in self.seeds for lr in self.lrs]))


def tokens_arg(text: str) -> int:
    """1000000, 1e6, 1M or 250k."""
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    with contextlib.suppress(ValueError):
        if (n := int(float(text[:-1] if mult > 1 else text) * mult)) > 0:
            return n
    raise argparse.ArgumentTypeError(f"not a positive token count: {text!r} (e.g. 1M)")


def mults_arg(text: str) -> Mults:
    """"8,2.83,2.83": mup_output_mult, mup_init_mult, mup_attn_mult."""
    with contextlib.suppress(ValueError):
        if len(m := tuple(map(float, text.split(",")))) == 3 and all(0 < x < math.inf for x in m):
            return m  # type: ignore[return-value]
    raise argparse.ArgumentTypeError(f"not 3 positive multipliers OUTPUT,INIT,ATTN: {text!r}")


def run_cell(key: Key, plan: Plan, data) -> dict[str, Any]:
    from tune_gpt.config import TrainConfig
    from tune_gpt.evaluate import whole_split_loss
    from tune_gpt.train import train

    param, width, lr, mults, seed = key
    iters = math.ceil(plan.tokens / TrainConfig().tokens_per_iter())
    cfg = TrainConfig(dataset=data.source, n_layer=plan.n_layer, n_head=N_HEAD, n_embd=width,
                      max_iters=iters, eval_interval=iters, eval_iters=1, lr_decay_iters=iters,
                      warmup_iters=max(1, iters // 10), learning_rate=lr, min_lr=lr / 10,
                      parametrization=param, mup_base_width=plan.base, seed=seed, device="cpu",
                      **{f"mup_{n}_mult": v for n, v in zip(MULT_NAMES, mults)})
    scored: list[float] = []

    def on_eval(record, checkpointer) -> None:  # the last evaluation: score the whole split
        if record.iter == iters and not record.diverged:
            scored.append(whole_split_loss(checkpointer.model, data.val_path, cfg.block_size)[0])

    r = train(cfg, data=data, on_eval=on_eval)
    loss = scored[0] if scored and math.isfinite(scored[0]) else None
    return {"param": param, "width": width, "lr": lr, "mults": dict(zip(MULT_NAMES, mults)),
            "seed": seed, "val_loss": loss, "diverged": loss is None, "tokens": r.tokens,
            "vocab_size": data.vocab_size, "tokens_per_s": round(r.final.tokens_per_s),
            "wall_s": round(r.wall_s, 1), "data": data.source, "data_sha256": data.sha256,
            "config": cfg.to_dict()}


def load(plan: Plan, out: Path) -> dict[Key, dict[str, Any]]:
    """The saved cells of the plan (the transfer's are known once the base grid's are)."""
    cells: dict[Key, dict[str, Any]] = {}
    for _ in range(2):
        cells |= {k: c for k in plan.keys(*points(plan, cells)) if k not in cells
                  and (c := saved_cell(plan.cell_path(out, k), CELL_KEYS))}
    return cells


def mean_loss(plan: Plan, cells: dict, param: str, width: int, point: Point | None) -> Any:
    """Mean over seeds (a diverged run: ln(vocab)); None unless every seed's cell is there."""
    got = [point and cells.get((param, width, *point, s)) for s in plan.seeds]
    return None if None in got else statistics.fmean(
        math.log(c["vocab_size"]) if c["val_loss"] is None else c["val_loss"] for c in got)


def sweep(plan: Plan, cells: dict, param: str, width: int, m: Mults | None = ONE) -> dict:
    """Loss by lr at the multipliers m (every loss None while m is)."""
    return {lr: mean_loss(plan, cells, param, width, m and (lr, m)) for lr in plan.lrs}


def best(curve: dict) -> Any:
    """The grid point (an lr, an (lr, mults)) of the lowest loss; None while one is missing."""
    return None if None in curve.values() else min(curve, key=curve.get)


def points(plan: Plan, cells: dict) -> tuple[Point | None, Point | None]:
    """The base point (the best of the base width's grid) and the best at mults ONE."""
    grid = {(lr, m): v for m in plan.mults
            for lr, v in sweep(plan, cells, "mup", plan.base, m).items()}
    return best(grid), best({p: v for p, v in grid.items() if p[1] == ONE})


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def target(text: str, measured: Any, value: Any, lo=-math.inf, hi=math.inf, **more: Any) -> dict:
    """A target's entry in the summary: pass if lo <= value <= hi, None while value is."""
    return {"target": text, "measured": measured, **more,
            "pass": None if value is None else lo <= value <= hi}


def summarize(plan: Plan, cells: dict, coords: dict[str, Any], data: str) -> dict[str, Any]:
    (p0, pd), widths, top = points(plan, cells), plan.widths, plan.widths[-1]
    (lr0, m0), by_lr = p0 or (None, None), lambda c: {f"{k:.6g}": v for k, v in c.items()}
    loss, loss_d = ({str(w): mean_loss(plan, cells, "mup", w, p) for w in widths}
                    for p in (p0, pd))
    sweeps = {plan.base: sweep(plan, cells, "mup", plan.base), top: sweep(plan, cells, "sp", top)}
    sp_lr = {w: best(c) for w, c in sweeps.items()}
    sp_loss = {w: None if sp_lr[w] is None else sweeps[w][sp_lr[w]] for w in sweeps}
    gap = minus(loss[str(top)], sp_loss[top])
    steps = {f"{a}->{b}": minus(loss[str(a)], loss[str(b)]) for a, b in zip(widths, widths[1:])}
    least = None if None in steps.values() else min(steps.values())
    r = {p: {layer: c["sizes"][str(c["widths"][-1])][layer] / size   # widest / narrowest
             for layer, size in c["sizes"][str(c["widths"][0])].items()} for p, c in coords.items()}
    growth = {p: max(r[p].values()) if p in r else None for p in ("mup", "sp")}
    worst = max(r["mup"].values(), key=lambda x: abs(math.log(x))) if "mup" in r else None
    # the transfer runs at p0 and at pd: counted once only when they are known to be the same
    runs = (len(widths) - 1) * len(plan.seeds) * (1 if p0 and p0 == pd else 2)
    done, total = len(cells) + len(coords), 2 + len(plan.keys()) + runs
    notes = [f"{who} lr {lr:g} is at the edge of the grid {plan.lrs[0]:g}..{plan.lrs[-1]:g}"
             for who, lr in (("µP's base", lr0), (f"SP's best at {top}", sp_lr[top]))
             if lr in (plan.lrs[0], plan.lrs[-1])]
    if len(plan.mults) > 2 and m0 in (plan.mults[0], plan.mults[-1]):
        notes.append(f"µP's base mults {tag(m0)} are at the edge of the grid "
                     f"{tag(plan.mults[0])}..{tag(plan.mults[-1])}")
    return {
        "mup": {"base_lr": lr0, "base_mults": m0 and dict(zip(MULT_NAMES, m0)),
                "loss_by_width": loss, "gap_to_sp_best": gap,
                "base_sweep": by_lr(sweep(plan, cells, "mup", plan.base, m0)),
                "base_grid": {tag(m): by_lr(sweep(plan, cells, "mup", plan.base, m))
                              for m in plan.mults},
                "base_lr_default_mults": pd and pd[0], "loss_by_width_default_mults": loss_d},
        "sp": {"best_lr_by_width": {str(w): v for w, v in sp_lr.items()},
               "best_loss_by_width": {str(w): v for w, v in sp_loss.items()},
               "sweeps": {str(w): by_lr(c) for w, c in sweeps.items()},
               "swept_widths": sorted(sweeps), "base_width_runs": "µP's at mults 1 (= SP)"},
        "coord_check": {"mup_growth": growth["mup"], "sp_growth": growth["sp"],
                        "ratio_by_layer": r, "steps": COORD_STEPS, "lr": COORD_LR,
                        "sizes": {p: c["sizes"] for p, c in coords.items()}},
        "targets": {
            "wider_is_better": target(
                f"µP at the base point: val_loss falls >= {TARGET_STEP} at every width step",
                steps, least, lo=TARGET_STEP, least=least),
            "gap_to_sp_best": target(f"<= {TARGET_GAP}", gap, gap, hi=TARGET_GAP),
            "coord_check_mup_growth": target(
                f"under µP every layer within {TARGET_FLAT:g}x from the narrowest width to "
                f"the widest", growth["mup"], worst, 1 / TARGET_FLAT, TARGET_FLAT,
                worst_layer_ratio=worst)},
        "complete": done == total, "cells": {"done": done, "total": total},
        "note": f"complete: {total} cells" if done == total else
                f"incomplete: {done} of {total} cells", "notes": notes,
        "data": data, "tokens": plan.tokens, "seeds": len(plan.seeds), "widths": widths,
        "n_layer": plan.n_layer, "n_head": N_HEAD, "lrs": plan.lrs, "mults": plan.mults}


def markdown(s: dict[str, Any]) -> str:
    def f(v: Any, spec: str = ".3f") -> str:
        return "—" if v is None else format(v, spec)

    m, sp, t, c = s["mup"], s["sp"], s["targets"], s["coord_check"]
    m0 = m["base_mults"] and tag(tuple(m["base_mults"].values()))
    lines = [f"# µP: wider is better at the base point, and as good as SP tuned ({s['note']})\n",
             (f"{s['n_layer']} layers, {s['tokens']:,} tokens a run, {s['seeds']} seed(s), "
              f"{s['data']}; µP's base point (best of {len(s['lrs'])} lrs x {len(s['mults'])} "
              f"mults at width {s['widths'][0]}): lr {f(m['base_lr'], 'g')}, mults {m0 or '—'}; "
              f"at mults 1, lr {f(m['base_lr_default_mults'], 'g')}.\n"),
             "| width | µP at the base point | µP, mults 1 | SP's best lr | SP's best loss |",
             "|---|---|---|---|---|"]
    lines += [f"| {w} | {f(m['loss_by_width'][w])} | {f(m['loss_by_width_default_mults'][w])} "
              f"| {f(sp['best_lr_by_width'].get(w), 'g')} | {f(sp['best_loss_by_width'].get(w))} |"
              for w in map(str, s["widths"])]
    lines += ["", (f"gap_to_sp_best: {f(m['gap_to_sp_best'], '+.3f')}. Coordinate check, "
                   f"largest size ratio widest/narrowest: µP {f(c['mup_growth'], '.2f')}x, SP "
                   f"{f(c['sp_growth'], '.2f')}x."), "", "| target | measured | pass |",
              "|---|---|---|"]
    lines += [f"| {name}: {v['target']} | {f(v.get('least', v['measured']), '.3f')} | "
              f"{v['pass']} |" for name, v in t.items()]
    return "\n".join(lines + [f"\n{n}." for n in s["notes"]]) + "\n"


def plot_sweeps(s: dict[str, Any]) -> Any:
    """µP's base grid and wider runs, SP's sweeps: a bare matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    ax = (fig := Figure(figsize=(6.5, 4.3))).subplots()
    m, base, top = s["mup"], s["widths"][0], str(s["widths"][-1])
    for label, curve in [*((f"µP {k}, width {base}" + " (= SP)" * (k == tag(ONE)), c)
                           for k, c in m["base_grid"].items()), (f"SP, width {top}",
                                                                 s["sp"]["sweeps"][top])]:
        if pts := sorted((float(k), v) for k, v in curve.items() if v is not None):
            ax.plot(*zip(*pts), marker="o", ms=3, ls="--" if "µP" in label else "-", label=label)
    for lr, losses, mark, at in ((m["base_lr"], m["loss_by_width"], "*", "the base point"), (
            m["base_lr_default_mults"], m["loss_by_width_default_mults"], "X", "mults 1")):
        for w, v in losses.items():
            if v is not None and int(w) != base:
                ax.plot([lr], [v], marker=mark, ms=9, ls="", label=f"µP at {at}, width {w}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="val_loss (whole split, seed mean)",
           title=s["note"], xticks=s["lrs"], xticklabels=[f"{x:g}" for x in s["lrs"]])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_coords(coords: dict[str, Any]) -> Any:
    """Activation size per layer against width, one panel per parametrization."""
    from matplotlib.figure import Figure

    axes = (fig := Figure(figsize=(9, 3.8))).subplots(1, 2, sharey=True)
    for ax, c in zip(axes, (coords["sp"], coords["mup"])):
        for layer in (sizes := c["sizes"])[str(c["widths"][0])]:
            ax.plot(c["widths"], [sizes[str(w)][layer] for w in c["widths"]], "o-", ms=3,
                    label=layer)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="n_embd", title=f"{c['param']}: after {c['steps']} Adam steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean |coordinate|")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # one line, no traceback
    return 2


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="widths 32 64 128, 2 layers, 40 steps, 2 mults (~30 s)")
    cli.add_data(p, "a text file or a nanoGPT data folder")
    cli.add_out(p, "mup_transfer", "cells, summary and figures")
    p.add_argument("--widths", type=int, nargs="+", help="n_embd; the smallest is the base "
                   f"(default {FULL['widths']}; --quick {QUICK['widths']})")
    p.add_argument("--tokens", type=tokens_arg, help="tokens a run trains: 1M, 250k, ... "
                   f"(default 1M; --quick {QUICK['tokens']})")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0 .. K-1 (default 1)")
    p.add_argument("--n-layer", type=int, help="default 4; --quick 2")
    p.add_argument("--lrs", type=float, nargs="+", help=">= 5 learning rates (default "
                   f"{' '.join(f'{x:g}' for x in LRS)}; --quick {QUICK['lrs'][0]:g} x 2^k)")
    p.add_argument("--mults", type=mults_arg, nargs="+", metavar="O,I,A", help="µP's base "
                   "multiplier points (mup_output,init,attn_mult; 1,1,1 always among them; "
                   f"default {' '.join(','.join(f'{v:g}' for v in m) for m in MULTS)})")
    p.add_argument("--max-cells", type=int, default=math.inf,
                   help="run at most this many missing cells")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's; --quick 1)")
    args = p.parse_args(argv)
    pick = {k: getattr(args, k) or v for k, v in (QUICK if args.quick else FULL).items()}
    plan = Plan(**{k: sorted({*v, ONE} if k == "mults" else set(v)) if isinstance(v, list)
                   else v for k, v in pick.items()}, seeds=list(range(args.seeds)))
    if len(plan.lrs) < 5 or len(plan.widths) < 2 or args.seeds < 1 or \
            any(w % N_HEAD for w in plan.widths):
        return fail(f"need >= 5 --lrs, >= 2 --widths (multiples of {N_HEAD}) and --seeds >= 1")
    if not cli.have_data(args.data) or (out := cli.out_folder(args, "mup_transfer")) is None:
        return 2
    import torch

    from tune_gpt.data import prepare
    from tune_gpt.errors import UserError
    from tune_gpt.mup import coord_check
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
    coords = {q: c for q in ("sp", "mup") if (c := saved_cell(plan.coord_path(out, q), COORD_KEYS))}
    skipped, ran, budget = len(cells) + len(coords), 0, args.max_cells
    for q in ("sp", "mup"):
        if q not in coords and ran < budget:
            sizes = coord_check(plan.widths, q, steps=COORD_STEPS, lr=COORD_LR,
                                n_layer=plan.n_layer, n_head=N_HEAD, vocab_size=data.vocab_size)
            coords[q] = {"param": q, "widths": plan.widths, "n_layer": plan.n_layer,
                         "steps": COORD_STEPS, "lr": COORD_LR,
                         "sizes": {str(w): v for w, v in sizes.items()}}
            write_json(plan.coord_path(out, q), coords[q])
            ran += 1
    while ran < budget and (todo := [k for k in plan.keys(*points(plan, cells)) if k not in cells]):
        saved = saved_cell(path := plan.cell_path(out, todo[0]), CELL_KEYS)
        if saved and saved["data_sha256"] == data.sha256:  # a key known only now (a point
            cells[todo[0]], skipped = saved, skipped + 1    # moved by new cells): not rerun
            continue
        cells[todo[0]] = cell = run_cell(todo[0], plan, data)
        write_json(path, cell, indent=1)
        ran += 1
        print(f"{path.stem}: val_loss {cell['val_loss']}, {cell['wall_s']:.0f} s", flush=True)
    print(f"cells: {skipped} skipped (saved before), {ran} run", flush=True)
    md = markdown(s := summarize(plan, cells, coords, args.data))
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
