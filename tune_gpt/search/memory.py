"""The driver's memory over a long search.

A search of hundreds of trials grows the driver's resident memory (ray#64231; measured in
benchmarks/search_overhead.py). Part of that growth is memory Python and Ray have already
freed, but which glibc's allocator keeps in the process: every trial's results, JSON state
and actor bookkeeping are allocated and freed in many small pieces, and the heap's free
pages are only returned when they sit at its top. `malloc_trim(0)` returns every free page
(it walks the arenas: ~1 ms for a few hundred MiB), so the driver calls it once per trial
that ends. On a C library without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from ray.tune import Callback

_libc: Any = None


def trim() -> bool:
    """Return the process's free heap pages to the OS; False where the C library cannot."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    fn = getattr(_libc, "malloc_trim", None) if _libc else None
    return bool(fn(0)) if fn is not None else False


class ReleaseFreedMemory(Callback):
    """After every trial that ends (completed, stopped, errored), trim the driver's heap."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trim()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trim()
