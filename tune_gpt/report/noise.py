"""How much a loss moves by chance, so that every comparison can say whether it is real.

    noise = res.noise             # loss_noise(curves, meta.confirm), computed once per Results
    noise.real(1.740 - 1.688)     # a gap between two single runs beyond the noise?

Two kinds of noise, both in nats:

- Seed noise: one config's loss over runs on different seeds (another init, other batches).
  It is what separates two trials' losses, and the confirm runs measure it
  (meta.confirm["noise"], pooled over the confirmed configs) when the search ran them.
- The curves' wobble: how much one run's loss moves from one evaluation to the next beyond its
  trend. Evaluations score the same batches every time (train.evaluate), so this is the
  model's own fluctuation under the noisy steps of training, not the batches': where a run
  happens to stop within it is one part of the seed noise. In the later half of a curve
  (rules.NOISE_TAIL) the loss falls slowly and almost linearly, so how far an evaluation lies
  from the straight line through its two neighbours is mostly this wobble (Gasser, Sroka and
  Jennen-Steinmetz's pseudo-residuals, 1986; for even spacing, half the second difference
  v[i-1] - 2 v[i] + v[i+1]). Scaled to unit variance for independent noise, their median
  absolute value over val_loss and train_loss of all trials, / 0.6745 (the normal's median
  absolute deviation), estimates its standard deviation; a median, so one odd evaluation or
  a bend of the curve barely moves it.

The per-run noise is the seed noise when measured, else the curves' wobble, and never below
rules.EFFECT_MIN_LOSS: seed noise includes the wobble and more (another init, other batches;
trials of other batch or block sizes are also scored on other text), so a small wobble must
not make small gaps between trials look real. Two single runs differ by chance with a
standard deviation of sqrt(2) x that; a gap is real beyond REAL_Z of those (`Noise.pair`).
Comparisons within one run (val_loss turning up, still falling) use the wobble alone
(`Noise.eval`), at least EFFECT_MIN_LOSS too.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from tune_gpt.report.findings import Noise
from tune_gpt.report.rules import EFFECT_MIN_LOSS, NOISE_MIN_POINTS, NOISE_TAIL, REAL_Z

MAD_TO_SIGMA = 1 / 0.6745   # a normal's standard deviation / its median absolute deviation


def pseudo_residuals(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each inner point's distance from the line through its two neighbours, scaled so that
    independent noise of standard deviation sigma gives residuals of standard deviation sigma
    (a straight line gives zeros). Empty for fewer than 3 points."""
    x, v = np.asarray(x, dtype=float), np.asarray(v, dtype=float)
    if len(v) < 3:
        return np.empty(0)
    span = x[2:] - x[:-2]
    a, b = (x[2:] - x[1:-1]) / span, (x[1:-1] - x[:-2]) / span  # the neighbours' weights
    return (v[1:-1] - a * v[:-2] - b * v[2:]) / np.sqrt(1 + a ** 2 + b ** 2)


def curve_wobble(curves: Iterable[pd.DataFrame]) -> tuple[float, int, int]:
    """(sigma, points, trials): the curves' wobble, read from the later half of each trial's
    val_loss and train_loss curves (each scored on eval_iters batches of the same size: the
    same fluctuation of the model, seen twice). NaN with fewer than NOISE_MIN_POINTS residuals."""
    points: list[np.ndarray] = []
    for c in curves:
        c = c[np.isfinite(c["tokens"]) & (c["tokens"] > 0)].drop_duplicates("tokens")
        if len(c) < 3:
            continue
        tail = c[c["tokens"] >= (1 - NOISE_TAIL) * c["tokens"].max()]
        found = [pseudo_residuals(ok["tokens"].to_numpy(), ok[col].to_numpy())
                 for col in ("val_loss", "train_loss")
                 if len(ok := tail[np.isfinite(tail[col])]) >= 3]
        if found:
            points.append(np.concatenate(found))
    r = np.concatenate(points) if points else np.empty(0)
    if len(r) < NOISE_MIN_POINTS:
        return float("nan"), len(r), len(points)
    return float(np.median(np.abs(r)) * MAD_TO_SIGMA), len(r), len(points)


def loss_noise(curves: Iterable[pd.DataFrame], confirm: Mapping[str, Any] | None) -> Noise:
    """The noise every loss comparison of a search is judged against, from its trials'
    curves (columns tokens, val_loss, train_loss) and its confirm runs' summary."""
    wobble, n, trials = curve_wobble(curves)
    eval_sigma = max(wobble, EFFECT_MIN_LOSS) if math.isfinite(wobble) else EFFECT_MIN_LOSS
    confirm = confirm or {}
    seed = confirm.get("noise")
    if isinstance(seed, (int, float)) and math.isfinite(seed):
        runs = sum(int(c.get("n") or 0) for c in confirm.get("configs") or [])
        noise = Noise(max(float(seed), EFFECT_MIN_LOSS), "confirm", float(seed), runs)
    elif math.isfinite(wobble):
        noise = Noise(max(wobble, EFFECT_MIN_LOSS), "curves", wobble, n, trials)
    else:
        noise = Noise(EFFECT_MIN_LOSS, "rule")
    noise.eval = eval_sigma
    noise.pair = REAL_Z * math.sqrt(2) * noise.per_run
    return noise
