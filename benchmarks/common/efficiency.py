"""The search-efficiency experiment: the guide's manual sweeps against searches over the same
knobs and ranges, at equal compute.

`search_efficiency.py` runs it for real, `record_curves.py` records the learning curves the
replay runs it on, and the replay (`benchmarks.common.replay`) simulates it; all three read
the plan, the space and the budget from here, so they cannot drift apart.

The searches tune the same knobs over the same ranges the manual sweeps cover (batch_size,
learning_rate, n_layer, n_embd) and stop when their trials together have trained as many
tokens as the manual sweeps (`budget.total_tokens`). A search succeeds when it reaches the
manual best within TARGET_FRACTION of the manual compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

EXPERIMENTS = ("experiment_batch_size", "experiment_learning_rate", "experiment_model_size")
MANUAL_RUNS = 9                   # len(manual_plan()): 3 experiments x 3 values (a test checks)
# The real benchmark's methods (the replay registers its own: replay/methods.py).
METHODS = ("manual", "asha_tpe", "random", "default", "default_wrong_prior")
REFERENCE_MANUAL_BEST = 1.772     # the reference implementation's manual best, same sizing
TARGET_FRACTION = 1 / 3
CONCURRENCY = 2                   # max_concurrent_trials: two 1-thread trials on 2 cores
TOKENS_PER_TRIAL = 2_000_000      # budget.tokens_per_trial = ASHA's max_t
EVALS_PER_TRIAL = 8               # budget.tokens_per_eval = a trial's tokens / 8
GRACE_PERIOD = TOKENS_PER_TRIAL // EVALS_PER_TRIAL   # ASHA's first rung: one evaluation
REDUCTION_FACTOR = 3
# The knobs the manual sweeps keep fixed (nanoGPT's CPU recipe), shared by the searches.
BASE = {"block_size": 64, "n_head": 4, "dropout": 0.0, "warmup_iters": 100, "beta2": 0.99,
        "eval_iters": 20, "log_interval": 1000, "dtype": "float32", "compile": False}
# Same knobs and ranges as the manual sweeps cover between them.
SEARCH_PARAMS = {
    "batch_size": {"choice": [12, 16, 32, 64]},
    "learning_rate": {"loguniform": [1.0e-4, 1.0e-2]},
    "n_layer": {"int": [2, 6]},
    "n_embd": {"int": [64, 192], "step": 64},
}
# The new default's priors, as beginner.yaml's CPU profile has them: the guide's table
# (初学者推荐值) brought into the CPU ranges: learning_rate 1e-3 (small models), n_layer 4
# (4-6), n_embd 192 (the guide's 256-384, clamped to the widest the CPU range holds), and
# nanoGPT's CPU recipe for the batch (12; the guide's 32-64 are GPU batches of 256-token
# blocks). And a deliberately wrong prior (the worst corner the manual sweeps saw: the
# smallest model at lr 1e-4, the largest batch), to show what a bad prior costs.
PRIORS = {"batch_size": 12, "learning_rate": 1.0e-3, "n_layer": 4, "n_embd": 192}
WRONG_PRIORS = {"batch_size": 64, "learning_rate": 1.0e-4, "n_layer": 2, "n_embd": 64}


def manual_plan(scale: float = 1.0) -> list[dict[str, Any]]:
    """The nine runs of the guide's experiments (CPU profile), in the guide's order, each a
    full training config; `scale` shortens every run (for --quick)."""
    from tune_gpt.space import label, load_space, resolve

    runs = []
    for exp in EXPERIMENTS:
        space = load_space(ROOT / "search_spaces" / f"{exp}.yaml", profile="cpu")
        (name, dist), = space.params.items()
        for value in dist.candidates():
            knobs = resolve(space, {name: label(value)})
            if scale != 1.0:
                for k in ("max_iters", "lr_decay_iters", "eval_interval"):
                    knobs[k] = max(10, int(knobs[k] * scale))
                knobs["warmup_iters"] = min(knobs["warmup_iters"], knobs["max_iters"] // 10)
                knobs["eval_iters"] = 2
            runs.append({k: v for k, v in knobs.items()
                         if k not in ("dataset", "out_dir", "seed", "device")}
                        | {"experiment": exp.removeprefix("experiment_")})
    return runs


def tokens_of(cfg: dict[str, Any]) -> int:
    return (cfg["batch_size"] * cfg["block_size"] * cfg.get("gradient_accumulation_steps", 1)
            * cfg["max_iters"])


def with_priors(params: dict[str, Any], priors: dict[str, Any],
                confidence: str = "medium") -> dict[str, Any]:
    return {k: {**d, "prior": priors[k], "confidence": confidence} if k in priors else d
            for k, d in params.items()}


def space_for(method: str, seed: int, budget: int, scale: float,
              plan: list[dict[str, Any]]) -> dict[str, Any]:
    """The search space (as a tune-gpt YAML mapping) that runs `method` for one seed."""
    if method == "manual":
        runs = [{k: v for k, v in r.items() if k != "experiment"} for r in plan]
        return {"name": f"eff-manual-s{seed}",
                "description": "the guide's three manual experiments (CPU sizing)",
                "params": {"run": {"choice": runs}},
                "sampler": {"type": "grid", "seed": seed}, "scheduler": {"type": "none"},
                "budget": {"num_samples": len(runs), "max_concurrent_trials": CONCURRENCY},
                "resources": {"cpu": 1, "gpu": 0}}
    per_trial = max(16_000, int(TOKENS_PER_TRIAL * scale))
    # at least one iteration of batch 64 x block 64
    per_eval = max(4096, per_trial // EVALS_PER_TRIAL)
    space = {"name": f"eff-{method.replace('_', '-')}-s{seed}",
             "description": f"{method} over the manual sweeps' knobs and ranges",
             "params": SEARCH_PARAMS,
             "fixed": {**BASE, "warmup_iters": max(2, int(BASE["warmup_iters"] * scale)),
                       "eval_iters": BASE["eval_iters"] if scale == 1.0 else 2},
             "budget": {"num_samples": 200, "max_concurrent_trials": CONCURRENCY,
                        "tokens_per_trial": per_trial, "tokens_per_eval": per_eval,
                        "total_tokens": budget},
             "resources": {"cpu": 1, "gpu": 0}}
    if method in ("asha_tpe", "default", "default_wrong_prior", "default_rules"):
        space["sampler"] = {"type": "tpe", "seed": seed, "n_startup_trials": 5}
        space["scheduler"] = {"type": "asha", "time_attr": "tokens",
                              "grace_period": per_eval, "reduction_factor": REDUCTION_FACTOR}
    if method in ("default", "default_wrong_prior", "default_rules"):
        # tune-gpt's default search: TPE told PRUNED for stopped trials (always, in every
        # search), started from priors (the recipe first, start-up trials near it);
        # default_rules: every prior `auto` (tune_gpt/space/auto_priors.py)
        space["params"] = with_priors(SEARCH_PARAMS, {
            "default": PRIORS, "default_wrong_prior": WRONG_PRIORS,
            "default_rules": dict.fromkeys(SEARCH_PARAMS, "auto")}[method])
    if method == "random":
        space["sampler"] = {"type": "random", "seed": seed}
        space["scheduler"] = {"type": "none"}
    return space
