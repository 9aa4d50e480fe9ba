"""What more than one rule set needs: the top trials of the search at an equal budget."""

from __future__ import annotations

import math

from tune_gpt.report.results import Results, at_budget, common_budget, comparable_ids
from tune_gpt.report.rules import TOP_FRACTION, TOP_MIN


def top_ids(res: Results) -> tuple[list[str], float | None]:
    """The best quarter (at least TOP_MIN) of comparable trials by the search's metric
    (val_loss or train_loss) at an equal budget, and that budget."""
    ids = comparable_ids(res)
    budget = common_budget(res, ids)
    table = at_budget(res, ids, budget)
    table = table[table[res.metric].notna()].sort_values(res.metric, kind="stable")
    k = max(TOP_MIN, math.ceil(TOP_FRACTION * len(table)))
    return list(table.index[:k]), budget
