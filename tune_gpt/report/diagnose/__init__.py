"""Diagnosis rules: what counts as out-of-memory trouble, slowness, overfitting and
divergence, and which remedies to try in which order. One module per rule set; every
threshold they use is in tune_gpt.report.rules, named, with the reason for its value.

    oom       trials that ran out of memory (or were predicted to) and the guide's ladder
    slow      slow trials, and the guide's speed remedies with measured speedups
    overfit   val_loss rising while train_loss falls, a gap beyond the data's own (and gaps
              that are only the data's own), and what narrowed it
    diverge   NaN, exploding or flat losses, learning rates too high to converge well, and
              the learning rates that were stable and near the best
    common    the top trials at an equal budget (shared by diverge and the next space)

Each rule set takes the prepared Results and returns its section's finding
(tune_gpt.report.findings); none does I/O.
"""

from __future__ import annotations

from tune_gpt.report.diagnose.common import top_ids
from tune_gpt.report.diagnose.diverge import diagnose_divergence, diverge_case
from tune_gpt.report.diagnose.oom import diagnose_oom, oom_combined, oom_ladder
from tune_gpt.report.diagnose.overfit import diagnose_overfitting, overfit_case
from tune_gpt.report.diagnose.slow import diagnose_slowness, paired_speedups

__all__ = ["diagnose_divergence", "diagnose_oom", "diagnose_overfitting", "diagnose_slowness",
           "diverge_case", "oom_combined", "oom_ladder", "overfit_case", "paired_speedups",
           "top_ids"]
