"""The command-line shape every benchmark script shares.

    python benchmarks/NAME.py --quick             # a smoke run: a few minutes at most on 2 cores
    python benchmarks/NAME.py --json OUT.json     # the summary there, its markdown as OUT.md
    python benchmarks/NAME.py --out DIR           # a script with resumable cells: their folder

A script writes only where it is told. One that keeps resumable cells (and runs, caches,
figures) writes them to `--out DIR`; given only `--json OUT.json`, to the folder `OUT/`
beside it; given neither, to a fresh temporary folder with `--quick`, and otherwise it stops
and says which flag to pass. So nothing lands in the committed `benchmarks/results/` unless
that path was given (`--out benchmarks/results/NAME` continues the committed cells).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
# tinyshakespeare beside the checkout, as the tests find it (tests/conftest.py)
DEFAULT_DATA = Path(os.environ.get("TUNE_GPT_TEST_DATA")
                    or ROOT.parent / "shared" / "data" / "shakespeare_char" / "input.txt")


def benchmark_parser(doc: str, quick: str,
                     json: str = "write the summary here, and its markdown table beside it "
                                 "(OUT.md)") -> argparse.ArgumentParser:
    """A parser with the flags every script has: --quick (help: `quick`, what the smoke run
    does) and --json OUT. `doc` is the script's docstring: its first paragraph is the
    description, its second (the example commands) the epilog."""
    paras = (doc or "").strip().split("\n\n")
    epilog = paras[1] if len(paras) > 1 and paras[1].startswith("    ") else None
    p = argparse.ArgumentParser(description=paras[0], epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"smoke run: {quick}")
    p.add_argument("--json", metavar="OUT", default=None, help=json)
    return p


def add_data(p: argparse.ArgumentParser, what: str = "tinyshakespeare's input.txt") -> None:
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help=f"{what} (default: $TUNE_GPT_TEST_DATA, else "
                        f"../shared/data/shakespeare_char/input.txt beside the checkout)")


def have_data(path: str) -> bool:
    """True if the data (a text file, or a nanoGPT data folder) is there; otherwise says so
    in one line."""
    if Path(path).expanduser().exists():
        return True
    print(f"error: no data file or folder at {path}; pass --data PATH", file=sys.stderr)
    return False


def add_out(p: argparse.ArgumentParser, name: str, what: str = "cells, runs and summary"
            ) -> None:
    p.add_argument("--out", metavar="DIR", default=None,
                   help=f"folder of the {what}, resumable (default: OUT/ beside --json OUT.json,"
                        f" or a temporary folder with --quick; benchmarks/results/{name} "
                        f"continues the committed run)")


def out_folder(args: argparse.Namespace, name: str) -> Path | None:
    """Where a script with cells writes (see the module docstring); None, with the error
    said in one line, when the command did not say."""
    if args.out:
        return Path(args.out)
    if args.json:
        out = Path(args.json)
        return out.with_suffix("") if out.suffix else out.with_name(out.name + "_out")
    if args.quick:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-quick-"))
        print(f"--quick: writing to {folder}", flush=True)
        return folder
    print(f"error: say where to write: --out DIR (--out {RESULTS.relative_to(ROOT)}/{name} "
          f"continues the committed cells) or --json OUT.json", file=sys.stderr)
    return None
