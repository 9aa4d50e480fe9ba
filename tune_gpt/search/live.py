"""The live view of a search in the terminal (a Ray Tune callback in the driver): a few
readable lines instead of Ray's tables, and the time left (search/eta.py); and the summary
printed when the search ends (`print_summary`).

The callback must pickle (Ray stores it with the experiment so that `Tuner.restore` can bring
it back), so the clock and the stream are rebuilt lazily after a restore.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from tune_gpt import trial as outcomes
from tune_gpt.search.eta import Run, area, expected_tokens_left, makespan, survival
from tune_gpt.trial import outcome_of


def short_config(config: dict[str, Any], tuned: list[str]) -> str:
    parts = []
    for k in tuned:
        v = config.get(k)
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def _fmt_secs(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


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
    Between reports the estimate counts down with `clock` (seconds; injectable for tests).

    The search's final run (search/final.py) is one trial that may continue an explored
    trial's state (`start_tokens`: counted as already there, not as speed) and, under a time
    budget, fits its own length to a `deadline` (a time.time(); retime.Retimer): its time
    left is the deadline's, read on `wall`. A token cap or an overfitting cut can end it
    sooner; the line cannot know that in advance. Resumed, the run keeps the length it had
    been given (trainables/gpt.py, final_retimer), and its line goes back to that length."""

    def __init__(self, num_samples: int, tuned: list[str], metric: str,
                 concurrency: int, time_budget_s: float | None, every_s: float = 30.0,
                 stream: Any = None, total_tokens: int | None = None,
                 clock: Callable[[], float] = time.monotonic, quiet: bool = False,
                 deadline: float | None = None, start_tokens: float = 0.0,
                 wall: Callable[[], float] = time.time):
        self.num_samples = num_samples
        self.tuned = tuned
        self.metric = metric
        self.concurrency = max(1, concurrency)
        self.time_budget_s = time_budget_s
        self.every_s = every_s
        self.stream = stream
        self.quiet = quiet          # print nothing (kept across a restore; no file to close)
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
        self.deadline, self.start_tokens, self.wall = deadline, float(start_tokens), wall
        self._setups = 0            # driver sessions so far (setup runs once in each)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["stream"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a view pickled by an older version (a search resumed after an upgrade)
        self.__dict__.update({"deadline": None, "start_tokens": 0.0, "wall": time.time,
                              "_setups": 1, **state})

    def setup(self, **info):
        # After a restore (tune-gpt resume) the clock readings of the dead driver mean
        # nothing here: keep the time the search had used (Ray's time budget does the
        # same) and forget the running trials, which start again.
        self._before_s = self._elapsed_s
        if self._setups:  # a resumed final run keeps the length it had: no deadline now
            self.deadline = None
        self._setups += 1
        self._start = self.clock()
        self._last_print = -math.inf
        self._runs.clear()
        self._tokens_at_start = sum(self._tokens.values())  # > 0 after a restore

    def _out(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.stream or sys.stdout, flush=True)

    def _run(self, trial: Any) -> Run:
        if trial.trial_id not in self._runs:
            now = self.clock()
            tokens = self._tokens.get(trial.trial_id, self.start_tokens)
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
        if self.deadline:  # the run fits its length to it
            return max(0.0, self.deadline - self.wall())
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


def print_summary(say: Callable[..., None], name: str, best: dict[str, Any] | None,
                  counts: dict[str, int], wall: float, folder: Any, report: Any,
                  space: Any, confirm: dict[str, Any] | None = None,
                  final: dict[str, Any] | None = None) -> None:
    wall += final["wall_s"] if final else 0.0  # both phases
    say(f"\nsearch '{name}' done in {wall / 60:.1f} min: " +
        ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in counts.items() if n))
    if best:
        while_ = " while exploring" if final else ""  # the final model is named below
        say(f"best {best['metric']}{while_}: {best['value']:.4f} (trial {best['trial_id']})")
        shown = [k for k in space.params if k in best["config"]]
        shown += [k for d in space.group_params().values() for v in d.values for k in v
                  if k not in shown]
        say("best config: " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in ((k, best["config"][k]) for k in dict.fromkeys(shown))))
    else:
        say("no trial produced a usable result")
    if confirm and confirm.get("winner"):
        for c in confirm["configs"]:
            spread = f" ± {c['std']:.4f}" if c["n"] > 1 else ""
            say(f"confirm {c['trial_id']}: {confirm['metric']} {c['mean']:.4f}{spread} over "
                f"{c['n']} run(s)")
        real = confirm.get("winner_is_real")
        verdict = "beats the runner-up by more than the seed noise" if real else \
            "is within the seed noise of the runner-up" if real is False else \
            "cannot be compared with the runner-up (too few runs)"
        say(f"confirmed winner {confirm['winner']} {verdict}"
            + (f" (gap {confirm['gap']:.4f}, noise {confirm['noise']:.4f} per run)"
               if real is not None else ""))
    if final and final.get("trained_nothing"):
        say(f"final run: it ended before its first evaluation (its time ran out), so it "
            f"trained nothing kept; the model handed back is trial {final['of']}'s best from "
            f"exploring, {final['best_val_loss']:.4f} {space.metric} after "
            f"{final['tokens']:,.0f} tokens; a larger budget gives the final run time to train")
    elif final and final.get("best_val_loss") is not None:
        pred = final.get("predicted")
        say(f"final model: {final['best_val_loss']:.4f} {space.metric} after "
            f"{final['tokens']:,.0f} tokens of trial {final['of']}'s config"
            + (f" (predicted {pred:.4f})" if pred is not None else "") + "; exploring took "
            f"{final['explore']['wall_s'] / 60:.1f} min, the final run "
            f"{final['wall_s'] / 60:.1f} min")
        if final.get("checkpoint"):
            say(f"model:   {final['checkpoint']} (tune-gpt sample / tune-gpt eval take it)")
    say(f"results: {folder / 'results'}")
    if report:
        say(f"report:  {report}")
