"""The horizon: what a config measured over a trial's length says about a longer run.

A search measures each config for a trial's length; the model a user keeps is trained for
longer (the search's final phase, `final:`, or the user's own run). These rules bring a trial
to that horizon, each with its source, and every caller uses these, not copies:

- **Loss against tokens.** A trial's own evaluations are fitted by L(D) = E + A * D**-alpha,
  the data term of the scaling-law form of Hoffmann et al. 2022 ("Training Compute-Optimal
  Large Language Models", eq. 2) for one model size, which describes it within its
  evidence; past its last evaluation the loss is brought forward from where the run ended
  by a measured exponent (DATA_EXPONENT; its measured spread, EXPONENT_SD, for law_sd), at
  most MAX_EXTRAPOLATION times past the longest evaluation (`LossCurve.predict`).
- **Learning rate against tokens.** The best learning rate falls as training gets longer:
  lr* proportional to D**-0.32 (Bjorck et al. 2024, "Scaling Optimal LR Across Token
  Horizons", arXiv:2409.19913, fit over 50M-7B models). `lr_for_tokens` moves a trial's lr
  from the tokens its schedule was planned for to the new horizon.
- **Overfitting.** Past where a model starts to overfit its training split (`overfit_onset`,
  measured on licenses with no dropout, so conservative with dropout), a run that keeps its
  best-validation checkpoint gains nothing, so `plan_final` given the split's size predicts
  there at the latest. `tune-gpt plan` and the CPU width prior (tune_gpt.space.auto_priors)
  use it; the search's final phase does not yet (its effect there is not measured).
- How much of a budget the search explores before the final run: tune_gpt.explore.

The final config is the candidate whose fitted curve predicts the lowest loss at the tokens
it can train in the time (or compute) left, at its own measured speed: a small, fast model
sees more tokens than a big one in the same minutes, and the rule weighs that.

    plan = plan_final(rows, curves, configs, tokens_for=lambda row, rate: 300 * rate)
    plan.config, plan.lines()   # the final run's knobs; each number with its reason
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from tune_gpt.config import tokens_per_iter
from tune_gpt.schedule import stretched_decay

LR_TOKENS_EXPONENT = 0.32   # Bjorck et al. 2024: lr* ~ D^-0.32
LR_RULE = "Bjorck et al. 2024: the best lr scales as tokens^-0.32"
MAX_EXTRAPOLATION = 10.0    # predict at most this many times the longest tokens measured
# Past a run's last evaluation, its loss is brought forward from where it ended:
# L(D) = L_end * (D_end / D)^DATA_EXPONENT. Not by the run's own fit: under a decaying
# learning rate a run's curve drops fastest at its end, and a fit reads that as gains still
# to come (fitted on the six 1.5M-token runs of nanoGPT's CPU recipe in
# benchmarks/results/seed_noise, it predicted 1.42-1.47 at 13.8M tokens, where the recipe
# trained that long measured 1.522). The exponent is measured there: their mean 1.908 at
# 1.536M tokens -> 1.522 at 13.8M: ln(1.908 / 1.522) / ln(13.8 / 1.536) = 0.103.
DATA_EXPONENT = 0.10
# How far that exponent is off, measured on the development corpora (the report corpora
# check it: README, "Your long run"): a run's end (tokens_end, loss_end) and a longer run's
# measured best (tokens, loss) took ln(loss_end / loss) / ln(tokens / tokens_end); EXPONENT_SD:
# their spread about DATA_EXPONENT (read off the first run, so one dof fewer); law_sd uses it.
EXPONENT_RUNS = (
    # corpus, what, tokens_end, loss_end, tokens, loss
    ("tinyshakespeare", "nanoGPT's CPU recipe, 6 seeds' mean (benchmarks/results/seed_noise)",
     1.536e6, 1.908, 13.8e6, 1.522),
    ("tinyshakespeare", "the beginner search's 4x192 prior", 2.0e6, 1.711, 4.38e6, 1.581),
    ("tinyshakespeare", "horizon_transfer's plan, 5x192", 1_000_704, 1.8375, 8_005_632, 1.5291),
    ("licenses", "horizon_transfer's plan, 4x128, to where it starts to overfit",
     1_000_704, 1.6666, 3_907_556, 1.6079),
)


def exponent_taken(run: tuple) -> float:
    _, _, t0, l0, t1, l1 = run
    return math.log(l0 / l1) / math.log(t1 / t0)


EXPONENTS_TAKEN = tuple(exponent_taken(r) for r in EXPONENT_RUNS)
EXPONENT_DOF = len(EXPONENT_RUNS) - 1
EXPONENT_SD = math.sqrt(sum((a - DATA_EXPONENT) ** 2 for a in EXPONENTS_TAKEN) / EXPONENT_DOF)


def law_sd(loss: float, tokens_end: float, tokens: float) -> float:
    """The standard deviation of a loss brought from tokens_end to tokens by DATA_EXPONENT:
    loss x ln(tokens / tokens_end) x EXPONENT_SD (0 within the evidence)."""
    if tokens <= tokens_end or tokens_end <= 0:
        return 0.0
    return loss * math.log(tokens / tokens_end) * EXPONENT_SD


MIN_POINTS = 3              # evaluations a curve needs before it is fitted
# Where a model starts to overfit, measured on the licenses corpus (226k training tokens;
# benchmarks/results/budget_best/): with no dropout, the validation loss turned up after
# ~60 x D/N epochs, D/N being the training split's tokens per non-embedding parameter:
# 7.7 epochs for 4x192 (D/N 0.13), 17 for 4x128 (D/N 0.29).
ONSET_EPOCHS_PER_DN = 60.0
# A final run on all of a search's trial slots (threads, or shares of one GPU) is not
# quite `slots` times as fast as one trial: on 2 CPU cores nanoGPT's CPU recipe ran 1.91x
# as fast with 2 threads as with 1 (benchmarks/results/train_throughput.md: 0.955 a slot);
# 0.9 allows for a busier machine. The final run's time limit catches a slower one.
FINAL_EFFICIENCY = 0.9
STARTUP_S = 20.0            # a final run's start (Ray, data, model) before its first step


@dataclass
class LossCurve:
    """L(D) = E + A * D**-alpha fitted to one trial's (tokens, val_loss) evaluations; or,
    with too few points, its last loss (a flat curve: no further gain assumed)."""

    E: float
    A: float
    alpha: float
    last_tokens: float
    last_loss: float
    points: int
    fitted: bool
    rmse: float = 0.0  # the fit's root-mean-square residual over its points

    def predict(self, tokens: float) -> float:
        """The loss at `tokens`: within the evidence, the fit; past it, brought forward from
        where the run ended (DATA_EXPONENT). ValueError past MAX_EXTRAPOLATION times the
        evidence."""
        if tokens <= 0:
            raise ValueError(f"no loss at {tokens:,.0f} tokens: nothing trained")
        if tokens > self.last_tokens * MAX_EXTRAPOLATION * (1 + 1e-9):
            raise ValueError(f"{tokens:,.0f} tokens is more than {MAX_EXTRAPOLATION:g}x the "
                             f"{self.last_tokens:,.0f} tokens measured")
        if tokens > self.last_tokens:
            return self.last_loss * (self.last_tokens / tokens) ** DATA_EXPONENT
        if not self.fitted:
            return self.last_loss
        return self.E + self.A * tokens ** -self.alpha

    def reach(self) -> float:
        """The most tokens this curve predicts at."""
        return self.last_tokens * MAX_EXTRAPOLATION


def fit_curve(tokens: Sequence[float], losses: Sequence[float]) -> LossCurve:
    """Fit E + A * D**-alpha by least squares (E between 0 and the lowest loss, alpha in
    [0.05, 1]). Fewer than MIN_POINTS finite points, or a fit that fails: the flat curve."""
    pts = sorted((float(t), float(v)) for t, v in zip(tokens, losses)
                 if t and t > 0 and math.isfinite(float(v)))
    if not pts:
        raise ValueError("no evaluation to fit")
    last_t, last_v = pts[-1]
    flat = LossCurve(last_v, 0.0, 0.0, last_t, last_v, len(pts), False)
    if len(pts) < MIN_POINTS:
        return flat
    import numpy as np
    from scipy.optimize import least_squares

    t = np.array([p[0] for p in pts]) / last_t  # scaled: D / last_t in (0, 1]
    v = np.array([p[1] for p in pts])
    lo = float(v.min())

    def resid(x: Any) -> Any:
        return x[0] + x[1] * t ** -x[2] - v

    try:
        fit = least_squares(resid, x0=[lo * 0.9, max(lo * 0.1, 1e-3), 0.5],
                            bounds=([0.0, 0.0, 0.05], [lo, np.inf, 1.0]))
    except (ValueError, FloatingPointError):
        return flat
    if not fit.success or not np.all(np.isfinite(fit.x)):
        return flat
    E, A_scaled, alpha = (float(x) for x in fit.x)
    rmse = float(np.sqrt(np.mean(fit.fun ** 2)))
    # back to raw tokens: A * (D / last_t)^-alpha = (A * last_t^alpha) * D^-alpha
    return LossCurve(E, A_scaled * last_t ** alpha, alpha, last_t, last_v, len(pts), True,
                     rmse)


def non_embedding_params(n_layer: int, n_embd: int) -> int:
    """Kaplan et al. 2020's N: 12 * n_layer * n_embd^2 (attention 4C^2, MLP 8C^2)."""
    return 12 * n_layer * n_embd * n_embd


