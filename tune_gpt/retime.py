"""A final run's length, refitted while it trains: to the time it has left, and cut short
to a cool-down once its model starts to overfit.

    retime = Retimer(until=time.time() + 600)
    new_cfg = retime(it, cfg, val_loss)   # after each evaluation; None: keep the config

The search's final phase (trainables/gpt.py) runs one; `tune_gpt.train.train(retime=...)`
calls it. Two rules, each with its evidence:

- **Time.** The plan sets the run's tokens from a speed measured while exploring, when other
  trials shared the machine, and a machine's speed moves (on budget_best's 2 shared cores
  the final runs went 1.2-1.5x faster than planned and left 1.5-2 minutes of a 14-minute
  budget unused). After each evaluation before its cool-down (WSD's: the learning rate is
  still held; any other schedule: the first half of the run), the run's own speed since its
  first evaluation (evaluations included) sets the iterations it can still train before
  `until`, capped at `max_iters` (a token or FLOP budget; 0: none). When that moves the end
  by more than `tolerance`, the run gets the new length, with its learning rate moved by
  the plan's own rule (horizon.lr_for_tokens) and min_lr with it; a WSD run never gets an
  end whose cool-down would have begun already.
- **Overfitting** (WSD only, whose cool-down can start at any step). On a small corpus the
  final run sees its training split many times, and past some point the validation loss
  rises while the training loss falls; training on buys a worse model, and the best one
  is an uncooled stable-phase model. When the mean of the last OVERFIT_WINDOW evaluations
  lies more than OVERFIT_MARGIN above the lowest such mean so far (or 3 standard errors
  of the run's own evaluation noise, when that is larger: overfit_margin), the run starts
  its cool-down at once (its end moves to it / (1 - cooldown_frac)) at the learning rate
  it has, from the model and optimizer state of its best evaluation (BestState: the
  overfitted steps since are dropped, their compute still counted), and ends early: a
  cooled-down best model instead of a run that spends its time getting worse. The margin
  is measured: on tinyshakespeare's budget_best final runs (13-15M tokens, none
  overfitting) the mean of 3 evaluations never rose more than 0.006 above its running
  lowest (benchmarks/results/budget_best/shakespeare_char_before_rules), so 0.02 is over
  3x that, and a run that is still learning is not cut.

Later on a run keeps its schedule, whose cool-down is under way. A resumed final run
(`until` None: its deadline has passed, its length stands) keeps only the overfitting
rule, with a fresh window: the evaluations before the interruption are not in it, and a
best state from before it is not kept (the cut then cools down from where the run is).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from tune_gpt.horizon import lr_for_tokens

OVERFIT_WINDOW = 3       # evaluations averaged before comparing
OVERFIT_MARGIN = 0.02    # nats a window's mean may rise above the lowest before cooling down
OVERFITTING = "overfitting"


def retimed_file(checkpoint: str) -> str:
    """Where a final run keeps the length and schedule a Retimer gave it: beside its
    checkpoint (trainables/gpt.py writes it, the search's final phase reads it)."""
    return checkpoint + ".retimed.json"


def overfit_margin(vals: list[float], window: int = OVERFIT_WINDOW) -> float:
    """The rise that counts as overfitting: OVERFIT_MARGIN, or 3 standard errors of the
    difference of two `window` means where the run's own evaluations are noisier (a few
    evaluation batches). The noise is read from their second differences, which a steady
    trend does not inflate: var(v[i+1] - 2 v[i] + v[i-1]) = 6 sd^2 for independent noise.
    On tinyshakespeare's final runs (20 batches of 768 tokens an evaluation) it comes to
    0.020-0.025, the fixed margin."""
    if len(vals) < 4:
        return OVERFIT_MARGIN
    d2 = [vals[i + 1] - 2 * vals[i] + vals[i - 1] for i in range(1, len(vals) - 1)]
    sd = math.sqrt(sum(x * x for x in d2) / len(d2) / 6)
    return max(OVERFIT_MARGIN, 3 * sd * math.sqrt(2 / window))


def overfit_rise(vals: list[float], window: int = OVERFIT_WINDOW) -> float:
    """How far the mean of the last `window` validation losses lies above the lowest mean
    of any `window` consecutive ones before it (0 with fewer than window + 1 losses)."""
    if len(vals) <= window:
        return 0.0
    means = [sum(vals[i:i + window]) / window for i in range(len(vals) - window + 1)]
    return max(0.0, means[-1] - min(means[:-1]))


class Retimer:
    """Refits a final run's length after each evaluation: to the time left before `until`
    (a time.time(); None: the length stands, only overfitting can cut it), capped at `max_iters` (0: none), and, under WSD, cut to a cool-down
    from the current step once the validation loss has risen OVERFIT_MARGIN (the module's
    doc). `changes` lists every change, each with its reason ("time" or "overfitting")."""

    def __init__(self, until: float | None, max_iters: int = 0, tolerance: float = 0.02,
                 clock: Callable[[], float] | None = None):
        import time

        self.until, self.cap, self.tolerance = until, max_iters, tolerance
        self.clock = clock or time.time
        self.anchor: tuple[int, float] | None = None
        self.changes: list[dict[str, Any]] = []
        self.vals: list[float] = []
        self.back_to_best = False  # the last change cools down from the best state (train)

    def __call__(self, it: int, cfg: Any, val_loss: float | None = None) -> Any:
        from tune_gpt.schedule import cooldown_start

        now = self.clock()
        self.back_to_best = False
        if val_loss is not None and math.isfinite(val_loss):
            self.vals.append(float(val_loss))
        if self.anchor is None:
            self.anchor = (it, now)
            return None
        it0, t0 = self.anchor
        wsd = cfg.decay_lr and cfg.lr_schedule == "wsd"
        if it >= (cooldown_start(cfg) if wsd else cfg.max_iters / 2):
            return None
        if wsd and (rise := overfit_rise(self.vals)) > (margin := overfit_margin(self.vals)):
            return self._cool_down_now(it, cfg, rise, margin)
        if self.until is None or it <= it0 or now <= t0:
            return None
        rate = (it - it0) / (now - t0)
        end = it + max(0, int((self.until - now) * rate))
        if self.cap:
            end = min(end, self.cap)
        end = max(end, it + 1)
        if wsd:  # the cool-down starts here at the earliest
            end = max(end, math.ceil(it / max(1e-9, 1.0 - cfg.cooldown_frac)))
        if abs(end - cfg.max_iters) <= self.tolerance * cfg.max_iters:
            return None
        tpi = cfg.tokens_per_iter()
        lr = lr_for_tokens(cfg.learning_rate, cfg.max_iters * tpi, end * tpi)
        self.changes.append({"iter": it, "max_iters": end, "learning_rate": lr,
                             "iters_per_s": rate, "reason": "time"})
        return _with_end(cfg, end, lr)

    def _cool_down_now(self, it: int, cfg: Any, rise: float, margin: float) -> Any:
        """The run's end moved so that its cool-down starts at `it`, its lr kept."""
        end = max(it + 1, math.ceil(it / max(1e-9, 1.0 - cfg.cooldown_frac)))
        if end >= cfg.max_iters:
            return None
        self.changes.append({"iter": it, "max_iters": end, "learning_rate": cfg.learning_rate,
                             "reason": OVERFITTING, "rise": rise,
                             "margin": margin,
                             "lowest": min(self.vals)})
        self.back_to_best = True
        return _with_end(cfg, end, cfg.learning_rate)


class Follow:
    """What the training loop does with its retime hook after each evaluation: asks it for
    a new config, makes that the run's (and its checkpoints'), and when the hook cut the
    run for overfitting (its back_to_best), loads the best state kept since (BestState)."""

    def __init__(self, hook: Callable[[int, Any, float], Any]):
        self.hook, self.best = hook, BestState()

    def __call__(self, run: Any, it: int, val_loss: float, say: Callable[[str], None]
                 ) -> None:
        new = self.hook(it, run.cfg, val_loss)
        if run.cfg.decay_lr and run.cfg.lr_schedule == "wsd":  # only WSD runs are cut
            self.best.note(run.ckpt, it, val_loss == run.ckpt.best_val_loss)
        if new is None:
            return
        say(f"step {it}: the run's length is now {new.max_iters} iterations (learning rate "
            f"{new.learning_rate:.3g})")
        run.cfg = run.ckpt.cfg = new
        if getattr(self.hook, "back_to_best", False) and self.best.restore(run.ckpt, it):
            say(f"step {it}: it cools down from its best state (step {self.best.iter}); the "
                f"steps since are dropped")


class BestState:
    """A run's whole state (model, optimizer, RNG) at its best evaluation so far, copied to
    host memory, for a Retimer whose overfitting cut sends the run back to it
    (tune_gpt.train keeps one while a retimer watches the run)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.iter = -1

    def note(self, ckpt: Any, it: int, improved: bool) -> None:
        if improved:
            self.state, self.iter = host_copy(ckpt.state_dict()), it

    def restore(self, ckpt: Any, it: int) -> bool:
        """Load the best state into the run, which keeps its step count `it` (the steps
        since were trained and are counted; their model is dropped); False when none."""
        if self.state is None:
            return False
        ckpt.load_state_dict(self.state)
        ckpt.iter = it
        return True


def host_copy(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(host_copy(v) for v in obj)
    return obj


def _with_end(cfg: Any, end: int, lr: float) -> Any:
    from dataclasses import replace

    from tune_gpt.schedule import stretched_decay

    decay = stretched_decay(cfg.lr_decay_iters, cfg.max_iters, end)
    return replace(cfg, max_iters=end, lr_decay_iters=decay, learning_rate=lr,
                   min_lr=cfg.min_lr * lr / cfg.learning_rate if cfg.learning_rate else
                   cfg.min_lr)
