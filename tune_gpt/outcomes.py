"""Trial outcomes: one vocabulary shared by the trainable, MLflow tracking and the report."""

from __future__ import annotations

COMPLETED = "completed"          # trained to max_iters
STOPPED_EARLY = "stopped_early"  # ASHA cut it at a rung
OOM = "oom"                      # ran out of memory at run time
PREDICTED_OOM = "predicted_oom"  # the estimator said it would not fit; never launched
DIVERGED = "diverged"            # loss became NaN/inf
FAILED = "failed"                # any other error (the message is recorded)

ALL = (COMPLETED, STOPPED_EARLY, OOM, PREDICTED_OOM, DIVERGED, FAILED)
