"""The replay command, as `python benchmarks/replay.py` and
`python benchmarks/search_efficiency.py --replay` both run it.

Both scripts define --methods, --seeds, --budget-fraction, --data, --quick and --json
themselves (search_efficiency shares them with its real mode); `add_replay_args` adds the
options only the replay has, and `run` reads them all from the parsed arguments.

--table is the folder `record_curves.py --out` wrote (or its curves.jsonl). When the table
says its data (table.json), --data must be that data (same sha256), or the replay stops with
one line: figures of a table are figures of the data it was recorded on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.common.efficiency import MANUAL_RUNS
from benchmarks.common.output import write_summary
from benchmarks.common.replay.methods import METHODS, load_methods_from
from benchmarks.common.replay.report import markdown, run_replay
from benchmarks.common.replay.recording import CURVES, data_identity, data_mismatch
from benchmarks.common.replay.table import DEFAULT_TABLE, Table

SEEDS, QUICK_SEEDS = 30, 2


def add_replay_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The replay's own options; `prefix` starts each help line (e.g. "--replay: ")."""
    p.add_argument("--table", metavar="DIR", default=None,
                   help=f"{prefix}the folder record_curves.py --out wrote, or its "
                        f"curves.jsonl (default benchmarks/results/replay); its table.json "
                        f"says the data it was recorded on, which --data must be")
    p.add_argument("--clock", choices=("time", "tokens"), default="time",
                   help=f"{prefix}a trial's reports come at its recorded wall times (time) "
                        f"or at equal token rates (tokens)")
    p.add_argument("--methods-from", nargs="+", default=[], metavar="MODULE",
                   help=f"{prefix}import these modules first (they call "
                        f"benchmarks.common.replay.methods.register_method)")
    p.add_argument("--partial-manual", action="store_true",
                   help=f"{prefix}run even if the table has fewer manual lines than the "
                        f"guide's nine (budget and target would be off)")


def replay_seeds(seeds: list[int] | None, quick: bool = False) -> list[int]:
    """--seeds: none = 0..29 (0..1 with --quick); one number N = 0..N-1; several = those."""
    if seeds is None:
        return list(range(QUICK_SEEDS if quick else SEEDS))
    return list(range(seeds[0])) if len(seeds) == 1 else list(seeds)


def run(args: argparse.Namespace) -> int:
    """Every method over many seeds on the recorded curves; prints the table, and writes
    the summary to --json (its markdown beside it) when given."""
    load_methods_from(args.methods_from)
    methods = list(METHODS) if args.methods is None else args.methods
    seeds = replay_seeds(args.seeds, args.quick)
    if not seeds:
        print("error: --seeds: no seeds (one number N means seeds 0..N-1)", file=sys.stderr)
        return 2
    path = Path(args.table) if args.table else DEFAULT_TABLE
    if path.is_dir():
        path = path / CURVES
    if not path.is_file():
        print(f"error: no curves table at {path}; record it with benchmarks/record_curves.py",
              file=sys.stderr)
        return 2
    table = Table.load(path)
    if table.meta is None:
        print(f"{path}: no table.json beside it: read as the full plan on tinyshakespeare, "
              f"--data not checked", flush=True)
    else:
        data = getattr(args, "data", None)
        if not data or not Path(data).exists():
            print(f"error: no data at {data}; pass --data {table.meta['data']['path']} (the "
                  f"data {path.parent} was recorded on)", file=sys.stderr)
            return 2
        wrong = data_mismatch(table.meta, data_identity(data))
        if wrong:
            print(f"error: the table {path.parent} was {wrong}; pass --data "
                  f"{table.meta['data']['path']}, or record a table for {data} (benchmarks/"
                  f"record_curves.py --data {data} --grid quick --out DIR)", file=sys.stderr)
            return 2
    from benchmarks.common.replay.methods import set_data

    # the data the rule-based priors read (default_rules): the table's own, or tinyshakespeare
    set_data(getattr(args, "data", None) if table.meta is not None else
             getattr(args, "data", None) or str(Path(__file__).resolve().parents[4] /
                                                "shared" / "data" / "shakespeare_char" /
                                                "input.txt"), table.factor)
    print(f"table {path}: plan {table.plan} (fidelity {table.factor:g}), {len(table.grid)} of "
          f"{table.grid_size} grid configs, {len(table.manual)} manual lines; budget "
          f"{table.manual_tokens / 1e6:.2f}M tokens (full-length), target "
          f"{table.manual_best:.4f}", flush=True)
    if len(table.manual) < MANUAL_RUNS and not args.partial_manual:
        print(f"error: {len(table.manual)} of the {MANUAL_RUNS} manual runs "
              f"recorded: budget and target are not the manual sweeps' yet "
              f"(--partial-manual runs anyway)", file=sys.stderr)
        return 2
    try:
        summary = run_replay(methods, seeds, table, clock=args.clock,
                             budget_fraction=args.budget_fraction,
                             progress=lambda m: print(m, flush=True))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    md = markdown(summary)
    print()
    print(md)
    if args.json:
        written = write_summary(args.json, summary, md, indent=1)
        print(f"written: {written[0]}, {written[1]}")
    return 0
