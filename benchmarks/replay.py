"""Replay benchmark: judge search strategies over many seeds on recorded learning curves (issue 12).

    python benchmarks/search_efficiency.py --replay --seeds 30 --json OUT.json
    python benchmarks/search_efficiency.py --replay --methods asha_tpe random --seeds 0 1 2

The real search-efficiency benchmark trains every trial (~15 min per seed). This one trains
nothing: `record_curves.py` recorded once, in `results/replay/curves.jsonl`, the full learning
curves of a fixed grid of configs over the space that benchmark searches, and the nine runs of
the guide's manual sweeps. A search is replayed on that table:

- **The world.** A sampler's proposal (continuous values in `search_efficiency.SEARCH_PARAMS`)
  snaps to the nearest config present in the table: each knob is normalised over its search
  range (log scale for learning_rate and batch_size, linear for n_layer and n_embd) and the
  Euclidean nearest config is taken; ties go to the smaller value (n_layer 3 -> 2, 5 -> 4).
  A partial table works: proposals snap among the configs present. `coarseness()` says how
  far proposals move.
- **The simulator.** The objects that decide are Ray Tune's own: `ASHAScheduler` (or
  `FIFOScheduler` when a method has none) and `OptunaSearch` wrapping an Optuna sampler, in a
  `ConcurrencyLimiter` (what `Tuner` wraps a searcher in for `max_concurrent_trials`). They
  are driven from a simulated clock in this one process, without `ray.init()` (as Syne
  Tune's simulator backend does), with the calls Ray's `TuneController` makes, in its order:
  `searcher.suggest` -> `scheduler.on_trial_add` -> `scheduler.choose_trial_to_run`; per
  report `stopper` (the total-token budget, like tune-gpt's TokenBudget) else
  `scheduler.on_trial_result`, then `searcher.on_trial_result` unless STOP; when a trial ends
  (completed, diverged, stopped by ASHA or by the budget) `scheduler.on_trial_complete` and
  `searcher.on_trial_complete` with its last result. Two trials run at a time (the real
  benchmark's max_concurrent_trials). Trials are real `ray.tune.experiment.Trial` objects
  (`stub=True`: no trainable is looked up, no Ray needed); the controller argument the
  schedulers receive is `_SimController`, a stand-in with `get_trials()` /
  `get_live_trials()` (all FIFO's `choose_trial_to_run` reads; ASHA reads nothing of it).
- **Reports** are what the real trainable (`trainables/gpt.py`) reports at each recorded
  evaluation: `tokens`, `val_loss`, `train_loss`, `outcome` ("running", "completed" at the
  last one, "diverged" with val_loss = ln(vocab)+1 if a loss is NaN/inf or the training
  loss exploded past 3 ln(vocab)), plus `training_iteration` (Ray fills it in; OptunaSearch
  reads it). The table evaluates every ~125k tokens, half the real benchmark's interval;
  ASHA's rungs (250k, 750k) fall on recorded points either way.
- **Clock.** `clock="time"` (default): a trial's next report comes after the wall time the
  recording took between those two evaluations (the recording also ran two 1-thread
  trainings side by side, like the real search), so big models are slow here as there.
  `clock="tokens"`: every trial advances one token per unit of time. Compute is counted in
  training tokens (FLOPs = tokens x the snapped config's flops_per_token, kept alongside).
  Compute at an evaluation = every trial's tokens trained by then (interpolated between
  reports), as `search_efficiency.search_curve` counts it in the real benchmark.
- **Budget and target** come from the table's manual lines: the budget is the sum of their
  tokens (the search stops when its trials' reported tokens add up to it), the target is
  their best val_loss (the manual curve read one run after another, as the real benchmark
  reads it). `success` = reaching the target within 1/3 of the manual compute.

Register a method with `register_method(name, factory)`; `factory(seed)` returns
`(searcher, scheduler_or_None)`, e.g.
    register_method("tpe_only", lambda seed: (optuna_searcher(TPESampler(seed=seed)), None))
"""

from __future__ import annotations

