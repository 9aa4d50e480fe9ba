"""Every threshold behind a diagnosis, named, each with the reason for its value.

The report's rule sets (tune_gpt.report.diagnose), its effects table and its renderer read
them from here. Rules the trainable and the search share with the report (what ends a trial,
whether a gap is real) live in tune_gpt.judge, so what stops a trial and what the report
says about it cannot drift apart. The remedy ladders follow the beginner's guide, §6
"配置调优策略", in its priority order.

This module imports nothing heavy.
"""

from __future__ import annotations

# What ends a trial (diverged, predicted_oom) and what "beyond the noise" means are decided
# in tune_gpt.judge, which the trainable and the search use too; the report reads them there.
from tune_gpt.judge import EXPLODED_LOSS_FACTOR, FLOOR, PREDICTED_OOM_MARGIN  # noqa: F401

# ----------------------------------------------------------------------------- display

LEADERBOARD_SIZE = 10       # ten rows fit on a screen; the full table is trials.csv
CURVES_TOP = 5              # more lines than this in one plot stop being readable

# ----------------------------------------------------------------------------- equal budget

# Evaluations fall on a token grid that differs a little between batch sizes
# (eval_interval is a whole number of iterations, rounded up): an evaluation at most 5% past
# the equal budget counts as at it, so no trial drops out of a comparison over a few tokens.
BUDGET_TOLERANCE = 0.05

# ----------------------------------------------------------------------------- overfitting

OVERFIT_MIN_RISE = 0.03     # nats. A loss estimate averages eval_iters batches and wobbles
                            # by ~0.01 on shakespeare_char; three times that is a real rise.
OVERFIT_GAP_RATIO = 0.10    # val_loss 10% above train_loss is the data's own gap, not
                            # memorisation: healthy shakespeare_char runs whose val_loss is still
                            # falling end 10-12% apart, because val is a different part of the
                            # play. Used when no trial measures that gap, and as the floor below
                            # which no gap is called memorisation. Relative, so it means the
                            # same for char-level (loss ~1.5) and BPE (~3) data.
DATA_GAP_FACTOR = 2.0       # a val/train gap more than twice the data's own (the median gap of
                            # the trials whose val_loss never turned up, longest runs first) is
                            # at least half memorisation: the model does much better on text it
                            # has seen than the split difference explains.
STILL_FALLING = 0.01        # nats. val_loss lower at the last eval than at 3/4 of the trial's
                            # tokens by more than the eval noise (~0.01 on shakespeare_char): it
                            # was still falling when the trial ended.

# ----------------------------------------------------------------------------- divergence

EXPLODE_RATIO = 1.2         # train_loss climbing back 20% above its own minimum is not
                            # overfitting (that needs train_loss to fall) but instability.
FLAT_FRACTION = 0.9         # best val_loss still above 90% of ln(vocab), the loss of a uniform
                            # guess: the model learned (almost) nothing. Any working run on
                            # shakespeare_char is below 3.0 = 0.72*ln(65) within a few hundred
                            # iterations, so 0.9 leaves room for short runs and flags only the stuck.
CONVERGE_RATIO = 0.10       # a stable trial whose loss at the equal budget is more than 10% above
                            # the best's did not converge well. Trials with good learning rates
                            # but other knobs different lie within ~6% of each other (the
                            # committed beginner-cpu report: 2.28-2.41 at equal budget); the
                            # learning rates a beginner search makes too high end 20-45% worse.
                            # The margin is at least the noise's threshold for a difference of
                            # two runs (judge.Noise.pair).

SAFE_MIN_FRACTION = 1 / 3   # a learning-rate range is called safe only from trials that trained
                            # at least a third of the longest trial (ASHA's second rung at its
                            # default reduction_factor 3): before that, a high rate that leads
                            # early and ends worse cannot be told from a good one. A held-out
                            # search judged at 20k tokens called lr 0.15 safe, 0.3 nats off.

# ----------------------------------------------------------------------------- slowness

SLOW_FRACTION = 0.5         # MFU (or tokens/s) below half the search's median: twice slower
                            # than its peers for its size, more than noise between trials.
EVAL_SHARE_MAX = 0.25       # a quarter of wall time spent evaluating. Evaluation costs about
                            # 2*eval_iters forward passes (train and val split) per eval_interval
                            # steps, a forward being ~1/3 of a step: nanoGPT's shakespeare_char
                            # recipe (200 every 250) spends ~35%, which is why the guide raises
                            # eval_interval to 500; above 25%, doing so gains >= 1.14x.
EVAL_SHARE_TARGET = 0.10    # what the "fewer evaluations" remedy aims for.
SMALL_BATCH_MAX = 8         # the guide's table: batch_size 1-8 is "慢" (slow), for debugging.
QUIET_LOG_INTERVAL = 100    # the guide's remedy value: log_interval = 100.
COMPILE_SPEEDUP = (1.5, 2.0)  # the guide's "提速1.5-2x" for compile=True on a GPU.
LEAD_MIN_GAIN = 1.10         # the slowness section opens with the biggest *measured* lever
                            # (eval share, a compile or batch_size pair) only when it promises
                            # at least 1.1x end to end: throughput of one config varies by a few %
                            # between runs, so a smaller gain is not a lever worth leading with.

# ----------------------------------------------------------------------------- memory

MEMORY_HEADROOM = 0.9       # an estimate "fits" only under 90% of the limit: the CUDA context,
                            # allocator fragmentation and estimate error take the rest.