def overfit_onset(train_tokens: float | None, n_layer: Any, n_embd: Any) -> float | None:
    """The tokens after which a n_layer x n_embd model starts to overfit a training split of
    `train_tokens`: ONSET_EPOCHS_PER_DN x D/N epochs of it (D/N = train_tokens / N), which is
    ONSET_EPOCHS_PER_DN x train_tokens^2 / N. None when a size is unknown."""
    try:
        n = non_embedding_params(int(n_layer), int(n_embd))
    except (TypeError, ValueError):
        return None
    if not train_tokens or train_tokens <= 0 or n <= 0:
        return None
    return ONSET_EPOCHS_PER_DN * float(train_tokens) ** 2 / n


def lr_for_tokens(lr: float, planned_tokens: float, tokens: float) -> float:
    """A learning rate tuned for a schedule of `planned_tokens`, moved to `tokens`."""
    if planned_tokens <= 0 or tokens <= 0:
        return lr
    return lr * (tokens / planned_tokens) ** -LR_TOKENS_EXPONENT


@dataclass
class Candidate:
    """One explored config at the final horizon."""

    trial_id: str
    tokens: int          # the tokens its final model will have seen: start + what it can
                         # train in the final phase, at its measured speed
    predicted: float     # its fitted curve at those tokens
    measured: float      # its best val_loss in the search
    measured_tokens: int
    tokens_per_s: float  # measured in the search (one trial slot)
    fitted: bool
    note: str = ""       # why it was left out, if it was
    start: int = 0       # tokens already trained: the final run continues the trial's state
    onset: float | None = None  # overfit_onset: when below `tokens`, predicted there instead

    @property
    def predicted_at(self) -> int:
        """The tokens `predicted` is for: `tokens`, or the onset when that comes first (never
        before the tokens its curve measured)."""
        if self.onset is None:
            return self.tokens
        return int(min(self.tokens, max(self.onset, self.measured_tokens)))


