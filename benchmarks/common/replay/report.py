"""The replay's figures: every (method, seed) replayed and scored against the manual sweeps.

The budget is the manual sweeps' tokens (times `budget_fraction`), the target their best
val_loss (the table's manual lines, read one run after another). Per method over the seeds:
`success` = reaching the target within TARGET_FRACTION of the manual compute, with a Wilson
95% interval (a binomial proportion over few seeds); the median compute to the target (a
ratio to the manual compute; inf for a seed that never reaches it); the best val_loss at
TARGET_FRACTION of the compute, mean ± standard error; and how far its proposals snapped.
`markdown` renders the summary; it does no I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common.curves import best_at, reach
from benchmarks.common.efficiency import CONCURRENCY, TARGET_FRACTION
from benchmarks.common.replay.methods import METHODS
from benchmarks.common.replay.simulator import SimResult, simulate
from benchmarks.common.replay.table import KNOBS, Table, snap_distances

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def summarize_method(runs: list[SimResult], target: float, manual_tokens: float
                     ) -> dict[str, Any]:
    ratios = [reach(r.curve, target) / manual_tokens for r in runs]
    at_third = [best_at(r.curve, TARGET_FRACTION * manual_tokens) for r in runs]
    ok = [x for x in at_third if math.isfinite(x)]
    k, n = sum(x <= TARGET_FRACTION for x in ratios), len(runs)
    return {
        "seeds": n,
        "successes": k,
        "success_rate": k / n if n else math.nan,
        "success_rate_ci95": list(wilson(k, n)),
        "median_compute_ratio": float(np.median(ratios)) if ratios else math.nan,
        "best_at_third_mean": float(np.mean(ok)) if ok else math.nan,
        "best_at_third_sem": float(np.std(ok, ddof=1) / math.sqrt(len(ok)))
        if len(ok) > 1 else math.nan,
        "best_final_mean": float(np.mean([r.curve[-1][1] for r in runs if r.curve]))
        if any(r.curve for r in runs) else math.nan,
        "trials_mean": float(np.mean([len(r.trials) for r in runs])) if runs else 0.0,
        "configs_visited": len({t.key for r in runs for t in r.trials}),
        "per_seed": {"compute_ratio": ratios, "best_at_third": at_third},
    }


def run_replay(methods: list[str], seeds: list[int], table: Table, clock: str = "time",
               budget_fraction: float = 1.0, progress: Callable[[str], None] | None = None
               ) -> dict[str, Any]:
    """Every (method, seed) replayed; the summary the CLI prints and writes."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown replay method(s) {unknown}; registered: {list(METHODS)}")
    if not table.manual:
        raise ValueError(f"{table.source}: no manual lines: no budget and no target yet")
    if not table.grid:
        raise ValueError(f"{table.source}: no grid configs recorded yet")
    t0 = time.time()
    manual_tokens = table.manual_tokens
    target = table.manual_best
    budget = manual_tokens * budget_fraction
    rows = {}
    for m in methods:
        tm = time.time()
        runs = []
        for s in seeds:
            searcher, scheduler = METHODS[m](s)
            runs.append(simulate(table, searcher, scheduler, budget, clock=clock,
                                 id_prefix=f"{m}-{s}-"))
        rows[m] = summarize_method(runs, target, manual_tokens)
        props = [t.proposal for r in runs for t in r.trials]
        snapped = [table.snap(p).knobs for p in props]
        rows[m]["snap"] = snap_distances({k: [p[k] for p in props] for k in KNOBS},
                                         {k: [s[k] for s in snapped] for k in KNOBS})
        rows[m]["wall_s"] = round(time.time() - tm, 2)
        if progress:
            progress(f"{m}: {len(seeds)} seeds in {rows[m]['wall_s']:.1f} s")
    return {
        "table": table.source,
        "grid_configs_used": len(table.grid),
        "grid_configs_full": table.grid_size,
        "plan": table.plan,
        "fidelity_factor": table.factor,
        "data": (table.meta or {}).get("data"),
        "vocab_size": table.vocab_size,
        "grid_values": table.values(),
        "manual_lines": len(table.manual),
        "manual_tokens": manual_tokens,
        "manual_best": target,
        "manual_curve": table.manual_curve(),
        "budget_tokens": budget,
        "target_fraction": TARGET_FRACTION,
        "clock": clock,
        "concurrency": CONCURRENCY,
        "seeds": list(seeds),
        "coarseness": table.coarseness(),
        "methods": rows,
        "wall_s": round(time.time() - t0, 2),
    }


def _f(x: float, spec: str = ".3f") -> str:
    return "never" if x == math.inf else ("n/a" if not math.isfinite(x) else format(x, spec))


def _provenance(s: dict[str, Any]) -> list[str]:
    """The plan and the data, when the table says them (a table.json beside it)."""
    d, f = s.get("data"), s.get("fidelity_factor", 1.0)
    if not d:
        return []
    short = "" if f == 1.0 else (
        f" Every run, the manual sweeps' included, was recorded at {f:g} of its length; "
        f"tokens here are full-length equivalents (recorded tokens / {f:g}), and the target "
        f"is the manual sweeps' best at that length.")
    return [f"Plan `{s['plan']}` on {d['path']} (sha256 {d['sha256'][:12]}…, "
            f"{s['vocab_size']} tokens in its vocabulary).{short}\n"]


def markdown(s: dict[str, Any]) -> str:
    c = s["coarseness"]
    lines = [
        "# Search efficiency, replayed on recorded curves\n",
        f"Table: {s['grid_configs_used']} of {s['grid_configs_full']} grid configs "
        f"({', '.join(f'{k} {v}' for k, v in s['grid_values'].items())}), "
        f"{s['manual_lines']} manual lines. Budget {s['budget_tokens'] / 1e6:.2f}M tokens "
        f"(the manual sweeps'); target: the manual best val_loss {s['manual_best']:.4f}, "
        f"success = reached within {s['target_fraction']:.2f} of the manual compute. "
        f"{len(s['seeds'])} seeds, {s['concurrency']} trials at a time, clock: {s['clock']}.\n",
        *_provenance(s),
        "| method | seeds | success | success rate [95% CI] | median compute to target "
        "(× manual) | best at 1/3 compute (mean ± se) | best at end (mean) | trials (mean) "
        "| configs visited |",
        "|---|---|---|---|---|---|---|---|---|"]
    for m, r in s["methods"].items():
        lo, hi = r["success_rate_ci95"]
        lines.append(
            f"| {m} | {r['seeds']} | {r['successes']}/{r['seeds']} | "
            f"{r['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] | "
            f"{_f(r['median_compute_ratio'], '.2f')} | {_f(r['best_at_third_mean'], '.4f')} ± "
            f"{_f(r['best_at_third_sem'], '.4f')} | {_f(r['best_final_mean'], '.4f')} | "
            f"{r['trials_mean']:.1f} | {r['configs_visited']} |")
    lines += ["", "Snapping (proposals from the prior -> nearest recorded config): " + "; ".join(
        f"{k} {'×' if v['unit'] == 'factor' else '±'}{v['max']:.3g} max, "
        f"{'×' if v['unit'] == 'factor' else '±'}{v['median']:.3g} median, "
        f"{v['exact_share']:.0%} exact"
        for k, v in c.items() if isinstance(v, dict)) + ".",
        f"\nReplay wall time: {s['wall_s']:.1f} s."]
    return "\n".join(lines) + "\n"
