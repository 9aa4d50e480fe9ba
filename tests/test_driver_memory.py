"""The search driver's memory per trial: what Ray Tune keeps of a
finished trial is cut to what is read again. A real Ray Tune `Trial`, fed results the way
the controller feeds them; benchmarks/search_overhead.py measures the driver as a whole."""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from tune_gpt.search.driver_memory import CompactFinishedTrials

# a result of the trial contract's size: ~30 numeric keys, as a real trial reports
KEYS = ["tokens_per_iter", "vocab_size", "n_params", "est_mem_bytes", "flops_per_token",
        "memory_limit_bytes", "pid", "threads", "iter", "train_loss", "lr", "tokens_per_s",
        "ms_per_iter", "mfu", "peak_mem_bytes", "elapsed_s", "eval_s", "best_val_loss",
        "wall_s", "flops", "time_s", "time_this_iter_s", "time_total_s",
        "time_since_restore", "iterations_since_restore"]


def _trial(reports: int = 8):
    from ray.tune.experiment.trial import Trial

    trial = Trial("gpt_trainable", stub=True, config={"learning_rate": 1e-3})
    for i in range(1, reports + 1):
        trial.update_last_result({**{k: float(i * 7 + n) for n, k in enumerate(KEYS)},
                                  "val_loss": 3.0 - i / 10, "tokens": 1000.0 * i,
                                  "training_iteration": i, "outcome": "running"})
    return trial


def _kib_per_trial(make, n: int = 40) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make() for _ in range(n)]
    for t in kept:
        t.get_json_state()  # as Ray's experiment checkpoint does, which caches the JSON
    gc.collect()
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return size / n / 1024


def test_a_finished_trial_keeps_only_what_is_read_again() -> None:
    cb = CompactFinishedTrials(["val_loss", "tokens"])
    trial = _trial()
    best = dict(trial.metric_analysis["val_loss"])
    _, meta_before = trial.get_json_state()
    cb.on_trial_complete(0, [trial], trial)
    assert set(trial.metric_analysis) == set(trial.metric_n_steps) == \
        {"val_loss", "tokens", "training_iteration"}
    # what Ray ranks trials by (ExperimentAnalysis reads metric_analysis[metric][scope])
    assert trial.metric_analysis["val_loss"] == best and best["min"] == 3.0 - 8 / 10
    assert trial.last_result["mfu"] == 8 * 7 + KEYS.index("mfu")  # the result itself stays
    # the JSON Ray saves with the experiment, read from the metadata again (not a stale cache)
    _, meta_after = trial.get_json_state()
    assert set(json.loads(meta_after)["metric_analysis"]) == set(trial.metric_analysis)
    assert len(meta_after) < len(meta_before) / 3


def test_an_errored_trial_that_is_restarted_counts_afresh() -> None:
    cb = CompactFinishedTrials(["val_loss", "tokens"])
    trial = _trial()
    cb.on_trial_error(0, [trial], trial)
    # resume_errored restarts it: Ray updates every key again, the dropped ones start over
    trial.update_last_result({"val_loss": 1.5, "tokens": 9000.0, "mfu": 0.5,
                              "training_iteration": 9})
    assert trial.metric_analysis["val_loss"]["min"] == 1.5
    assert trial.metric_analysis["mfu"]["last"] == 0.5
    assert list(trial.metric_n_steps["mfu"]["5"]) == [0.5]


def test_the_compacted_trial_takes_a_fraction_of_the_memory() -> None:
    cb = CompactFinishedTrials(["val_loss", "tokens"])

    def compacted():
        trial = _trial()
        cb.compact(trial)
        return trial

    full, small = _kib_per_trial(_trial), _kib_per_trial(compacted)
    assert small < full / 2, (full, small)


ARENA_PROBE = r"""
import ctypes, ctypes.util, os, sys, tempfile, threading
sys.path.insert(0, sys.argv[1])
from tune_gpt.search.driver_memory import limit_malloc_arenas
limited = limit_malloc_arenas() if sys.argv[2] == "limit" else False
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
go = threading.Barrier(12)
def work():
    go.wait()                     # all at once, as the driver's threads start
    for _ in range(200):
        libc.malloc(4096)         # kept: the arena stays in use
threads = [threading.Thread(target=work) for _ in range(12)]
for t in threads: t.start()
for t in threads: t.join()
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
print(limited, open(path).read().count("<heap nr="))
"""


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    """(whether the limit was set, glibc's arenas in use) after a dozen threads allocated."""
    out = subprocess.run([sys.executable, "-c", ARENA_PROBE, str(Path(__file__).parents[1]),
                          mode], capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items()
                                 if k != "MALLOC_ARENA_MAX"}, **env}).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc arenas")
def test_the_driver_threads_share_two_malloc_arenas() -> None:
    limited, arenas = _arenas("limit")
    assert limited == "True" and arenas <= 2, arenas
    # without the limit, a dozen threads that allocate at once get arenas of their own
    assert _arenas("none")[1] > 2
    # a MALLOC_ARENA_MAX the user set is kept
    limited, arenas = _arenas("limit", MALLOC_ARENA_MAX="4")
    assert limited == "False" and 2 < arenas <= 4
