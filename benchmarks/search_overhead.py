"""Benchmark: how much of a search's wall time is spent training, and what start-up costs.

    python benchmarks/search_overhead.py --data ../shared/data/shakespeare_char/input.txt
    python benchmarks/search_overhead.py --quick            # ~1 minute smoke run
    python benchmarks/search_overhead.py --trials 8 32 --json out.json   # + out.md beside it
    python benchmarks/search_overhead.py --trials 200 500 --iters 20     # the driver at scale
    python benchmarks/search_overhead.py --trials 200 500 --iters 20 --ab-driver-memory
        # ... each count three times, each in a fresh process: without the driver's memory
        # measures (search/driver_memory.py), with the compaction of finished trials only,
        # and with both (what a search does)

A search of N trials of a fixed small model (no early stopping, so every trial trains the
same number of iterations) runs on the real stack (local Ray, Optuna, MLflow). Training
share = sum over trials of the time spent inside the training loop / (search wall time x
concurrent trial slots); per-trial overhead = the rest of the slot time, per trial. The
driver's resident memory is sampled every second while the search runs (Ray users report
it growing with the number of trials, ray#64231): its peak, its growth per trial while
trials run (a slope; the search's end phase, which collects results and writes the report
in the same process, is reported apart as its own peak: counting it as growth once made a
one-off ~250 MiB look like ~0.5-3 MiB per trial), and its parts (heap, mapped files). Not a test: it prints figures; the machine's
noise is in them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import write_summary  # noqa: E402

SPACE = {
    "name": "overhead",
    "description": "fixed-size trials for measuring search overhead",
    "params": {"learning_rate": {"loguniform": [5.0e-4, 5.0e-3]}},
    "fixed": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "batch_size": 12,
              "eval_iters": 10, "warmup_iters": 50, "log_interval": 1000},
    "sampler": {"type": "tpe", "seed": 0},
    "scheduler": {"type": "none"},
    "budget": {"num_samples": 8, "max_concurrent_trials": 2},
    "resources": {"cpu": 1, "gpu": 0},
}


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (the search's driver), MiB: VmRSS in all, or one of
    its parts, RssAnon (heap), RssFile (mapped files), RssShmem (shared memory: Ray's
    object store as this process sees it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


PARTS = ("RssAnon", "RssFile", "RssShmem")


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of y against x (NaN with fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


class RssSampler:
    """Samples the driver's RSS every `every` seconds, with how many trials had started."""

    def __init__(self, runs_dir: Path, every: float = 1.0):
        import threading

        self.runs_dir, self.every, self.samples = runs_dir, every, []
        self.first_parts: dict[str, float] = {}  # RssAnon/RssFile/RssShmem, first sample
        self.parts: dict[str, float] = {}        # ... and the latest
        self.part_samples: list[tuple[int, dict[str, float]]] = []  # ... at every sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _ended(self) -> int:
        # trials started so far (their folders); with 2 slots, ended = started - 2
        return sum(1 for _ in self.runs_dir.glob("*/tune/trial_*"))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append((self._ended(), _rss_mb()))
            self.parts = {f: _rss_mb(f) for f in PARTS}
            self.part_samples.append((self.samples[-1][0], self.parts))
            self.first_parts = self.first_parts or self.parts

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self, trials: int) -> dict:
        """Peak RSS; the growth per trial while trials run (a least-squares slope of RSS
        against trials started, from a tenth of the trials until the last two start: the
        search's start-up and its end, which collects results, samples the best trials and
        writes the report, are left out); and the peak of that end phase on its own."""
        if not self.samples:
            return {"driver_peak_rss_mb": round(_rss_mb(), 1)}
        n0, n1 = max(1, trials // 10), trials - 2
        during = [(n, r) for n, r in self.samples if n0 <= n < n1]
        growth = _slope(during)
        # the same slope for each part: heap (RssAnon) against pages of mapped files
        # (RssFile: libraries' code and data paged in as the driver first uses them)
        part_growth = {k: round(_slope([(n, p[k]) for n, p in self.part_samples
                                        if n0 <= n < n1]) * 1024, 1) for k in PARTS}
        end = [r for n, r in self.samples if n >= trials]
        first, last = self.first_parts, self.parts
        return {"driver_peak_rss_mb": round(max(r for _, r in self.samples), 1),
                "driver_rss_during_trials_mb": [round(during[0][1], 1), round(during[-1][1], 1)]
                if during else None,
                "driver_rss_growth_kb_per_trial": round(growth * 1024, 1),
                "driver_rss_growth_kb_per_trial_by_part": part_growth,
                "driver_end_phase_peak_mb": round(max(end), 1) if end else None,
                "driver_rss_parts_mb": {k: [round(first.get(k, 0), 1), round(v, 1)]
                                        for k, v in last.items()},
                "driver_rss_by_trials": [(n, round(r, 1)) for n, r in self.samples[::10]]}


NO_COMPACT = "TUNE_GPT_BENCH_NO_COMPACT"  # set: finished trials kept as Ray keeps them
# The arms of --ab-driver-memory: (label, environment). glibc's default arena limit is 8 per
# core; a MALLOC_ARENA_MAX set from the start keeps limit_malloc_arenas from lowering it.
ARMS = [("none (Ray's and glibc's defaults)",
         {NO_COMPACT: "1", "MALLOC_ARENA_MAX": str(8 * (os.cpu_count() or 1))}),
        ("compaction", {NO_COMPACT: "", "MALLOC_ARENA_MAX": str(8 * (os.cpu_count() or 1))}),
        ("compaction + 2 malloc arenas", {NO_COMPACT: "", "MALLOC_ARENA_MAX": ""})]


def run(trials: int, iters: int, eval_interval: int, data: str, workdir: Path) -> dict:
    import pandas as pd

    from tune_gpt.search import SearchOptions, run_search

    if os.environ.get(NO_COMPACT):
        from tune_gpt.search.driver_memory import CompactFinishedTrials

        CompactFinishedTrials.compact = lambda self, trial: None  # type: ignore[method-assign]

    space = {**SPACE, "fixed": {**SPACE["fixed"], "max_iters": iters,
                                "eval_interval": eval_interval,
                                "warmup_iters": min(SPACE["fixed"]["warmup_iters"],
                                                    max(1, iters // 10))},
             "budget": {**SPACE["budget"], "num_samples": trials}}
    path = workdir / f"overhead-{trials}.yaml"
    path.write_text(yaml.safe_dump(space))
    t0 = time.time()
    with RssSampler(workdir / "runs") as rss:
        result = run_search(SearchOptions(space=str(path), data=data,
                                          name=f"overhead-{trials}",
                                          storage_path=str(workdir / "runs"), quiet=True,
                                          report=False))
    total = time.time() - t0
    df = pd.read_csv(result.folder / "results" / "trials.csv")
    train_s = float(df["wall_s"].sum())
    slots = 2
    return {"trials": trials, "iters_per_trial": iters,
            "driver_memory_measures": os.environ.get("TUNE_GPT_BENCH_ARM", "as a search runs"),
            "command_wall_s": round(total, 1),
            "search_wall_s": round(result.wall_s, 1), "sum_trial_train_s": round(train_s, 1),
            "mean_trial_s": round(train_s / max(1, len(df)), 1),
            "training_share": round(train_s / (result.wall_s * slots), 3),
            "overhead_s_per_trial": round((result.wall_s * slots - train_s) / trials, 2),
            "startup_and_teardown_s": round(total - result.wall_s, 1), **rss.figures(trials)}


def startup() -> dict:
    """Wall time of `tune-gpt --help` and `tune-gpt validate`, and whether either imports
    torch or ray (they must not: they are the commands people run to look around)."""
    import subprocess

    probe = "\n".join([
        "import sys, time",
        "t = time.perf_counter()",
        "from tune_gpt.cli import main",
        "try:",
        "    main(sys.argv[1:])",
        "except SystemExit:",
        "    pass",
        "print('\\n@@', time.perf_counter() - t, 'torch' in sys.modules, 'ray' in sys.modules)"])
    out = {}
    for name, args in (("help", ["--help"]),
                       ("validate", ["validate", str(ROOT / "search_spaces" / "beginner.yaml")])):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@")), "@@ 0 ? ?")
        _, inner, torch_in, ray_in = line.split()
        out[f"{name}_process_s"] = round(wall, 2)
        out[f"{name}_main_s"] = round(float(inner), 3)
        out[f"{name}_imports_torch"] = torch_in == "True"
        out[f"{name}_imports_ray"] = ray_in == "True"
    return out


def _parts(row: dict) -> str:
    p = row.get("driver_rss_growth_kb_per_trial_by_part")
    return f"{p['RssAnon']} / {p['RssFile']}" if p else "n/a"


def _child(trials: int, iters: int, data: str, env: dict[str, str]) -> dict:
    """One search in a fresh process (so that one arm's memory does not carry into the
    other's): its row."""
    import subprocess

    child_env = {k: v for k, v in {**os.environ, **env}.items() if v}  # "": unset
    proc = subprocess.run([sys.executable, __file__, "--one", str(trials), "--iters",
                           str(iters), "--data", data], capture_output=True, text=True,
                          env=child_env, check=True)
    return json.loads(next(ln[2:] for ln in proc.stdout.splitlines() if ln.startswith("@@")))


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="4 trials of 200 iterations (~1 minute)")
    cli.add_data(p)
    p.add_argument("--trials", type=int, nargs="+", default=[8, 32],
                   help="trial counts, one search each (default 8 32)")
    p.add_argument("--iters", type=int, default=2500, help="iterations per trial (~30 s)")
    p.add_argument("--ab-driver-memory", action="store_true",
                   help="each trial count three times, in fresh processes: without the "
                        "driver's memory measures, with the compaction only, with both")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child's run
    args = p.parse_args(argv)
    if not cli.have_data(args.data):
        return 2
    if args.one is not None:
        with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
            row = run(args.one, args.iters, max(1, args.iters // 5), args.data, Path(tmp))
        print("@@" + json.dumps(row))
        return 0
    if args.quick:
        args.trials, args.iters = [4], 200
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", tempfile.mkdtemp(prefix="tg-bench-cache-"))
    boot = startup()
    print(json.dumps({"startup": boot}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
        for n in args.trials:
            if args.ab_driver_memory:
                for label, env in ARMS:
                    rows.append(_child(n, args.iters, args.data,
                                       {**env, "TUNE_GPT_BENCH_ARM": label}))
                    print(json.dumps(rows[-1]))
                continue
            row = run(n, args.iters, max(1, args.iters // 5), args.data, Path(tmp))
            rows.append(row)
            print(json.dumps(row))
    md = "\n".join(
        [f"# Search overhead ({os.cpu_count()} CPUs)", "",
         f"`tune-gpt --help`: {boot['help_process_s']} s per process; `tune-gpt validate`: "
         f"{boot['validate_process_s']} s; torch imported: "
         f"{boot['help_imports_torch'] or boot['validate_imports_torch']}, ray imported: "
         f"{boot['help_imports_ray'] or boot['validate_imports_ray']}.", "",
         "| trials | driver memory measures | iters/trial | search wall s | mean trial s | training share | overhead "
         "s/trial | start-up s | driver peak RSS MiB | driver RSS growth KiB/trial while "
         "trials run | of which heap / mapped files | end-phase peak MiB |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        + [f"| {r['trials']} | {r['driver_memory_measures']} | {r['iters_per_trial']} | {r['search_wall_s']} | "
           f"{r['mean_trial_s']} | {r['training_share']:.1%} | {r['overhead_s_per_trial']} | "
           f"{r['startup_and_teardown_s']} | {r['driver_peak_rss_mb']} | "
           f"{r.get('driver_rss_growth_kb_per_trial', 'n/a')} | "
           f"{_parts(r)} | "
           f"{r.get('driver_end_phase_peak_mb', 'n/a')} |"
           for r in rows]) + "\n"
    print("\n" + md)
    if args.json:
        write_summary(args.json, {"machine": os.uname().nodename, "cpus": os.cpu_count(),
                                  "startup": boot, "rows": rows}, md, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
