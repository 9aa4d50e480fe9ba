"""tune-gpt: hyperparameter search for small GPT training runs.

Library entry points (each also a CLI subcommand):
    tune_gpt.train.train(cfg)            one training run
    tune_gpt.estimate.estimate(cfg)      memory / FLOPs / tokens-per-iter without training
    tune_gpt.search.run_search(...)      a Ray Tune + Optuna + ASHA search logged to MLflow
"""

__version__ = "0.1.0"
