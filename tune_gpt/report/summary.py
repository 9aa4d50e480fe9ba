"""The report's first two sections: what the search found and spent, and the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tune_gpt.outcomes import ALL
from tune_gpt.report.diagnose import LEADERBOARD_SIZE
from tune_gpt.report.findings import Leaderboard, Summary
from tune_gpt.report.results import Results, at_budget, best_id, ranked

# Knobs the search derives from others (max_iters and eval_interval from the token budgets,
# lr_decay_iters = max_iters, min_lr = learning_rate / 10): shown only when tuned, since
# their differences follow from the knobs that are.
DERIVED = ("max_iters", "lr_decay_iters", "min_lr", "eval_interval", "warmup_iters")


def summarize(res: Results) -> Summary:
    t = res.trials
    best = best_id(res)
    counts = t["outcome"].value_counts()
    by_outcome = {o: int(counts[o]) for o in ALL if o in counts}
    by_outcome.update({o: int(n) for o, n in counts.items() if o not in by_outcome})
    wall = res.meta.get("wall_s")
    if not isinstance(wall, (int, float)) or not np.isfinite(wall):
        wall = float(t["wall_s"].sum()) if t["wall_s"].notna().any() else float("nan")
    errors = [(i, str(t.at[i, "error"]).strip().splitlines()[0])
              for i in t.index if str(t.at[i, "error"]).strip()]
    return Summary(best_trial=best,
                   best_val_loss=float(t.at[best, "best_val_loss"]) if best else float("nan"),
                   best_config=res.knobs(best) if best else {},
                   best_outcome=str(t.at[best, "outcome"]) if best else "",
                   best_tokens=float(t.at[best, "tokens"]) if best else float("nan"),
                   best_iters=float(t.at[best, "iters"]) if best else float("nan"),
                   n_trials=len(t), by_outcome=by_outcome,
                   iters=float(t["iters"].sum()), tokens=float(t["tokens"].sum()),
                   wall_s=float(wall), errors=errors)


def leaderboard(res: Results, budget: float | None) -> Leaderboard:
    """The top trials by best val_loss, showing only the knobs that differ between them,
    with each trial's val_loss at the equal budget next to its best."""
    order = [i for i in ranked(res) if np.isfinite(res.trials.at[i, "best_val_loss"])]
    order = order[:LEADERBOARD_SIZE]
    tuned = set(res.tuned_knobs())
    knobs = [k for k in (res.varying_knobs(order) if len(order) > 1 else [])
             if k in tuned or k not in DERIVED]
    at = at_budget(res, order, budget) if budget else pd.DataFrame(columns=["val_loss"])
    t = res.trials.loc[order]
    table = pd.DataFrame({"trial_id": order, "outcome": list(t["outcome"])}, index=order)
    for k in knobs:
        table[k] = list(t[k])
    table["best_val_loss"] = list(t["best_val_loss"])
    table["val_at_budget"] = [at["val_loss"].get(i, np.nan) for i in order]
    table["tokens"] = list(t["tokens"])
    table["tokens_per_s"] = list(t["tokens_per_s"])
    return Leaderboard(table.reset_index(drop=True), knobs, budget)
