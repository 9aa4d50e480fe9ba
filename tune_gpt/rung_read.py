"""A rung that reads a finished run: a WSD trial scored after a throwaway cool-down branch.

    reads = RungReads.for_trial(cfg, rungs=[250_000, 750_000], frac=0.1)  # None: no reads
    train(cfg, on_eval=..., reads=reads)

ASHA compares trials at its rungs. A trial on a cosine schedule is read there mid-decay, its
learning rate still high: the loss it reports is not what a run of that length would finish
at, and a fast-decaying config looks better than one that would end lower. Under WSD
(Hägele et al. 2024, arXiv:2405.18392) a cool-down started anywhere in the stable phase ends
about where a run planned for that length ends, so a rung can read the finished run:

- At the evaluation where a rung is read (the first at or past the rung's tokens), while the
  run is still in its stable phase, the loop copies its whole state (model, optimizer, RNG)
  to host memory, trains a branch of ceil(frac * step) more steps whose learning rate cools
  down from learning_rate to min_lr with WSD's 1 - sqrt shape (its last step at min_lr),
  evaluates it, and loads the copied state back. The trial carries on from its stable branch, as if the read never
  happened, so the search's final run continues that stable state.
- The record reports the branch's val_loss (what ASHA and the sampler compare), the
  plateau's as stable_val_loss (train_loss stays the plateau's), and read_tokens, every
  branch token so far: compute spent (it counts in the trial's FLOPs and in the search's
  budget) whose model is dropped. The branch's time counts as evaluation time. The curves
  table (tune_gpt.trial.curve_point) draws the run itself, its plateau; the trials table
  ranks by what the rungs read.

frac 0.1 (the branch is a tenth of the run so far) is Hägele et al.'s finding that 10-20 %
cool-downs match cosine, at the cheaper end: with ASHA's rungs at 1/8 and 3/8 of a trial
(grace 250k of 2M, reduction 3) the branches cost 5 % of a full trial.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable

DEFAULT_FRAC = 0.1


@dataclass
class RungReads:
    """At which evaluations (optimizer steps) a run is read after a cool-down branch."""

    iters: frozenset[int]
    frac: float = DEFAULT_FRAC

    @classmethod
    def for_trial(cls, cfg: Any, rungs: Iterable[float], frac: float) -> RungReads | None:
        """The reads of one WSD trial: for each rung (in tokens), the first evaluation at or
        past it, kept while the run's stable phase lasts (a rung in the cool-down, the end
        included, already reads a cooling run). None when there is nothing to read: frac 0,
        a schedule other than WSD, or no rung inside the stable phase."""
        from tune_gpt.schedule import cooldown_start

        if frac <= 0 or not cfg.decay_lr or cfg.lr_schedule != "wsd":
            return None
        tpi, every, start = cfg.tokens_per_iter(), cfg.eval_interval, cooldown_start(cfg)
        iters = set()
        for rung in rungs:
            it = min(math.ceil(math.ceil(rung / tpi) / every) * every, cfg.max_iters)
            if cfg.warmup_iters < it < start:
                iters.add(it)
        return cls(frozenset(iters), frac) if iters else None

    def steps(self, it: int) -> int:
        """The cool-down branch of a read at step `it`: a `frac` share of the steps so far."""
        return max(1, math.ceil(self.frac * it))

    def branch_lrs(self, it: int, cfg: Any) -> list[float]:
        """The learning rates of the branch read at step `it`: WSD's cool-down (schedule.lr_at)
        started one step before `it`, so that its first step already cools down and its
        last is at min_lr (a one-step branch too is never a plain stable step)."""
        from tune_gpt.schedule import lr_at

        steps = self.steps(it)
        end = it + steps - 1
        branch = replace(cfg, max_iters=end, lr_decay_iters=end, cooldown_frac=steps / end)
        return [lr_at(j, branch) for j in range(it, it + steps)]

    def spent(self, it: int, cfg: Any) -> int:
        """Tokens the branches of the reads up to step `it` trained (read_tokens): worked out
        from the steps, so a trial resumed from its checkpoint still counts those before."""
        return sum(self.steps(r) for r in self.iters if r <= it) * cfg.tokens_per_iter()

    def read(self, run: Any, clock: Any, it: int, stable: Any, step: Any) -> Any:
        """The record of evaluation `stable` at step `it`, read after a cool-down branch
        trained by `step(run, lr)` (tune_gpt.train.optimization_step); the run is back in
        its stable state afterwards. A branch that diverges (a loss that is not finite)
        reads nothing: the stable record is returned, its cost counted."""
        from tune_gpt.evaluate import estimate_loss
        from tune_gpt.retime import host_copy

        t0 = time.perf_counter()
        cfg = run.cfg
        lrs = self.branch_lrs(it, cfg)
        saved = host_copy(run.ckpt.state_dict())
        finite = True
        try:
            for lr in lrs:
                loss = step(run, lr)
                if not math.isfinite(loss.item()):
                    finite = False
                    break
            if finite:
                _, val_loss = estimate_loss(run.net, run.data, cfg, run.device, run.autocast)
        finally:
            run.ckpt.load_state_dict(saved)
        spent = time.perf_counter() - t0
        clock.eval_s += spent  # a read is part of evaluating, never of the training throughput
        steps = len(lrs)
        out = replace(stable, eval_s=stable.eval_s + spent,
                      elapsed_s=stable.elapsed_s + spent, read_tokens=self.spent(it, cfg))
        if not finite or not math.isfinite(val_loss):
            return out
        return replace(out, val_loss=val_loss, stable_val_loss=stable.val_loss,
                       read_after=steps)  # train_loss stays the plateau's