MAX_OOM_LADDERS = 3         # remedies are spelled out for the three biggest OOM configs.
MEMORY_CALIBRATE_ABOVE = 1.0  # measured peak / estimate, median over the trials that ran.
                            # Above 1 the "fits" verdicts use estimate x that ratio: on a CPU the
                            # peak is the whole process's RSS (Python, torch, the data), which the
                            # estimate leaves out (a 604 MB estimate peaked at 1.0 GB), and a
                            # verdict must not promise a fit the device did not show. At or below
                            # 1 the raw estimate stands: a ratio never loosens a verdict, since
                            # the estimate already aims high and the CUDA context is in neither.

# ----------------------------------------------------------------------------- effects and narrowing

EFFECT_MIN_RHO = 0.3        # |Spearman rho| below this is "no clear effect": with ~10 trials
                            # a weaker correlation is well within chance.
EFFECT_MIN_N = 4            # fewer trials than this: too few to say anything.
EFFECT_MIN_LOSS = FLOOR     # nats: a val_loss or gap difference smaller than the eval noise
                            # (~0.01 on shakespeare_char) is shown as "no clear effect"; the
                            # floor of the per-run noise (judge.FLOOR).
EFFECT_MIN_RATIO = 0.05     # ...and so is a speed or memory ratio within 5% of 1 (throughput
                            # of the same config varies by a few % from run to run).
REMEDY_MIN_GAP = 0.02       # nats. A remedy "works" (or "made it worse") only if the val-train
                            # gap moves by at least this much too: smaller moves are within the
                            # evaluation noise, however consistent their ranks. Where the noise
                            # is measured, at least REMEDY_GAP_NOISES times the per-run noise.
REMEDY_GAP_NOISES = 2.0     # a gap is val - train, two noisy estimates: 2x the per-run noise is
                            # what REMEDY_MIN_GAP is at the default noise (2 x 0.01).
TOP_FRACTION = 0.25         # the next search centres on the best quarter of the trials...
TOP_MIN = 3                 # ...but on at least three, so one lucky trial cannot decide it.
NARROW_PAD = 0.25           # widen the top trials' span by 25% on each side (log scale for
                            # loguniform) so the optimum can still lie just outside it.

# ----------------------------------------------------------------------------- remedy ladders

# Each ladder is in the guide's order, which is the advice's priority: the report lists the
# remedies in this order and tells the user to try the first one that fits.
OOM_REMEDIES = ("smaller_batch", "smaller_block", "grad_accum", "smaller_model", "mixed_precision")
SLOW_REMEDIES = ("compile", "larger_batch", "fewer_evals", "less_logging")  # guide's order
OVERFIT_REMEDIES = ("dropout", "weight_decay", "smaller_model", "more_data")  # guide's order

# Knobs that set speed per token; trials equal on all but one of them "differ mainly" in it.
SPEED_KEYS = ("batch_size", "block_size", "gradient_accumulation_steps", "n_layer", "n_head",
              "n_embd", "bias", "dtype", "compile", "device")

# ----------------------------------------------------------------------------- noise

# Every comparison of losses in the report says whether it exceeds the noise (report/noise.py
# measures it, tune_gpt.judge decides): the confirm runs' seed noise when the search ran
# them, else a reference seed spread measured once; never below the curves' wobble or
# judge.FLOOR. A gap between two runs is real beyond Student's t (two-sided 95%, the noise's
# degrees of freedom) x sqrt(2) x that.
NOISE_TAIL = 0.5            # the wobble is read from the later half of each curve (by tokens):
                            # there the loss falls slowly and almost linearly, so an
                            # evaluation's distance from the line through its neighbours is
                            # noise, not the curve's bend; the fast early fall would count as noise.
NOISE_MIN_POINTS = 6        # such residuals (val_loss and train_loss, pooled over the trials)
                            # needed before the curves' estimate is used: a median of fewer is
                            # itself too noisy. The beginner searches on shakespeare_char
                            # (eval_iters 20, batch 12-64, block 64; 8 evaluations a trial)
                            # give 6-22 and estimates of 0.007-0.015 nats, median 0.010, which
                            # is EFFECT_MIN_LOSS.
OVERFIT_RISE_NOISES = 3.0   # val_loss turned up when it rose by 3x the curves' wobble (and at
                            # least OVERFIT_MIN_RISE, which is 3x the default 0.01): a rise
                            # between two evaluations of one run is then beyond chance.
THROUGHPUT_NOISE = EFFECT_MIN_RATIO  # tokens/s of the same config differs by a few % between
                            # runs: a measured speed ratio within 5% of 1 is shown as ≈.

# ----------------------------------------------------------------------------- references

# "Is my loss good?" The loss of guessing uniformly is ln(vocab); for shakespeare_char the
# report also quotes nanoGPT's published validation losses (its README), each with its recipe.
NANOGPT_GPU_VAL_LOSS = 1.4697      # config/train_shakespeare_char.py: 6 layers x 384, batch 64,
                                   # block 256, 5,000 iterations (82M tokens), on one A100
NANOGPT_CPU_VAL_LOSS = 1.88        # the README's CPU recipe: 4 layers x 128, batch 12, block 64,
                                   # 2,000 iterations (1.5M tokens), dropout 0; "about 1.88"
SAMPLE_SHOW_CHARS = 300            # the report shows this much of each trial's text sample:
                                   # a few lines, enough to judge spelling and form
