"""The search driver's memory over many trials. Measured by
benchmarks/search_overhead.py: with both measures a driver grows ~60 KiB a trial while
trials run, against ~250 KiB without them.

- `CompactFinishedTrials`: Ray Tune keeps running statistics of every numeric result key of
  every trial for the search's lifetime; once a trial has ended only a few are read again.
- `limit_malloc_arenas`: glibc gives each thread that allocates its own malloc arena (up to
  8 per core), and the driver's threads (Ray's core worker, gRPC, the searcher) leave freed
  memory scattered over them, resident. Two arenas keep it in use.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ray.tune import Callback

ARENAS = 2


class CompactFinishedTrials(Callback):
    """Keeps the driver's memory per trial small. For every numeric
    key of every result Ray Tune keeps, per trial and for the search's lifetime, six
    running statistics, two deques of the last values and a cached JSON copy of them:
    ~70 KiB a trial of the ~100 KiB that tracemalloc saw the driver grow by per trial with
    ~30 numeric keys. Once a trial has ended only `keep` (the metric Ray ranks trials by,
    ASHA's time attribute, the iteration) are read again, so the rest goes. The two dicts
    are cut together, so a trial that `resume_errored` restarts starts them afresh."""

    def __init__(self, keep: list[str]):
        self.keep = frozenset(keep) | {"training_iteration"}

    def compact(self, trial: Any) -> None:
        meta = getattr(trial, "run_metadata", None)
        if meta is None:
            return
        # new dicts, assigned: Ray's metadata then drops its cached JSON of the old ones
        meta.metric_analysis = {k: v for k, v in meta.metric_analysis.items() if k in self.keep}
        meta.metric_n_steps = {k: v for k, v in meta.metric_n_steps.items() if k in self.keep}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        self.compact(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self.compact(trial)


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """glibc's M_ARENA_MAX for this process, as MALLOC_ARENA_MAX would set it at start-up:
    called before ray.init starts the driver's threads. A MALLOC_ARENA_MAX the user set is
    kept; other C libraries (musl, macOS) are left alone. True when the limit was set."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_ARENA_MAX = -8  # malloc.h
    return mallopt(M_ARENA_MAX, int(arenas)) == 1