import heapq
import importlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search_efficiency import (  # noqa: E402
    SEARCH_PARAMS,
    TARGET_FRACTION,
    best_at,
    reach,
)

DEFAULT_TABLE = ROOT / "benchmarks" / "results" / "replay" / "curves.jsonl"
METRIC, MODE, TIME_ATTR = "val_loss", "min", "tokens"
CONCURRENCY = 2                    # the real benchmark's max_concurrent_trials
TOKENS_PER_TRIAL = 2_000_000       # its budget.tokens_per_trial = ASHA's max_t
GRACE_PERIOD = TOKENS_PER_TRIAL // 8
REDUCTION_FACTOR = 3
EXPECTED_MANUAL_RUNS = 9           # len(search_efficiency.manual_plan())
GRID_SIZE = 90                     # record_curves.GRID: 2 x 5 x 3 x 3
# The table does not store the vocabulary: shakespeare_char's is 65 characters.
VOCAB_SIZE = 65
PENALTY = math.log(VOCAB_SIZE) + 1.0          # trainables.gpt.penalty_for
EXPLODED_LOSS = 3.0 * math.log(VOCAB_SIZE)    # trainables.gpt.EXPLODED_LOSS_FACTOR
KNOBS = ("batch_size", "learning_rate", "n_layer", "n_embd")
LOG_KNOBS = ("batch_size", "learning_rate")
Z95 = 1.959963984540054


# ----------------------------------------------------------------------------- the table

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

    @property
    def knobs(self) -> dict[str, Any]:
        return {k: self.config[k] for k in KNOBS}


