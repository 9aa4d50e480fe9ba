"""Ray Tune callbacks of a search: the live view in the terminal, MLflow logging, the OOM
rescue and the token budget.

Both run in the search's driver process. They must pickle (Ray stores the run config with
the experiment so that `Tuner.restore` can bring them back), so anything that cannot be
pickled (the MLflow client, the clock) is rebuilt lazily after a restore.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback, Stopper

from tune_gpt import trial as outcomes
from tune_gpt.search.optuna import RESCUE_ATTR, study_storage
from tune_gpt.tracking import TrialRunLogger
from tune_gpt.search.eta import (Run, area, expected_tokens_left, makespan,
                                 survival)
from tune_gpt.trial import TrialPlan, outcome_of


def short_config(config: dict[str, Any], tuned: list[str]) -> str:
    parts = []
    for k in tuned:
        v = config.get(k)
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def _fmt_secs(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class MLflowTrialCallback(Callback):
    """One nested MLflow run per trial: params, metric series, outcome tags."""

    def __init__(self, tracking_uri: str, parent_run_id: str, time_budget_s: float | None):
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.time_budget_s = time_budget_s
        self._logger: TrialRunLogger | None = None
        self._last: dict[str, dict[str, Any]] = {}
        self._start = time.time()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_logger"] = None
        return state

    @property
    def logger(self) -> TrialRunLogger:
        if self._logger is None:
            self._logger = TrialRunLogger(self.tracking_uri, None, self.parent_run_id)
        return self._logger

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        self._last[trial.trial_id] = result
        self.logger.log_result(trial.trial_id, str(trial), trial.config, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        last = self._last.get(trial.trial_id) or trial.last_result or {}
        outcome = outcome_of(last)
        if outcome == outcomes.STOPPED_EARLY:
            over = self.time_budget_s and time.time() - self._start >= self.time_budget_s * 0.98
            why = "search time budget reached" if over else \
                f"ASHA: below the rung cut-off at {int(last.get('tokens', 0)):,} tokens"
        elif outcome == outcomes.COMPLETED:
            why = "reached max_iters"
        else:
            why = str(last.get("error", outcome))
        self.logger.finish(trial.trial_id, str(trial), trial.config, outcome, last, why)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        last = dict(self._last.get(trial.trial_id) or trial.last_result or {})
        outcome = outcome_of(last, errored=True)
        last["error"] = last.get("error") or _error_text(trial)
        self.logger.finish(trial.trial_id, str(trial), trial.config, outcome, last,
                           f"trial process failed: {last['error']}")


def _error_text(trial: Any) -> str:
    err = getattr(trial, "error_file", None) or ""
    try:
        with open(err, encoding="utf-8") as f:
            lines = [ln for ln in f.read().strip().splitlines() if ln.strip()]
            return lines[-1][:500] if lines else "unknown error"
    except OSError:
        return "trial process failed (see the trial's error.txt)"


class LiveView(Callback):
    """A few readable lines instead of Ray's tables: counts by outcome, the best trial so
    far, elapsed time and what is left.

    Time left is the smallest of: the time budget left; the token budget left, at the rate
    the search trains; and the time the remaining trials will take. The remaining trials are
    the running ones (each for the tokens it can still expect to train, at its own speed)
    and the num_samples not yet started (each for a whole trial's expected tokens), packed
    onto `concurrency` slots. A trial's expected tokens come from the trials seen so far
    (Kaplan-Meier: how many of them trained past each count), so the trials that ASHA
    stops early weigh in as often as they happen, not as often as they have already ended.
    Between reports the estimate counts down with `clock` (seconds; injectable for tests)."""

    def __init__(self, num_samples: int, tuned: list[str], metric: str,
                 concurrency: int, time_budget_s: float | None, every_s: float = 30.0,
                 stream: Any = None, total_tokens: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.num_samples = num_samples
        self.tuned = tuned
        self.metric = metric
        self.concurrency = max(1, concurrency)
        self.time_budget_s = time_budget_s
        self.every_s = every_s
        self.stream = stream
        self.clock = clock
        self._start = clock()
        self._before_s = 0.0        # the search's time in earlier driver sessions (resume)
        self._elapsed_s = 0.0       # the search's time at the latest event
        self._last_print = -math.inf
        self._done: dict[str, str] = {}
        self._runs: dict[str, Run] = {}
        self._ended_tokens: list[float] = []     # each ended trial's last token count
        self._caps: list[float] = []             # each trial's full length in tokens
        self._work = [0.0, 0.0]                  # ended trials: tokens, trial-seconds
        self._best: tuple[float, str, str] | None = None
        self.total_tokens = total_tokens
        self._tokens: dict[str, float] = {}  # each trial's tokens trained so far
        self._tokens_at_start = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["stream"] = None
        return state

    def setup(self, **info):
        # After a restore (tune-gpt resume) the clock readings of the dead driver mean
        # nothing here: keep the time the search had used (Ray's time budget does the
        # same) and forget the running trials, which start again.
        self._before_s = self._elapsed_s
        self._start = self.clock()
        self._last_print = -math.inf
        self._runs.clear()
        self._tokens_at_start = sum(self._tokens.values())  # > 0 after a restore

    def _out(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    def _run(self, trial: Any) -> Run:
        if trial.trial_id not in self._runs:
            now = self.clock()
            tokens = self._tokens.get(trial.trial_id, 0.0)
            self._runs[trial.trial_id] = Run(started=now, tokens0=tokens, at=now,
                                              tokens=tokens)
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info):
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        run = self._run(trial)
        self._elapsed_s = self._before_s + self.clock() - self._start  # saved with the view
        if isinstance(result.get("tokens"), (int, float)):
            self._tokens[trial.trial_id] = float(result["tokens"])
            run.at, run.tokens = self.clock(), float(result["tokens"])
        per_iter, max_iters = result.get("tokens_per_iter"), trial.config.get("max_iters")
        if isinstance(per_iter, (int, float)) and isinstance(max_iters, (int, float)):
            run.cap = float(per_iter) * float(max_iters)
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and result.get("outcome") in outcomes.EVALUATED:
            if self._best is None or value < self._best[0]:
                self._best = (float(value), trial.trial_id,
                              short_config(trial.config, self.tuned))
        if self.clock() - self._last_print >= self.every_s:
            self._status(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        self._finish(trials, trial, outcome_of(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._finish(trials, trial, outcome_of(trial.last_result, errored=True))

    def _finish(self, trials: list, trial: Any, outcome: str) -> None:
        self._done[trial.trial_id] = outcome
        run = self._runs.pop(trial.trial_id, None)
        if run is not None:
            self._ended_tokens.append(run.tokens)
            self._work[0] += run.tokens - run.tokens0
            self._work[1] += self.clock() - run.started
            if run.cap < math.inf:
                self._caps.append(run.cap)
        last = trial.last_result or {}
        loss = last.get("val_loss")
        loss_text = f"val_loss {loss:.4f}" if isinstance(loss, (int, float)) else ""
        tokens = last.get("tokens")
        at = f" at {int(tokens):,} tokens" if isinstance(tokens, (int, float)) else ""
        err = f" ({last.get('error')})" if last.get("error") else ""
        self._out(f"  trial {len(self._done)}/{self.num_samples} {trial.trial_id} "
                  f"{outcome}: {loss_text}{at}{err} [{short_config(trial.config, self.tuned)}]")
        self._status(trials)

    def _status(self, trials: list) -> None:
        now = self.clock()
        self._last_print = now
        running = sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in self._done)
        counts: dict[str, int] = {}
        for o in self._done.values():
            counts[o] = counts.get(o, 0) + 1
        done = ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in sorted(counts.items())) or "none"
        elapsed = self._before_s + now - self._start
        self._elapsed_s = elapsed
        best = (f"best {self.metric} {self._best[0]:.4f} ({self._best[1]}: {self._best[2]})"
                if self._best else "best: none yet")
        eta = self.time_left(now)
        left = f"~{_fmt_secs(eta)} left" if eta == eta else "time left: after the first evaluation"
        spent = (f" | tokens {sum(self._tokens.values()) / 1e6:.2f}M of "
                 f"{self.total_tokens / 1e6:.2f}M" if self.total_tokens else "")
        self._out(f"[{_fmt_secs(elapsed)}] running {running}, finished: {done} | {best}{spent} "
                  f"| {left}")

    def time_left(self, now: float) -> float:
        """Seconds until the search ends (NaN while nothing is known): the smallest of the
        time budget left, the token budget left and the remaining trials' time."""
        this_session = max(now - self._start, 1e-9)
        bounds = [self.trials_left_s(now)]
        if self.time_budget_s:
            bounds.append(max(0.0, self.time_budget_s - self._before_s - this_session))
        used = sum(self._tokens.values())
        rate = (used - self._tokens_at_start) / this_session
        if self.total_tokens and rate > 0:  # the compute budget, at this session's rate
            bounds.append(max(0.0, self.total_tokens - used) / rate)
        known = [b for b in bounds if b == b]
        return min(known) if known else math.nan

    def trials_left_s(self, now: float) -> float:
        """Seconds until the remaining trials have run (NaN before any trial has trained)."""
        runs = list(self._runs.values())
        tokens = self._work[0] + sum(r.tokens - r.tokens0 for r in runs)
        seconds = self._work[1] + sum(r.at - r.started for r in runs)
        caps = self._caps + [r.cap for r in runs if r.cap < math.inf]
        whole = max(caps) if caps else max(self._ended_tokens, default=0.0)
        if tokens <= 0 or seconds <= 0 or whole <= 0:
            return math.nan
        speed = tokens / seconds  # tokens per second of one trial, start-up included
        # One trial that trains to the end, as a prior: before trials have ended that is all
        # the view knows, and it keeps a trial that ASHA stopped a few tokens ahead of the
        # running ones from leaving none at risk past it (Kaplan-Meier would then say every
        # trial ends there). Its weight fades as 1 / (trials ended + 1).
        steps = survival([*self._ended_tokens, whole], [r.tokens for r in runs])
        busy = []
        for r in runs:
            own = (r.tokens - r.tokens0) / (r.at - r.started) if r.at > r.started else 0.0
            cap = r.cap if r.cap < math.inf else whole
            left = expected_tokens_left(steps, r.tokens, cap) / (own or speed)
            busy.append(max(0.0, left - (now - r.at)))  # counting down since its report
        queued = max(0, self.num_samples - len(self._done) - len(runs))
        each = area(steps, 0.0, whole) / speed
        return makespan(busy, queued, each, max(self.concurrency, len(runs)))


class RescueOnOOM(Callback):
    """The guide's remedy 3 (gradient accumulation: half the memory, the same result), done
    for the user: a trial that ran out of memory is queued again in the Optuna study with
    the same sampled params, batch_size halved and gradient_accumulation_steps doubled (the
    same tokens per iteration), up to `max_rescues` times per config. The new trial records
    `rescue_of`, which links it to the original in MLflow and the report. A rescue takes
    one of the search's num_samples."""

    def __init__(self, folder: str, max_rescues: int):
        self.folder, self.max_rescues = folder, max_rescues

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        last = trial.last_result or {}
        if last.get("outcome") != outcomes.OOM:
            return
        cfg = trial.config
        plan = TrialPlan.of(cfg)
        if plan.rescue_depth >= self.max_rescues or cfg["batch_size"] < 2:
            return
        import optuna
        from pathlib import Path

        folder = Path(self.folder)
        study = optuna.load_study(study_name=folder.name, storage=study_storage(folder))
        study.enqueue_trial(dict(plan.sampled), skip_if_exists=False,
                            user_attrs={RESCUE_ATTR: {
                                "of": plan.rescue_of or trial.trial_id,
                                "batch_size": cfg["batch_size"] // 2,
                                "gradient_accumulation_steps":
                                    cfg["gradient_accumulation_steps"] * 2,
                                "depth": plan.rescue_depth + 1}})



class TokenBudget(Stopper):
    """`budget.total_tokens` (or, with attr="flops", `budget.total_flops`): stop the whole
    search once its trials together have trained that many tokens (FLOPs): the compute
    budget, counted the way the report counts it.

    Each trial reports its own running count; the sum of the latest counts is the
    compute spent. Trials stop at their next report after the budget is reached, so the
    search overshoots by at most one evaluation interval per running trial. After a
    restore (`tune-gpt resume`) the counts of trials that will not report again are read
    back from their progress.csv, so a resumed search keeps the budget it started with.
    """

    def __init__(self, total_tokens: float, tune_dir: str, attr: str = "tokens"):
        self.total_tokens = float(total_tokens)
        self.tune_dir = tune_dir
        self.attr = attr
        self.spent: dict[str, float] | None = None

    def _load(self) -> dict[str, float]:
        import csv
        from pathlib import Path

        spent: dict[str, float] = {}
        for progress in Path(self.tune_dir).glob("*/progress.csv"):
            with open(progress, newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        tokens = float(row.get(self.attr) or 0)
                    except ValueError:
                        continue
                    key = row.get("trial_id") or progress.parent.name
                    spent[key] = max(spent.get(key, 0.0), tokens)
        return spent

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self.spent is None:
            self.spent = self._load()
        tokens = result.get(self.attr)
        if isinstance(tokens, (int, float)):
            self.spent[trial_id] = max(self.spent.get(trial_id, 0.0), float(tokens))
        return self.stop_all()

    def used(self) -> float:
        return sum((self.spent or {}).values())

    def stop_all(self) -> bool:
        return self.spent is not None and self.used() >= self.total_tokens

    def __getstate__(self) -> dict[str, Any]:
        # Counted again from the trials' progress files after a restore.
        return {**self.__dict__, "spent": None}
