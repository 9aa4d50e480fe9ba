"""The driver hands freed heap pages back to the OS after each trial (search/memory.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tune_gpt.search.memory import ReleaseFreedMemory


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_returns_memory_that_was_freed_but_kept_by_the_allocator() -> None:
    # 25k blocks of 16 KiB on the heap (malloc, under its mmap threshold), each followed by
    # a small block that stays: freeing the big ones leaves holes that free() cannot give
    # back (they are not at the heap's top), the fragmentation a long-running driver builds
    # up. malloc_trim returns the whole pages inside the holes.
    blocks, pins = [], []
    for _ in range(25_000):
        blocks.append(bytes(16 * 1024))
        pins.append(bytes(700))
    before_free = _rss_mib()
    del blocks
    kept = _rss_mib()
    ReleaseFreedMemory().on_trial_complete(0, [], None)
    after = _rss_mib()
    assert before_free - kept < 100, (before_free, kept)  # free() alone kept the holes
    assert kept - after > 200, (before_free, kept, after)  # trim returned ~350 of ~400 MiB
    del pins
