"""What the live view needs to say how long a search has left: a Kaplan-Meier estimate of
how far a trial trains (in tokens) and the time for the remaining trials on the search's
slots. Pure functions of what the view has seen, so tests drive them with a fake clock.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass


@dataclass
class Run:
    """A trial running in this driver session, as the live view sees it."""
    started: float                 # clock() when it started (or was first seen)
    tokens0: float = 0.0           # its tokens then (> 0 when it resumes from a checkpoint)
    at: float = 0.0                # clock() of its latest report
    tokens: float = 0.0            # its tokens at that report
    cap: float = math.inf          # the tokens at which it completes (max_iters)


def survival(ended: list[float], running: list[float]) -> list[tuple[float, float]]:
    """Kaplan-Meier, in tokens: the share of trials that train past x, as the steps
    (x, share past x). Ended trials are events at their last count; running trials count
    as "at least this far" (censored). Without that, the trials that ASHA stops at its first
    rung, which also end first, make every trial look short."""
    marks = sorted([(x, True) for x in ended] + [(x, False) for x in running])
    at_risk, share, steps, i = len(marks), 1.0, [], 0
    while i < len(marks):
        x, ends, seen = marks[i][0], 0, 0
        while i < len(marks) and marks[i][0] == x:
            ends, seen, i = ends + marks[i][1], seen + 1, i + 1
        if ends:
            share *= 1 - ends / at_risk
            steps.append((x, share))
        at_risk -= seen
    return steps


def share_past(steps: list[tuple[float, float]], x: float) -> float:
    share = 1.0
    for at, s in steps:
        if at > x:
            break
        share = s
    return share


def area(steps: list[tuple[float, float]], a: float, b: float) -> float:
    """The integral of the share past x from a to b: the tokens a trial that has reached a
    can still expect to train (times its chance of reaching a), up to its cap b."""
    total, x0, share = 0.0, 0.0, 1.0
    for x, s in [*steps, (math.inf, 0.0)]:
        lo, hi = max(a, x0), min(b, x)
        total += max(0.0, hi - lo) * share
        x0, share = x, s
    return total


def expected_tokens_left(steps: list[tuple[float, float]], x: float, cap: float) -> float:
    """Expected tokens still to train for a trial at x tokens that ends by `cap` at most."""
    share = share_past(steps, x)
    return area(steps, x, cap) / share if share > 0 else max(0.0, cap - x)


def makespan(busy_s: list[float], queued: int, each_s: float, slots: int) -> float:
    """Seconds until the last trial ends: `queued` trials of `each_s` seconds each take the
    first free of `slots` slots, which the running trials hold for `busy_s` more seconds."""
    free = sorted(busy_s) + [0.0] * max(0, slots - len(busy_s))
    heapq.heapify(free)
    for _ in range(queued):
        heapq.heappush(free, heapq.heappop(free) + each_s)
    return max(free, default=0.0)
