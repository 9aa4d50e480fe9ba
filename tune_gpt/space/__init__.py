"""Search spaces: a YAML file -> typed, validated settings for one search.

The YAML schema (every section optional but `params`; documented in README.md):

    name: beginner                    # search name prefix
    description: one line
    data: shakespeare_char            # dataset name or a UTF-8 text file
    metric: val_loss                  # val_loss | best_val_loss | train_loss (minimised)
    mode: min
    params:                           # knob -> distribution, or a plain value (= fixed)
      batch_size: {choice: [16, 32, 64]}
      learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
      n_layer: {int: [4, 6]}          # inclusive; optional `step`
      dropout: {uniform: [0.1, 0.2]}
      model: {choice: [{n_layer: 2, n_embd: 64}, {n_layer: 4, n_embd: 128}]}  # knobs set together
    fixed: {max_iters: 2000}          # any other knob, the same for every trial
    sampler: {type: tpe, seed: 0}     # tpe | random | cmaes | gp | grid | nsga2 (+ Optuna kwargs)
    scheduler: {type: asha, time_attr: tokens, grace_period: 200k, reduction_factor: 3}
    budget: {num_samples: 20, max_concurrent_trials: 2, time_budget_s: 900,
             tokens_per_trial: 2M, tokens_per_eval: 100k, total_tokens: 20M}
    resources: {cpu: 1, gpu: 0}
    memory: {limit: 8G, rescue: 2}    # per-trial memory budget; OOM rescues (0 = off)
    profiles:                         # sections merged over the above on matching hardware
      cpu: {params: {...}, fixed: {...}, budget: {...}}

The n_embd/n_head rule is kept by construction: when either is tuned, the sampled n_embd
is snapped to the nearest allowed value divisible by the trial's n_head (see resolve.py);
a space in which some n_head can never be satisfied is rejected at load time.

Modules: schema (the typed SearchSpace), amounts (200k, 8G, 2P), keys (known keys,
mappings), ranges (every number range-checked in one place; budgets that fit), dists (one
tuned knob and its prior), load (YAML -> SearchSpace; its data peeked at), resolve (Optuna
suggestions -> every knob of a trial), describe (what `validate` prints).
"""

from __future__ import annotations

from tune_gpt.space.amounts import parse_amount, parse_bytes
from tune_gpt.space.describe import describe
from tune_gpt.space.load import apply_sets, detect_profile, grid_size, load_space, peek_data
from tune_gpt.space.resolve import label, resolve, suggest
from tune_gpt.space.schema import Budget, Dist, SchedulerSettings, SearchSpace

__all__ = ["Budget", "Dist", "SchedulerSettings", "SearchSpace", "apply_sets", "describe",
           "detect_profile", "grid_size", "label", "load_space", "parse_amount", "parse_bytes",
           "peek_data", "resolve", "suggest"]
