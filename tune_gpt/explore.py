"""Explore, then exploit: how much of a budget a search explores before its final run.

Exploring may take at most `explore_share` of the budget. By default
(`auto_explore_share`) that is the largest share that, if exploring finds nothing better
than the first trial (the prior), costs the final model at most one seed's noise: the
final run then continues the prior's own state, so what is lost is what the other trial
slots spent on challengers, a share (1 - 1/slots) of exploring. By the data exponent of
tune_gpt.horizon, training on (1 - w) of the tokens raises the loss by (1 - w)^-0.10, and
that is held to 1 + sd/mean of the measured seed spread (judge.REFERENCE_SEED_NOISE): 13%
of the budget on 2 slots, 6.5% with one slot or an unknown number. Never more than half
(the final run always gets at least what exploring took: the 2-competitive split of the
ski-rental problem). Why a bound and not a guess of the gain: budget_best on
tinyshakespeare, where half the budget spent exploring cost the final model 0.02-0.05 nats
against the prior trained on the whole budget (benchmarks/results/budget_best), and what
exploring will find is not known before it runs.

Exploring stops earlier once the leader has beaten `patience` challengers in a row at rungs
they both reached (`Settled`; by default as many as the sampler's start-up trials, at least
reduction_factor): when the prior keeps winning, exploring longer buys nothing.

The final run's plan (which config, how long, which learning rate) is tune_gpt.horizon's.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tune_gpt.horizon import DATA_EXPONENT, _finite


def explore_budget(budget: Any, share: float) -> dict[str, float | None]:
    """What exploring may spend of a budget: `share` of its time, tokens and FLOPs."""
    return {k: (v * share if v else v) for k, v in (
        ("time_budget_s", budget.time_budget_s), ("total_tokens", budget.total_tokens),
        ("total_flops", budget.total_flops))}


MAX_EXPLORE_SHARE = 0.5


def auto_explore_share(slots: int | None, continues: bool = True) -> tuple[float, str]:
    """(share, reason): the most of a budget exploring may take by default (the rule is in
    the module's docstring). `slots`: trials running at once (None: not known yet);
    `continues`: the final run continues the chosen trial's state (else all of exploring
    is lost)."""
    from tune_gpt.judge import REFERENCE_SEED_NOISE as ref

    r = ref.relative
    wasted = 1.0 - (1.0 + r) ** (-1.0 / DATA_EXPONENT)  # the most of the budget to lose
    keeps = continues and bool(slots) and slots >= 2
    lost = 1.0 - 1.0 / slots if keeps else 1.0
    share = min(MAX_EXPLORE_SHARE, wasted / lost)
    who = (f"the final run continues it and what the other {slots - 1} of {slots} trial "
           f"slots spent exploring is lost" if keeps else
           "all of exploring is lost (the final run starts again)" if not continues else
           "all of exploring counts as lost (one trial slot, or their number is not set: "
           "budget.max_concurrent_trials)")
    reason = (f"explore_share auto = {share:.1%}: if exploring finds nothing better than the "
              f"first trial, {who}, {wasted:.1%} of the budget; by L ~ D^-{DATA_EXPONENT:g} "
              f"that raises "
              f"the final loss by {r:.2%}, one seed's spread ({ref.sd:g} nats at "
              f"{ref.mean:.3f}, {ref.source})")
    return share, reason


def default_patience(reduction_factor: float, n_startup: int) -> int:
    """Challengers in a row the leader must beat before exploring stops: every start-up
    trial's worth (the sampler's broad first look, before it models anything) and at least
    reduction_factor (a rung's worth: ASHA would promote the leader over all of them)."""
    return max(2, int(round(reduction_factor)), int(n_startup))


class Settled:
    """Exploring is settled when the leader (the trial with the lowest loss at the highest
    rung it reached first) has beaten `patience` challengers in a row: each time another
    trial reports at a rung the leader has reported at, it is worse there, or it becomes the
    leader (the count starts again). Rungs are compared at equal time_attr (tokens), so a
    short trial is never compared with a long one. Only evaluations count (outcome running
    or completed): a trial that diverged or failed reports a penalty, not a loss, and is no
    challenger beaten. Ray keeps the stopper with the experiment, so a resumed search
    carries on counting."""

    def __init__(self, patience: int, rungs: Sequence[float], attr: str = "tokens",
                 metric: str = "val_loss"):
        self.patience = patience
        self.rungs = sorted(float(r) for r in rungs)
        self.attr, self.metric = attr, metric
        self.at: dict[str, dict[float, float]] = {}  # trial -> rung -> loss there
        self.leader: str | None = None
        self.beaten = 0

    def _rung(self, t: float) -> float | None:
        hit = [r for r in self.rungs if abs(t - r) <= 1e-6 * max(r, 1) or t >= r]
        return hit[-1] if hit else None

    def observe(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        """One report; True once exploring is settled."""
        t, loss = result.get(self.attr), result.get(self.metric)
        if not _finite(t) or not _finite(loss) or \
                result.get("outcome", "running") not in ("running", "completed"):
            return self.settled()
        rung = self._rung(float(t))
        if rung is None:
            return self.settled()
        mine = self.at.setdefault(trial_id, {})
        if rung in mine:
            return self.settled()  # one verdict per trial and rung: its first report there
        mine[rung] = float(loss)
        if self.leader is None:
            self.leader = trial_id
        elif trial_id != self.leader:
            theirs = self.at.get(self.leader, {})
            if rung in theirs:
                if float(loss) < theirs[rung]:
                    self.leader, self.beaten = trial_id, 0
                else:
                    self.beaten += 1
        return self.settled()

    def settled(self) -> bool:
        return self.patience > 0 and self.beaten >= self.patience
