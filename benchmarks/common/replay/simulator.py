"""The replay's simulator: Ray Tune's own scheduler and searcher, driven from a simulated clock.

- **The objects that decide** are Ray Tune's own: `ASHAScheduler` (or `FIFOScheduler` when
  a method has none) and `OptunaSearch` wrapping an Optuna sampler, in a
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
  Ray asks the searcher again after every report (one that held back may go then); so does
  the simulator.
- **Reports** are the table's (`table._reports`), plus `training_iteration` (Ray fills it
  in; OptunaSearch reads it).
- **Clock.** `clock="time"` (default): a trial's next report comes after the wall time the
  recording took between those two evaluations (the recording also ran two 1-thread
  trainings side by side, like the real search), so big models are slow here as there.
  `clock="tokens"`: every trial advances one token per unit of time. Compute is counted in
  training tokens (FLOPs = tokens x the snapped config's flops_per_token, kept alongside).
  Compute at an evaluation = every trial's tokens trained by then (interpolated between
  reports), as `curves.search_curve` counts it in the real benchmark.
- **Budget.** The search stops when its trials' reported tokens add up to the budget.

`replay_trainable` is the other side of the check: a real Ray Tune trainable that reports
what the simulator would, so a real `Tuner.fit()` can be compared with `simulate`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.common.efficiency import CONCURRENCY
from benchmarks.common.replay.table import DEFAULT_TABLE, METRIC, MODE, Curve, Table


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
