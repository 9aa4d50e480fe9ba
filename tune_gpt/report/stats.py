"""The two statistics the report uses to say what a knob did, kept simple on purpose.

- Spearman's rank correlation rho in [-1, 1]: +1 when the metric always grows with the
  knob, -1 when it always shrinks, ~0 when there is no monotone trend. Ranks make it
  indifferent to scale (learning rates span decades) and to outliers.
- The half difference: the median metric of the trials whose knob is above its median
  minus the median of those below it, in the metric's own units ("+0.04 val_loss"), which
  says how large the effect is where rho only says how consistent it is. Medians, like
  ranks, keep one extreme trial (a huge model, a near-diverged run) from deciding it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Halves:
    """Trials split at the knob's median: `low` and `high` trial ids, each side's median metric."""

    low: list[str]
    high: list[str]
    low_median: float
    high_median: float
    threshold: float

    @property
    def diff(self) -> float:
        return self.high_median - self.low_median


def numeric(values: pd.Series) -> pd.Series:
    """Knob values as floats (bools as 0/1); non-numeric values become NaN."""
    if values.dtype == bool or values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return values.astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float)


def _finite_pairs(x: pd.Series, y: pd.Series) -> tuple[pd.Series, pd.Series]:
    x, y = numeric(x), pd.to_numeric(y, errors="coerce").astype(float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman(x: pd.Series, y: pd.Series) -> tuple[float, int]:
    """(rho, n) over the pairs where both are finite; rho is NaN when it is undefined
    (fewer than 3 pairs, or x or y constant)."""
    x, y = _finite_pairs(x, y)
    n = len(x)
    if n < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan"), n
    rx, ry = x.rank(method="average"), y.rank(method="average")  # ties share their mean rank
    return float(np.corrcoef(rx, ry)[0, 1]), n


def halves(x: pd.Series, y: pd.Series) -> Halves | None:
    """Split at the median of x: below vs above. Values equal to the median join the side
    that would otherwise be empty (e.g. [16, 16, 16, 64] -> {16} vs {64})."""
    x, y = _finite_pairs(x, y)
    if x.nunique() < 2:
        return None
    t = float(x.median())
    low, high = x < t, x > t
    if not low.any():
        low = x <= t
    if not high.any():
        high = x >= t
    return Halves(list(x.index[low]), list(x.index[high]), float(y[low].median()),
                  float(y[high].median()), t)


def pareto_front(speed: pd.Series, loss: pd.Series) -> list[str]:
    """Ids on the speed/loss Pareto front: no other point is both faster and lower-loss.
    Returned fastest first."""
    x, y = _finite_pairs(speed, loss)
    front, best = [], np.inf
    for i in x.sort_values(ascending=False, kind="stable").index:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return front