@dataclass
class FinalPlan:
    """The final run: which trial's config, for how long, at which learning rate, and why."""

    trial_id: str
    config: dict[str, Any]
    tokens: int
    predicted: float | None  # None: no candidate's curve reaches the horizon
    lr_from: float
    lr: float
    planned_tokens: int
    seconds: float | None
    candidates: list[Candidate] = field(default_factory=list)
    start_tokens: int = 0  # > 0: the run continues the trial's state from there
    schedule: str = ""     # the final run's lr_schedule when the plan set one (FINAL_SCHEDULE)

    def lines(self) -> list[str]:
        """Each number of the plan with its reason (validate, the log, the report)."""
        c = next(x for x in self.candidates if x.trial_id == self.trial_id)
        fitted = [x for x in self.candidates if not x.note]
        if self.predicted is not None:
            pick = (f"config of trial {self.trial_id}: the lowest predicted val_loss at the "
                    f"horizon ({self.predicted:.4f}) of {len(fitted)} candidate(s), each "
                    f"brought from where it ended to the tokens it can train, as L_end * "
                    f"(D_end / D)^{DATA_EXPONENT:g} (measured on tinyshakespeare)")
        else:
            why = sorted({x.note.split(":")[0] for x in self.candidates if x.note})
            pick = (f"config of trial {self.trial_id}: the best measured val_loss "
                    f"({c.measured:.4f}); no candidate's curve could be brought to the "
                    f"horizon ({'; '.join(why)}), so nothing is predicted")
        if self.predicted is not None and c.predicted_at < c.tokens:
            pick += (f"; predicted at {c.predicted_at:,} tokens, not "
                     f"{self.tokens:,}: {self.config.get('n_layer')}x"
                     f"{self.config.get('n_embd')} starts to overfit this training split "
                     f"there (~{ONSET_EPOCHS_PER_DN:g} x D/N epochs, measured on licenses), "
                     f"and the best-validation model kept past it is assumed to gain nothing")
        start = [] if not self.start_tokens else [
            f"continues trial {self.trial_id}'s own state at {self.start_tokens:,} tokens "
            f"(model and optimizer) instead of starting again, so the compute exploring spent "
            f"on it is kept; its learning rate jumps back up there to where the longer "
            f"schedule stands at that step, a warm restart as in SGDR (Loshchilov & Hutter "
            f"2017). The prediction treats it as one uninterrupted run, so it leans "
            f"optimistic"]
        if self.schedule == "wsd":
            start.append(FINAL_SCHEDULE_WHY)
        out = [pick, *start,
               f"{self.tokens - self.start_tokens:,} tokens to train"
               + (f" ({self.tokens:,} in all)" if self.start_tokens else "") + ": " + (
                   f"({self.seconds:.0f} s left - {STARTUP_S:g} s to start) x "
                   f"{c.tokens_per_s:,.0f} tokens/s measured in the search x the final run's "
                   f"speed-up on all trial slots, or the token or FLOP budget left, whichever "
                   f"is less" if self.seconds is not None else "the compute budget left"),
               f"learning_rate {self.lr:.3g}: the trial's {self.lr_from:.3g} for "
               f"{self.planned_tokens:,} tokens, x ({self.tokens:,} / {self.planned_tokens:,})"
               f"^-{LR_TOKENS_EXPONENT} ({LR_RULE})"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _curve_of(curves: Any, trial_id: str) -> tuple[list[float], list[float]]:
    c = curves[curves["trial_id"].astype(str) == str(trial_id)]
    return list(c["tokens"]), list(c["val_loss"])


def candidates(rows: Iterable[Mapping[str, Any]], curves: Any,
               tokens_for: Callable[[Mapping[str, Any], float], float],
               usable: Sequence[str], score: str,
               continues: Callable[[str], bool] | None = None,
               onset: Callable[[str], float | None] | None = None) -> list[Candidate]:
    """Every usable trial with a curve, at the tokens it can train in the final phase:
    `tokens_for(row, tokens_per_s)`, given its speed measured in the search (its tokens over
    its wall time, start and evaluations included), plus the tokens it already trained when
    `continues(trial_id)` (its state is kept: the final run picks it up where it stopped).
    Its loss is predicted there, or at `onset(trial_id)` (overfit_onset) when that comes
    first: past it the kept best-validation model stops improving. Left-out trials carry a
    note."""
    out = []
    for r in rows:
        if r.get("outcome") not in usable or not _finite(r.get(score)):
            continue
        tid = str(r["trial_id"])
        t, v = _curve_of(curves, tid)
        if not t:
            continue
        curve = fit_curve(t, v)
        rate = trial_speed(r)
        tpi = int(r.get("tokens_per_iter") or 1)
        start = int(curve.last_tokens // tpi * tpi) if continues and continues(tid) else 0
        budget = tokens_for(r, rate)
        new = int(budget // tpi * tpi) if _finite(budget) else 0
        n = start + new if new > 0 else 0
        note = "" if n > 0 else "no measured speed" if rate <= 0 else "no tokens left to train"
        c = Candidate(tid, n, math.inf, float(r[score]), int(curve.last_tokens), rate,
                      curve.fitted, note, start, onset(tid) if onset else None)
        try:
            c.predicted = curve.predict(c.predicted_at) if not c.note else math.inf
        except ValueError as e:
            c.note = f"beyond its evidence: {e}"
        if not curve.fitted and not c.note:
            c.predicted, c.note = math.inf, f"too few evaluations ({curve.points}) to fit a curve"
        out.append(c)
    return out


def trial_speed(row: Mapping[str, Any]) -> float:
    """A trial's tokens per second with its evaluations (their share of its time taken
    off), not its start (a final run's start is STARTUP_S, counted apart): its training
    throughput at its last evaluation, which a retried or resumed trial measures afresh;
    tokens over wall time when that is missing. 0 when neither is known."""
    tps, toks, wall, ev = (row.get(k) for k in ("tokens_per_s", "tokens", "wall_s", "eval_s"))
    share = min(max(float(ev) / float(wall), 0.0), 0.5) \
        if _finite(ev) and _finite(wall) and wall > 0 else 0.0
    if _finite(tps) and tps > 0:
        return float(tps) * (1 - share)
    if _finite(toks) and _finite(wall) and wall > 0:
        return float(toks) / float(wall)
    return 0.0


# The search's final run: warmup-stable-decay (tune_gpt/schedule.py; why: FINAL_SCHEDULE_WHY).
FINAL_SCHEDULE = "wsd"
FINAL_SCHEDULE_WHY = (
    "schedule wsd: the learning rate held, then a 1 - sqrt cool-down over the last "
    "cooldown_frac of the run (Hägele et al. 2024); on tinyshakespeare WSD ended 0.053 +- "
    "0.003 nats below cosine at 2,000 iterations over 3 seeds "
    "(benchmarks/results/wsd_vs_cosine), and while the rate is held the run's length can "
    "move with no jump in it (tune_gpt.retime)")


def plan_final(rows: Sequence[Mapping[str, Any]], curves: Any,
               configs: Mapping[str, Mapping[str, Any]], *,
               tokens_for: Callable[[Mapping[str, Any], float], float],
               seconds: float | None = None,
               usable: Sequence[str] = ("completed", "stopped_early"),
               score: str = "best_val_loss",
               continues: Callable[[str], bool] | None = None,
               schedule: str = "", train_tokens: float | None = None) -> FinalPlan | None:
    """The final run's plan, or None when no trial can be brought to the horizon.
    `configs`: trial id -> the knobs it trained with (max_iters, learning_rate, ...);
    `tokens_for(row, tokens_per_s)`: the tokens that trial's config can train in what is
    left of the budget; `seconds`: the time left, when the budget is in time (for the
    plan's reasons); `continues(trial_id)`: whether the run can continue that trial's
    state (the search's final phase) instead of starting again (a user's own run);
    `schedule`: the run's lr_schedule, when not the trial's own; `train_tokens`: the
    training split's size, for where each config starts to overfit (overfit_onset)."""

    def onset(trial_id: str) -> float | None:
        c = configs.get(trial_id, {})
        return overfit_onset(train_tokens, c.get("n_layer"), c.get("n_embd"))

    cands = [c for c in candidates(rows, curves, tokens_for, usable, score, continues,
                                   onset if train_tokens else None)
             if c.trial_id in configs]
    ok = [c for c in cands if not c.note and c.tokens > 0]
    if not ok:  # nothing fitted: the best measured trial, at the horizon it can reach
        ok = [c for c in cands if c.tokens > 0]
        if not ok:
            return None
        best = min(ok, key=lambda c: c.measured)
    else:
        best = min(ok, key=lambda c: c.predicted)
    predicted = best.predicted if not best.note else None
    knobs = dict(configs[best.trial_id])
    tpi = tokens_per_iter(knobs)
    planned = int(knobs.get("max_iters", 0)) * tpi
    lr_from = float(knobs["learning_rate"])
    lr = lr_for_tokens(lr_from, planned, best.tokens)
    iters = max(1, best.tokens // tpi)
    ratio = float(knobs.get("min_lr", lr_from / 10)) / lr_from if lr_from else 0.1
    decay = stretched_decay(int(knobs.get("lr_decay_iters", 0) or 0),
                            int(knobs.get("max_iters", 0) or 0), iters)
    knobs.update(max_iters=iters, lr_decay_iters=decay, learning_rate=lr, min_lr=lr * ratio,
                 warmup_iters=min(int(knobs.get("warmup_iters", 0)), iters // 10 or 1))
    if schedule:
        knobs["lr_schedule"] = schedule
    return FinalPlan(best.trial_id, knobs, iters * tpi, predicted, lr_from, lr, planned,
                     seconds, cands, best.start, schedule)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
