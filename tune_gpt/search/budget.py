"""The search's compute budget (`budget.total_tokens`, `budget.total_flops`) as a Ray Tune
Stopper: every trial stops once the trials together have spent it."""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper


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
                        tokens = self._spent(row)
                    except ValueError:
                        continue
                    key = row.get("trial_id") or progress.parent.name
                    spent[key] = max(spent.get(key, 0.0), tokens)
        return spent

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self.spent is None:
            self.spent = self._load()
        if isinstance(result.get(self.attr), (int, float)):
            self.spent[trial_id] = max(self.spent.get(trial_id, 0.0), self._spent(result))
        return self.stop_all()

    def _spent(self, row: dict[str, Any]) -> float:
        """A trial's compute so far: its tokens and its rung reads' cool-down branches
        (read_tokens; `flops` has them already), as the final phase counts them."""
        extra = float(row.get("read_tokens") or 0) if self.attr == "tokens" else 0.0
        return float(row.get(self.attr) or 0) + (extra if extra == extra else 0.0)

    def used(self) -> float:
        return sum((self.spent or {}).values())

    def stop_all(self) -> bool:
        return self.spent is not None and self.used() >= self.total_tokens

    def __getstate__(self) -> dict[str, Any]:
        # Counted again from the trials' progress files after a restore.
        return {**self.__dict__, "spent": None}


class ExploreSettled(Stopper):
    """`final:`: stop exploring once the leader has beaten `patience` challengers in a row
    at rungs they both reached (tune_gpt.explore.Settled; the rule is written there). The
    trials still running stop at their next report, and the final phase begins."""

    def __init__(self, patience: int, rungs: list[float], attr: str, metric: str):
        from tune_gpt.explore import Settled

        self.rule = Settled(patience, rungs, attr, metric)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.rule.observe(trial_id, result)

    def stop_all(self) -> bool:
        return self.rule.settled()


def stop_reason(stopper: Any) -> str | None:
    """Why `stopper` (one of these, or Ray's CombinedStopper of them) stopped the search's
    trials, when it has: the words an MLflow run's stop_reason gets; None while it has not."""
    parts = getattr(stopper, "_stoppers", None) or ([stopper] if stopper is not None else [])
    for s in parts:
        if isinstance(s, ExploreSettled) and s.stop_all():
            return (f"exploring ended: the leading trial beat {s.rule.patience} challengers "
                    f"in a row")
        if isinstance(s, TokenBudget) and s.stop_all():
            return f"the search's {s.attr} budget ({s.total_tokens:.3g}) was spent"
    return None
