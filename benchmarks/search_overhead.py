"""Benchmark: how much of a search's wall time is spent training, and what start-up costs.

    python benchmarks/search_overhead.py --data ../shared/data/shakespeare_char/input.txt
    python benchmarks/search_overhead.py --quick            # ~1 minute smoke run
    python benchmarks/search_overhead.py --trials 8 32 --json out.json   # + out.md beside it
    python benchmarks/search_overhead.py --trials 200 500 --iters 20     # the driver at scale

A search of N trials of a fixed small model (no early stopping, so every trial trains the
same number of iterations) runs on the real stack (local Ray, Optuna, MLflow). Training
share = sum over trials of the time spent inside the training loop / (search wall time x
concurrent trial slots); per-trial overhead = the rest of the slot time, per trial. The
driver's resident memory is sampled every second while the search runs (Ray users report
it growing with the number of trials, ray#64231): its peak, and its growth per trial from
the first tenth of the trials to the end. Not a test: it prints figures; the machine's
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


def _rss_mb() -> float:
    """This process's resident memory (the search's driver), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples the driver's RSS every `every` seconds, with how many trials had started."""

    def __init__(self, runs_dir: Path, every: float = 1.0):
        import threading

        self.runs_dir, self.every, self.samples = runs_dir, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _ended(self) -> int:
        # trials started so far (their folders); with 2 slots, ended = started - 2
        return sum(1 for _ in self.runs_dir.glob("*/tune/trial_*"))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append((self._ended(), _rss_mb()))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self, trials: int) -> dict:
        if not self.samples:
            return {"driver_peak_rss_mb": round(_rss_mb(), 1)}
        peak = max(r for _, r in self.samples)
        early = [r for n, r in self.samples if n <= max(1, trials // 10)]
        late = [r for n, r in self.samples if n >= trials * 0.9]
        n0 = max(1, trials // 10)
        growth = (max(late) - max(early)) / (trials - n0) if early and late and \
            trials > n0 else float("nan")
        return {"driver_peak_rss_mb": round(peak, 1),
                "driver_rss_growth_kb_per_trial": round(growth * 1024, 1)}


def run(trials: int, iters: int, eval_interval: int, data: str, workdir: Path) -> dict:
    import pandas as pd

    from tune_gpt.search import SearchOptions, run_search

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
    return {"trials": trials, "iters_per_trial": iters, "command_wall_s": round(total, 1),
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/shakespeare_char/input.txt"))
    p.add_argument("--trials", type=int, nargs="+", default=[8, 32])
    p.add_argument("--iters", type=int, default=2500, help="iterations per trial (~30 s)")
    p.add_argument("--quick", action="store_true", help="tiny run: 4 trials of 200 iterations")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.quick:
        args.trials, args.iters = [4], 200
    os.environ.setdefault("TUNE_GPT_CACHE_DIR", tempfile.mkdtemp(prefix="tg-bench-cache-"))
    boot = startup()
    print(json.dumps({"startup": boot}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp:
        for n in args.trials:
            row = run(n, args.iters, max(1, args.iters // 5), args.data, Path(tmp))
            rows.append(row)
            print(json.dumps(row))
    md = "\n".join(
        [f"# Search overhead ({os.cpu_count()} CPUs)", "",
         f"`tune-gpt --help`: {boot['help_process_s']} s per process; `tune-gpt validate`: "
         f"{boot['validate_process_s']} s; torch imported: "
         f"{boot['help_imports_torch'] or boot['validate_imports_torch']}, ray imported: "
         f"{boot['help_imports_ray'] or boot['validate_imports_ray']}.", "",
         "| trials | iters/trial | search wall s | mean trial s | training share | overhead "
         "s/trial | start-up s | driver peak RSS MiB | driver RSS growth KiB/trial |",
         "|---|---|---|---|---|---|---|---|---|"]
        + [f"| {r['trials']} | {r['iters_per_trial']} | {r['search_wall_s']} | "
           f"{r['mean_trial_s']} | {r['training_share']:.1%} | {r['overhead_s_per_trial']} | "
           f"{r['startup_and_teardown_s']} | {r['driver_peak_rss_mb']} | "
           f"{r.get('driver_rss_growth_kb_per_trial', 'n/a')} |"
           for r in rows]) + "\n"
    print("\n" + md)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": os.uname().nodename,
                                               "cpus": os.cpu_count(), "startup": boot,
                                               "rows": rows}, indent=2))
        Path(args.json).with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
