"""Benchmark: how report generation and MLflow logging grow with the number of trials.

    python benchmarks/scaling.py                  # 50, 100, 500 trials
    python benchmarks/scaling.py --quick          # 20 trials (a few seconds; used by a test)
    python benchmarks/scaling.py --json out.json           # + out.md beside it

Synthetic results (a realistic mix of outcomes and loss curves), so no training is run:
the report's `build_report` (pure: tables in, markdown + figures out) is timed on them, and
the search's MLflow logging (`TrialRunLogger`, one nested run per trial, a metric batch per
evaluation) is timed against MLflow's embedded SQLite store.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import write_summary  # noqa: E402

EVALS = 10


def synthetic(n: int, seed: int = 0):
    """n trials of a beginner-like CPU search: outcomes, configs and val/train curves."""
    import numpy as np
    import pandas as pd

    from tune_gpt.config import TrainConfig

    rng = np.random.default_rng(seed)
    rows, curves = [], []
    for i in range(n):
        cfg = TrainConfig(batch_size=int(rng.choice([12, 16, 24])), n_layer=int(rng.integers(4, 7)),
                          n_embd=int(rng.choice([128, 192, 256])),
                          learning_rate=float(math.exp(rng.uniform(math.log(1e-3), math.log(6e-3)))))
        tpi = cfg.batch_size * cfg.block_size
        rung = int(rng.choice([2, 4, EVALS], p=[0.5, 0.25, 0.25]))
        outcome = "completed" if rung == EVALS else "stopped_early"
        quality = 1.6 + 0.3 * rng.random() + abs(math.log(cfg.learning_rate / 3e-3)) * 0.1
        val = []
        for k in range(1, rung + 1):
            tokens = k * 300_000
            v = quality + 2.5 * math.exp(-k / 2.5)
            t = v - 0.02 * k / EVALS
            val.append(v)
            curves.append({"trial_id": f"t{i:04d}", "iter": tokens // tpi, "tokens": tokens,
                           "train_loss": t, "val_loss": v, "lr": cfg.learning_rate,
                           "tokens_per_s": 8000 * 128 / cfg.n_embd, "ms_per_iter": 100.0,
                           "mfu": 0.3, "peak_mem_bytes": 5e8, "elapsed_s": 40.0 * k,
                           "eval_s": 2.0 * k})
        rows.append({"trial_id": f"t{i:04d}", "outcome": outcome, "error": "",
                     **cfg.to_dict(), "tokens_per_iter": tpi, "iters": rung * 300_000 // tpi,
                     "tokens": rung * 300_000, "best_val_loss": min(val),
                     "final_val_loss": val[-1], "final_train_loss": val[-1] - 0.02,
                     "tokens_per_s": 8000 * 128 / cfg.n_embd, "ms_per_iter": 100.0, "mfu": 0.3,
                     "peak_mem_bytes": 5e8, "est_mem_bytes": 4.5e8, "wall_s": 40.0 * rung,
                     "eval_s": 2.0 * rung, "n_params": 1e6, "rescue_of": "", "vocab_size": 65})
    meta = {"name": f"synthetic-{n}", "metric": "val_loss", "mode": "min", "profile": "cpu",
            "device": "cpu", "sampler": {"type": "tpe", "seed": 0},
            "scheduler": {"type": "asha", "time_attr": "tokens", "grace_period": 600_000,
                          "reduction_factor": 2, "max_t": 3_000_000, "brackets": 1},
            "params": {"batch_size": {"choice": [12, 16, 24]}, "n_layer": {"int": [4, 6]},
                       "n_embd": {"int": [128, 256], "step": 64},
                       "learning_rate": {"loguniform": [1e-3, 6e-3]}},
            "fixed": {"block_size": 64}, "budget": {"num_samples": n},
            "resources": {"cpu": 1, "gpu": 0}, "data": "shakespeare_char", "wall_s": 900.0,
            "importances": {}}
    return pd.DataFrame(rows), pd.DataFrame(curves), meta


def time_report(n: int) -> float:
    from tune_gpt.report import build_report

    trials, curves, meta = synthetic(n)
    t0 = time.perf_counter()
    build_report(trials, curves, meta)
    return time.perf_counter() - t0


def time_mlflow(n: int, folder: Path) -> tuple[float, int]:
    from tune_gpt import tracking

    trials, curves, _ = synthetic(n)
    uri = tracking.default_tracking_uri(folder)
    t0 = time.perf_counter()
    parent = tracking.start_parent(uri, f"scaling-{n}", f"scaling-{n}", {}, {}, [], folder)
    logger = tracking.TrialRunLogger(uri, None, parent)
    for row in trials.to_dict("records"):
        config = {k: row[k] for k in ("batch_size", "n_layer", "n_embd", "learning_rate")}
        for ev in curves[curves.trial_id == row["trial_id"]].to_dict("records"):
            logger.log_result(row["trial_id"], row["trial_id"], config, ev)
        logger.finish(row["trial_id"], row["trial_id"], config, row["outcome"], ev, "done")
    return time.perf_counter() - t0, len(curves)


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick="20 trials (a few seconds)")
    p.add_argument("--trials", type=int, nargs="+", default=[50, 100, 500],
                   help="trial counts to time (default 50 100 500)")
    args = p.parse_args(argv)
    sizes = [20] if args.quick else args.trials
    rows = []
    with tempfile.TemporaryDirectory(prefix="tg-scaling-") as tmp:
        for n in sizes:
            rep = time_report(n)
            mlf, evals = time_mlflow(n, Path(tmp) / f"s{n}")
            rows.append({"trials": n, "report_s": round(rep, 2), "mlflow_logging_s": round(mlf, 2),
                         "mlflow_ms_per_eval": round(1000 * mlf / evals, 1)})
            print(json.dumps(rows[-1]), flush=True)
    md = "\n".join([f"# Scaling: report and MLflow logging ({os.cpu_count()} CPUs)", "",
                    "| trials | report s | MLflow logging s | MLflow ms per logged eval |",
                    "|---|---|---|---|"]
                   + [f"| {r['trials']} | {r['report_s']} | {r['mlflow_logging_s']} | "
                      f"{r['mlflow_ms_per_eval']} |" for r in rows]) + "\n"
    print("\n" + md)
    if args.json:
        write_summary(args.json, {"machine": os.uname().nodename, "rows": rows}, md, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
