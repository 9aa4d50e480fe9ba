"""The replay's table of recorded learning curves, and the world a proposal lives in.

- **The world.** A sampler's proposal (continuous values in `efficiency.SEARCH_PARAMS`)
  snaps to the nearest config present in the table: each knob is normalised over its search
  range (log scale for learning_rate and batch_size, linear for n_layer and n_embd) and the
  Euclidean nearest config is taken; ties go to the smaller value (n_layer 3 -> 2, 5 -> 4).
  A partial table works: proposals snap among the configs present. `coarseness()` says how
  far proposals move.
- **Reports** are what the real trainable (`trainables/gpt.py`) reports at each recorded
  evaluation: `tokens`, `val_loss`, `train_loss`, `outcome` ("running", "completed" at the
  last one, "diverged" with val_loss = ln(vocab)+1 if a loss is NaN/inf or the training
  loss exploded past 3 ln(vocab)). The table evaluates every ~125k tokens, half the real
  benchmark's interval; ASHA's rungs (250k, 750k) fall on recorded points either way.
- **Budget and target** come from the table's manual lines: the budget is the sum of their
  tokens, the target is their best val_loss (the manual curve read one run after another,
  as the real benchmark reads it).
- **Plan and data** come from `table.json` beside the curves (`recording.py`): a table
  recorded at fidelity factor f is read in full-length tokens (recorded tokens / f), and
  the divergence penalty uses its data's vocabulary. A table without one is the full plan
  on tinyshakespeare (65 characters), as the first table was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common.efficiency import EXPERIMENTS, SEARCH_PARAMS
from benchmarks.common.replay.recording import CURVES, PLANS, read_meta

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TABLE = ROOT / "benchmarks" / "results" / "replay" / CURVES
METRIC, MODE, TIME_ATTR = "val_loss", "min", "tokens"
# The full plan's grid (recording.PLANS): the learning rate on a log grid with half-decade
# steps over the search's range; batch and model shape cover the search's choices (batch 16
# and 64 snap to the nearer recorded value, which the replay reports).
GRID = PLANS["full"].grid
GRID_SIZE = PLANS["full"].size                # 2 x 5 x 3 x 3 = 90
# A table without table.json is on tinyshakespeare: shakespeare_char's 65 characters.
VOCAB_SIZE = 65


def penalty_for(vocab_size: int) -> float:
    return math.log(vocab_size) + 1.0         # trainables.gpt.penalty_for


def exploded_loss(vocab_size: int) -> float:
    return 3.0 * math.log(vocab_size)         # trainables.gpt.EXPLODED_LOSS_FACTOR


PENALTY = penalty_for(VOCAB_SIZE)
EXPERIMENT_ORDER = tuple(e.removeprefix("experiment_") for e in EXPERIMENTS)
KNOBS = tuple(SEARCH_PARAMS)                  # batch_size, learning_rate, n_layer, n_embd
LOG_KNOBS = ("batch_size", "learning_rate")


@dataclass
class Curve:
    """One table line, with the reports the real trainable would make of it."""
    key: str
    kind: str
    config: dict[str, Any]
    flops_per_token: float
    tokens: int
    diverged: bool
    points: list[list[float]]
    reports: list[dict[str, Any]] = field(default_factory=list)
    experiment: str | None = None    # a manual line's sweep (efficiency.EXPERIMENTS)

    @property
    def knobs(self) -> dict[str, Any]:
        return {k: self.config[k] for k in KNOBS}


def _reports(points: list[list[float]], diverged: bool, vocab_size: int = VOCAB_SIZE
             ) -> list[dict[str, Any]]:
    """What trainables/gpt.py reports for these evaluations (see the module docstring)."""
    out = []
    penalty = penalty_for(vocab_size)
    for i, (tokens, val, train, elapsed) in enumerate(points):
        bad = not (math.isfinite(val) and math.isfinite(train)) \
            or train > exploded_loss(vocab_size)
        if bad:
            out.append({"tokens": tokens, "val_loss": penalty, "train_loss": penalty,
                        "outcome": "diverged", "elapsed_s": elapsed})
            break
        last = i == len(points) - 1 and not diverged
        out.append({"tokens": tokens, "val_loss": val, "train_loss": train,
                    "outcome": "completed" if last else "running", "elapsed_s": elapsed})
    return out


def _coords(knobs: dict[str, Any] | np.ndarray) -> np.ndarray:
    """Knob values -> normalised coordinates (each search range spans 1)."""
    out = []
    for k in KNOBS:
        lo, hi = _range(SEARCH_PARAMS[k])
        v = np.asarray(knobs[k], dtype=float)
        out.append((np.log(v) - math.log(lo)) / math.log(hi / lo) if k in LOG_KNOBS
                   else (v - lo) / (hi - lo))
    return np.stack(out, axis=-1)


def _range(d: dict[str, Any]) -> tuple[float, float]:
    """(low, high) of a SEARCH_PARAMS entry: {choice: [...]}, {loguniform: [lo, hi]}, {int: ...}."""
    if "choice" in d:
        return min(d["choice"]), max(d["choice"])
    lo, hi = d.get("loguniform") or d.get("uniform") or d["int"]
    return lo, hi


class Table:
    """The recorded curves: grid lines (what proposals snap to) and manual lines (the target)."""

    def __init__(self, lines: Iterable[dict[str, Any]], source: str = "<memory>",
                 meta: dict[str, Any] | None = None):
        self.source = source
        self.meta = meta
        meta = meta or {}
        self.plan = meta.get("plan", "full")
        self.factor = float(meta.get("factor", 1.0))   # tokens are read as recorded / factor
        self.vocab_size = int(meta.get("vocab_size", VOCAB_SIZE))
        self.grid_size = int(meta.get("grid_size", GRID_SIZE))
        curves = []
        for d in lines:
            points = [[self._full(p[0]), *p[1:]] for p in d["points"]]
            c = Curve(d["key"], d["kind"], d["config"], float(d.get("flops_per_token") or 0),
                      int(self._full(d["tokens"])), bool(d.get("diverged")), points,
                      experiment=d.get("experiment"))
            c.reports = _reports(c.points, c.diverged, self.vocab_size)
            curves.append(c)
        # Sorted, so that ties in snapping go to the smaller value whatever the record order.
        self.grid = sorted((c for c in curves if c.kind == "grid" and c.reports),
                           key=lambda c: tuple(c.config[k] for k in KNOBS))
        self.manual = sorted((c for c in curves if c.kind == "manual"), key=_guide_order)
        self._coords = _coords({k: [c.config[k] for c in self.grid] for k in KNOBS}) \
            if self.grid else np.zeros((0, len(KNOBS)))

    def _full(self, tokens: Any) -> Any:
        """Recorded tokens in full-length units (the fidelity factor undone)."""
        return tokens if self.factor == 1.0 else int(round(tokens / self.factor))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TABLE) -> Table:
        """Read a table (its folder, or its curves.jsonl with table.json beside it) that
        may still be growing: a last line cut short is skipped."""
        path = Path(path)
        if path.is_dir():
            path = path / CURVES
        lines = []
        for raw in path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return cls(lines, str(path), read_meta(path.parent))

    # -- the world
    def snap(self, proposal: dict[str, Any]) -> Curve:
        if not self.grid:
            raise ValueError(f"{self.source}: no grid configs recorded yet")
        d = ((self._coords - _coords(proposal)) ** 2).sum(axis=1)
        return self.grid[int(np.argmin(d))]

    def snap_many(self, proposals: dict[str, np.ndarray]) -> np.ndarray:
        """Index into self.grid of each proposal's snap (vectorised snap)."""
        p = _coords(proposals)
        d = ((p[:, None, :] - self._coords[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)

    def values(self) -> dict[str, list[Any]]:
        return {k: sorted({c.config[k] for c in self.grid}) for k in KNOBS}

    def coarseness(self, n: int = 20_000, seed: int = 0) -> dict[str, Any]:
        """How far proposals drawn from the search's prior move when snapped: per knob the
        largest and median distance (a factor for learning_rate and batch_size, a difference
        for n_layer and n_embd) and the share that does not move."""
        rng = np.random.default_rng(seed)
        props = prior_sample(rng, n)
        idx = self.snap_many(props)
        return {"proposals": n, "drawn_from": "the search's prior (SEARCH_PARAMS)",
                **snap_distances(props, {k: np.array([self.grid[i].config[k] for i in idx])
                                         for k in KNOBS})}

    # -- budget and target
    @property
    def manual_tokens(self) -> float:
        return float(sum(c.tokens for c in self.manual))

    def manual_curve(self) -> list[list[float]]:
        """Best val_loss so far against compute, the manual runs one after another."""
        points, spent, best = [], 0.0, math.inf
        for c in self.manual:
            for r in c.reports:
                if r["outcome"] in ("running", "completed"):
                    best = min(best, r["val_loss"])
                    points.append([spent + r["tokens"], best])
            spent += c.tokens
        return points

    @property
    def manual_best(self) -> float:
        curve = self.manual_curve()
        return curve[-1][1] if curve else math.nan


def _guide_order(c: Curve) -> tuple:
    """The guide's order: batch sweep (1,000 iters, batch 16/32/64), learning-rate sweep
    (batch 12, 1,000 iters), model-size sweep (2,000 iters). A line that names its
    experiment (record_curves.py writes it; shortened runs are not 1,000 iters) is put by it."""
    k = c.config
    if c.experiment in EXPERIMENT_ORDER:
        sweep = EXPERIMENT_ORDER.index(c.experiment)
    else:
        sweep = 0 if k.get("max_iters") == 1000 and k["batch_size"] != 12 else \
            1 if k.get("max_iters") == 1000 else 2
    return sweep, k["batch_size"], k["learning_rate"], k["n_layer"], k["n_embd"]


def prior_sample(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """n proposals from the search's prior (what RandomSampler draws from SEARCH_PARAMS)."""
    out = {}
    for k, d in SEARCH_PARAMS.items():
        if "choice" in d:
            out[k] = rng.choice(np.array(d["choice"]), n)
        elif "loguniform" in d:
            lo, hi = d["loguniform"]
            out[k] = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        else:
            lo, hi = d["int"]
            step = d.get("step", 1)
            out[k] = lo + step * rng.integers(0, (hi - lo) // step + 1, n)
    return out


def snap_distances(props: dict[str, Any], snapped: dict[str, Any]) -> dict[str, Any]:
    """Per knob, how far proposals moved to their snapped configs (see Table.coarseness)."""
    out: dict[str, Any] = {}
    for k in KNOBS:
        p, s = np.asarray(props[k], float), np.asarray(snapped[k], float)
        if k in LOG_KNOBS:
            dist, unit = np.exp(np.abs(np.log(p / s))), "factor"
            exact = dist <= 1 + 1e-9
        else:
            dist, unit = np.abs(p - s), "difference"
            exact = dist <= 1e-9
        out[k] = {"unit": unit, "max": float(dist.max()), "median": float(np.median(dist)),
                  "exact_share": float(exact.mean())}
    return out