def _reports(points: list[list[float]], diverged: bool) -> list[dict[str, Any]]:
    """What trainables/gpt.py reports for these evaluations (see the module docstring)."""
    out = []
    for i, (tokens, val, train, elapsed) in enumerate(points):
        bad = not (math.isfinite(val) and math.isfinite(train)) or train > EXPLODED_LOSS
        if bad:
            out.append({"tokens": tokens, "val_loss": PENALTY, "train_loss": PENALTY,
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

    def __init__(self, lines: Iterable[dict[str, Any]], source: str = "<memory>"):
        self.source = source
        curves = []
        for d in lines:
            c = Curve(d["key"], d["kind"], d["config"], float(d.get("flops_per_token") or 0),
                      int(d["tokens"]), bool(d.get("diverged")), d["points"])
            c.reports = _reports(c.points, c.diverged)
            curves.append(c)
        # Sorted, so that ties in snapping go to the smaller value whatever the record order.
        self.grid = sorted((c for c in curves if c.kind == "grid" and c.reports),
                           key=lambda c: tuple(c.config[k] for k in KNOBS))
        self.manual = sorted((c for c in curves if c.kind == "manual"), key=_guide_order)
        self._coords = _coords({k: [c.config[k] for c in self.grid] for k in KNOBS}) \
            if self.grid else np.zeros((0, len(KNOBS)))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TABLE) -> Table:
        """Read a table that may still be growing: a last line cut short is skipped."""
        lines = []
        for raw in Path(path).read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return cls(lines, str(path))

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
    (batch 12, 1,000 iters), model-size sweep (2,000 iters)."""
    k = c.config
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


# ----------------------------------------------------------------------------- methods

MethodFactory = Callable[[int], tuple[Any, Any]]
METHODS: dict[str, MethodFactory] = {}


def register_method(name: str, factory: MethodFactory, replace: bool = False) -> None:
    """Make `name` a method of the replay: factory(seed) -> (ray Searcher, scheduler or None)."""
    if name in METHODS and not replace:
        raise ValueError(f"method {name!r} is already registered (pass replace=True)")
    METHODS[name] = factory


def define_by_run(trial: Any) -> None:
    """The search's space for Optuna, sampled in the order tune_gpt's `suggest` samples it."""
    for name, d in SEARCH_PARAMS.items():
        if "choice" in d:
            trial.suggest_categorical(name, list(d["choice"]))
        elif "loguniform" in d:
            trial.suggest_float(name, *d["loguniform"], log=True)
        else:
            trial.suggest_int(name, *d["int"], step=d.get("step", 1))
    return None


def optuna_searcher(sampler: Any) -> Any:
    """Ray's OptunaSearch over the benchmark's space with this Optuna sampler (in memory)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(define_by_run, metric=METRIC, mode=MODE, sampler=sampler)


def asha(**overrides: Any) -> Any:
    """The real benchmark's ASHA: on tokens, grace 250k, reduction factor 3, max_t 2M."""
    from ray.tune.schedulers import ASHAScheduler

    opts = {"time_attr": TIME_ATTR, "max_t": TOKENS_PER_TRIAL, "grace_period": GRACE_PERIOD,
            "reduction_factor": REDUCTION_FACTOR} | overrides
    return ASHAScheduler(**opts)  # metric/mode come from set_search_properties, as in Tuner


def _random(seed: int) -> Any:
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe(seed: int) -> Any:
    import optuna
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


register_method("random", lambda seed: (optuna_searcher(_random(seed)), None))
register_method("asha_random", lambda seed: (optuna_searcher(_random(seed)), asha()))
register_method("asha_tpe", lambda seed: (optuna_searcher(_tpe(seed)), asha()))


def product_method(method: str) -> MethodFactory:
    """A method as tune-gpt itself builds it from the real benchmark's space
    (search_efficiency.space_for): the product's sampler factory (priors included) and its
    searcher class (stopped trials told PRUNED at their token steps), with the same ASHA."""

    def factory(seed: int) -> Any:
        from benchmarks.search_efficiency import space_for
        from tune_gpt.search.fidelity import MultiFidelityOptunaSearch
        from tune_gpt.search.optuna import make_sampler
        from tune_gpt.space import load_space

        space = load_space(f"{method}.yaml", data=space_for(method, seed, 1, 1.0, []),
                           profile="cpu")
        searcher = MultiFidelityOptunaSearch(define_by_run, metric=METRIC, mode=MODE,
                                             sampler=make_sampler(space, seed),
                                             resource_attr=TIME_ATTR, recipe_bar=GRACE_PERIOD)
        return searcher, asha()

    return factory


register_method("default", product_method("default"))
register_method("default_wrong_prior", product_method("default_wrong_prior"))


def load_methods_from(modules: Iterable[str]) -> None:
    """Import modules that call register_method (e.g. a tune_gpt module with new searchers)."""
    for m in modules:
        importlib.import_module(m)


# ----------------------------------------------------------------------------- simulator

class _SimController:
    """Stand-in for Ray's TuneController where a scheduler reads it: the trial lists."""

    def __init__(self) -> None:
        self.trials: list[Any] = []

    def get_trials(self) -> list[Any]:
        return self.trials

    def get_live_trials(self) -> list[Any]:
        from ray.tune.experiment import Trial
        return [t for t in self.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]


@dataclass
class TrialRecord:
    trial_id: str
    proposal: dict[str, Any]
    key: str
    start: float
    reports: int = 0
    tokens: float = 0.0
    flops_per_token: float = 0.0
    outcome: str = "running"     # completed | stopped_early | diverged | budget_stopped
    times: list[float] = field(default_factory=list)
    token_marks: list[float] = field(default_factory=list)


@dataclass
class SimResult:
    trials: list[TrialRecord]
    curve: list[list[float]]     # [tokens spent, best val_loss so far] (search_curve's form)
    flops: list[float]           # FLOPs spent at each curve point
    tokens_spent: float
    flops_spent: float
    sim_time: float


def simulate(table: Table, searcher: Any, scheduler: Any, budget_tokens: float,
             concurrency: int = CONCURRENCY, max_trials: int | None = None,
             clock: str = "time", id_prefix: str = "") -> SimResult:
    """Replay one search: the real searcher/scheduler decide, the table answers."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.schedulers.util import _set_search_properties_backwards_compatible
    from ray.tune.search import ConcurrencyLimiter, Searcher

    if clock not in ("time", "tokens"):
        raise ValueError(f"clock must be 'time' or 'tokens', not {clock!r}")
    scheduler = scheduler or FIFOScheduler()
    # What Tuner does: the scheduler gets TuneConfig's metric/mode; the searcher is wrapped
    # for max_concurrent_trials (its set_search_properties is only called for a param_space).
    _set_search_properties_backwards_compatible(scheduler.set_search_properties, METRIC, MODE)
    limiter = ConcurrencyLimiter(searcher, max_concurrent=concurrency)
    ctl = _SimController()
    events: list[tuple[float, int, int]] = []     # (time, seq, trial index)
    seq = 0
    now = 0.0
    trials: list[Trial] = []
    recs: list[TrialRecord] = []
    curves: list[Curve] = []
    last: list[dict[str, Any]] = []
    spent: dict[str, float] = {}                  # latest reported tokens (the stopper)
    finished = False                              # searcher finished or budget reached
    history: list[tuple[float, float]] = []       # (time, val_loss) of usable reports

    def dt(c: Curve, i: int) -> float:
        prev = c.reports[i - 1] if i else {"tokens": 0.0, "elapsed_s": 0.0}
        key = "elapsed_s" if clock == "time" else "tokens"
        return max(float(c.reports[i][key]) - float(prev[key]), 1e-9)

    def end(i: int, outcome: str) -> None:
        t = trials[i]
        # TuneController.stop_trial on a RUNNING trial, with its last result
        scheduler.on_trial_complete(ctl, t, dict(last[i]))
        limiter.on_trial_complete(t.trial_id, result=dict(last[i]))
        t.set_status(Trial.TERMINATED)
        recs[i].outcome = outcome

    def fill() -> None:
        nonlocal seq, finished
        running = sum(t.status == Trial.RUNNING for t in trials)
        while not finished and running < concurrency and \
                (max_trials is None or len(trials) < max_trials):
            trial_id = f"{id_prefix}{len(trials):05d}"
            cfg = limiter.suggest(trial_id)
            if cfg == Searcher.FINISHED:
                finished = True
                break
            if cfg is None:
                break
            c = table.snap(cfg)
            t = Trial("replay", config=cfg, trial_id=trial_id, stub=True)
            trials.append(t)
            ctl.trials.append(t)
            curves.append(c)
            last.append({})
            recs.append(TrialRecord(trial_id, dict(cfg), c.key, now,
                                    flops_per_token=c.flops_per_token,
                                    times=[now], token_marks=[0.0]))
            scheduler.on_trial_add(ctl, t)
            chosen = scheduler.choose_trial_to_run(ctl)
            if chosen is not None:
                j = trials.index(chosen)
                chosen.set_status(Trial.RUNNING)
                recs[j].start = recs[j].times[0] = now
                heapq.heappush(events, (now + dt(curves[j], 0), seq, j))
                seq += 1
                running += 1

    fill()
    if not events and not finished:
        raise RuntimeError("the searcher proposed nothing with no trial running (Ray would wait "
                           "forever here)")
    while events:
        now, _, i = heapq.heappop(events)
        t, c, rec = trials[i], curves[i], recs[i]
        r = c.reports[rec.reports]
        rec.reports += 1
        result = {"tokens": r["tokens"], METRIC: r["val_loss"], "train_loss": r["train_loss"],
                  "outcome": r["outcome"], "training_iteration": rec.reports,
                  "trial_id": t.trial_id, "done": False}
        rec.tokens = float(r["tokens"])
        rec.times.append(now)
        rec.token_marks.append(rec.tokens)
        if r["outcome"] in ("running", "completed"):
            history.append((now, float(r["val_loss"])))
        spent[t.trial_id] = rec.tokens
        over_budget = sum(spent.values()) >= budget_tokens       # tune-gpt's TokenBudget
        if over_budget:
            decision = TrialScheduler.STOP
        else:
            decision = scheduler.on_trial_result(ctl, t, dict(result))
            if decision != TrialScheduler.STOP:
                limiter.on_trial_result(t.trial_id, dict(result))
        t.update_last_result(dict(result))
        last[i] = result
        if over_budget:
            end(i, "budget_stopped" if r["outcome"] == "running" else r["outcome"])
            for j, other in enumerate(trials):       # stop_all: the experiment ends
                if other.status == Trial.RUNNING:
                    end(j, "budget_stopped")
            events.clear()
            finished = True
            break
        if r["outcome"] != "running":
            end(i, r["outcome"])
        elif decision == TrialScheduler.STOP:
            end(i, "stopped_early")
        else:
            heapq.heappush(events, (now + dt(c, rec.reports), seq, i))
            seq += 1
            fill()  # Ray asks the searcher again on every step: one that held back may go
            continue
        fill()
        if not events and not finished and (max_trials is None or len(trials) < max_trials):
            raise RuntimeError("the searcher proposed nothing with no trial running (Ray "
                               "would wait forever here)")

    curve, flops_at = _search_curve(recs, history)
    tokens = float(sum(r.tokens for r in recs))
    flops = float(sum(r.tokens * r.flops_per_token for r in recs))
    return SimResult(recs, curve, flops_at, tokens, flops, now)


def _search_curve(recs: list[TrialRecord], history: list[tuple[float, float]]
                  ) -> tuple[list[list[float]], list[float]]:
    """Best val_loss so far against every trial's tokens (and FLOPs) trained by then."""
    if not history:
        return [], []
    times = np.array([t for t, _ in history])
    tok = np.zeros_like(times)
    flo = np.zeros_like(times)
    for r in recs:
        got = np.interp(times, r.times, r.token_marks, left=0.0)
        tok += got
        flo += got * r.flops_per_token
    best = np.minimum.accumulate(np.array([v for _, v in history]))
    return [[float(a), float(b)] for a, b in zip(tok, best)], [float(f) for f in flo]


# ----------------------------------------------------------------------------- metrics

def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def summarize_method(runs: list[SimResult], target: float, manual_tokens: float
                     ) -> dict[str, Any]:
    ratios = [reach(r.curve, target) / manual_tokens for r in runs]
    at_third = [best_at(r.curve, TARGET_FRACTION * manual_tokens) for r in runs]
    ok = [x for x in at_third if math.isfinite(x)]
    k, n = sum(x <= TARGET_FRACTION for x in ratios), len(runs)
    return {
        "seeds": n,
        "successes": k,
        "success_rate": k / n if n else math.nan,
        "success_rate_ci95": list(wilson(k, n)),
        "median_compute_ratio": float(np.median(ratios)) if ratios else math.nan,
        "best_at_third_mean": float(np.mean(ok)) if ok else math.nan,
        "best_at_third_sem": float(np.std(ok, ddof=1) / math.sqrt(len(ok)))
        if len(ok) > 1 else math.nan,
        "best_final_mean": float(np.mean([r.curve[-1][1] for r in runs if r.curve]))
        if any(r.curve for r in runs) else math.nan,
        "trials_mean": float(np.mean([len(r.trials) for r in runs])) if runs else 0.0,
        "configs_visited": len({t.key for r in runs for t in r.trials}),
        "per_seed": {"compute_ratio": ratios, "best_at_third": at_third},
    }


def run_replay(methods: list[str], seeds: list[int], table: Table, clock: str = "time",
               budget_fraction: float = 1.0, progress: Callable[[str], None] | None = None
               ) -> dict[str, Any]:
    """Every (method, seed) replayed; the summary the CLI prints and writes."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown replay method(s) {unknown}; registered: {list(METHODS)}")
    if not table.manual:
        raise ValueError(f"{table.source}: no manual lines: no budget and no target yet")
    if not table.grid:
        raise ValueError(f"{table.source}: no grid configs recorded yet")
    t0 = time.time()
    manual_tokens = table.manual_tokens
    target = table.manual_best
    budget = manual_tokens * budget_fraction
    rows = {}
    for m in methods:
        tm = time.time()
        runs = []
        for s in seeds:
            searcher, scheduler = METHODS[m](s)
            runs.append(simulate(table, searcher, scheduler, budget, clock=clock,
                                 id_prefix=f"{m}-{s}-"))
        rows[m] = summarize_method(runs, target, manual_tokens)
        props = [t.proposal for r in runs for t in r.trials]
        snapped = [table.snap(p).knobs for p in props]
        rows[m]["snap"] = snap_distances({k: [p[k] for p in props] for k in KNOBS},
                                         {k: [s[k] for s in snapped] for k in KNOBS})
        rows[m]["wall_s"] = round(time.time() - tm, 2)
        if progress:
            progress(f"{m}: {len(seeds)} seeds in {rows[m]['wall_s']:.1f} s")
    return {
        "table": table.source,
        "grid_configs_used": len(table.grid),
        "grid_configs_full": GRID_SIZE,
        "grid_values": table.values(),
        "manual_lines": len(table.manual),
        "manual_tokens": manual_tokens,
        "manual_best": target,
        "manual_curve": table.manual_curve(),
        "budget_tokens": budget,
        "target_fraction": TARGET_FRACTION,
        "clock": clock,
        "concurrency": CONCURRENCY,
        "seeds": list(seeds),
        "coarseness": table.coarseness(),
        "methods": rows,
        "wall_s": round(time.time() - t0, 2),
    }


def _f(x: float, spec: str = ".3f") -> str:
    return "never" if x == math.inf else ("n/a" if not math.isfinite(x) else format(x, spec))


def markdown(s: dict[str, Any]) -> str:
    c = s["coarseness"]
    lines = [
        "# Search efficiency, replayed on recorded curves\n",
        f"Table: {s['grid_configs_used']} of {s['grid_configs_full']} grid configs "
        f"({', '.join(f'{k} {v}' for k, v in s['grid_values'].items())}), "
        f"{s['manual_lines']} manual lines. Budget {s['budget_tokens'] / 1e6:.2f}M tokens "
        f"(the manual sweeps'); target: the manual best val_loss {s['manual_best']:.4f}, "
        f"success = reached within {s['target_fraction']:.2f} of the manual compute. "
        f"{len(s['seeds'])} seeds, {s['concurrency']} trials at a time, clock: {s['clock']}.\n",
        "| method | seeds | success | success rate [95% CI] | median compute to target "
        "(× manual) | best at 1/3 compute (mean ± se) | best at end (mean) | trials (mean) "
        "| configs visited |",
        "|---|---|---|---|---|---|---|---|---|"]
    for m, r in s["methods"].items():
        lo, hi = r["success_rate_ci95"]
        lines.append(
            f"| {m} | {r['seeds']} | {r['successes']}/{r['seeds']} | "
            f"{r['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] | "
            f"{_f(r['median_compute_ratio'], '.2f')} | {_f(r['best_at_third_mean'], '.4f')} ± "
            f"{_f(r['best_at_third_sem'], '.4f')} | {_f(r['best_final_mean'], '.4f')} | "
            f"{r['trials_mean']:.1f} | {r['configs_visited']} |")
    lines += ["", "Snapping (proposals from the prior -> nearest recorded config): " + "; ".join(
        f"{k} {'×' if v['unit'] == 'factor' else '±'}{v['max']:.3g} max, "
        f"{'×' if v['unit'] == 'factor' else '±'}{v['median']:.3g} median, "
        f"{v['exact_share']:.0%} exact"
        for k, v in c.items() if isinstance(v, dict)) + ".",
        f"\nReplay wall time: {s['wall_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def replay_trainable(config: dict[str, Any], table_path: str = str(DEFAULT_TABLE)) -> None:
    """A Ray Tune function trainable that reports a table config's recorded evaluations (the
    config a proposal snaps to): what a real trial of it would report. For checking the
    simulator against a real `Tuner.fit()`."""
    import ray.tune

    curve = Table.load(table_path).snap(config)
    for r in curve.reports:
        ray.tune.report({"tokens": r["tokens"], METRIC: r["val_loss"],
                         "train_loss": r["train_loss"], "outcome": r["outcome"],
                         "table_key": curve.key})


if __name__ == "__main__":
    from benchmarks.search_efficiency import main

    sys.exit(main(["--replay", *sys.argv[1:]]))
