"""The report's first two sections: what the search found and spent, and the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tune_gpt.report.findings import Leaderboard, Summary
from tune_gpt.report.results import Results, at_budget, best_id, ranked
from tune_gpt.report.rules import LEADERBOARD_SIZE
from tune_gpt.trial import ENDED

# Knobs the search derives from others (max_iters and eval_interval from the token budgets,
# lr_decay_iters = max_iters, min_lr = learning_rate / 10): shown only when tuned, since
# their differences follow from the knobs that are.
DERIVED = ("max_iters", "lr_decay_iters", "min_lr", "eval_interval", "warmup_iters")


def summarize(res: Results) -> Summary:
    t = res.trials
    best = best_id(res)
    counts = t["outcome"].value_counts()
    by_outcome = {o: int(counts[o]) for o in ENDED if o in counts}
    by_outcome.update({o: int(n) for o, n in counts.items() if o not in by_outcome})
    wall = res.meta.wall_s
    if not isinstance(wall, (int, float)) or not np.isfinite(wall):
        wall = float(t["wall_s"].sum()) if t["wall_s"].notna().any() else float("nan")
    errors = [(i, str(t.at[i, "error"]).strip().splitlines()[0])
              for i in t.index if str(t.at[i, "error"]).strip()]
    return Summary(best_trial=best, metric=res.metric,
                   best_value=float(t.at[best, res.score]) if best else float("nan"),
                   best_val_loss=float(t.at[best, "best_val_loss"]) if best else float("nan"),
                   best_config=res.knobs(best) if best else {},
                   best_outcome=str(t.at[best, "outcome"]) if best else "",
                   best_tokens=float(t.at[best, "tokens"]) if best else float("nan"),
                   best_iters=float(t.at[best, "iters"]) if best else float("nan"),
                   n_trials=len(t), by_outcome=by_outcome,
                   iters=float(t["iters"].sum()), tokens=float(t["tokens"].sum()),
                   wall_s=float(wall), errors=errors)


def leaderboard(res: Results, budget: float | None) -> Leaderboard:
    """The top trials by the search's metric (best value reached), showing only the knobs
    that differ between them, with each trial's metric at the equal budget next to its best."""
    order = ranked(res)[:LEADERBOARD_SIZE]
    tuned = set(res.tuned_knobs())
    knobs = [k for k in (res.varying_knobs(order) if len(order) > 1 else [])
             if k in tuned or k not in DERIVED]
    at = at_budget(res, order, budget) if budget else pd.DataFrame(columns=[res.metric])
    t = res.trials.loc[order]
    table = pd.DataFrame({"trial_id": order, "outcome": list(t["outcome"])}, index=order)
    for k in knobs:
        table[k] = list(t[k])
    table["best"] = list(t[res.score])
    table["at_budget"] = [at[res.metric].get(i, np.nan) for i in order]
    table["tokens"] = list(t["tokens"])
    table["tokens_per_s"] = list(t["tokens_per_s"])
    # each trial against the first: a gap between two single runs, real beyond the noise
    noise = res.noise
    table["delta"] = table["best"] - (table["best"].iloc[0] if len(table) else np.nan)
    table["within"] = [not noise.real(d) for d in table["delta"]]
    return Leaderboard(table.reset_index(drop=True), knobs, budget, res.metric, noise)
