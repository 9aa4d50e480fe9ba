"""How much a loss moves by chance, so that every comparison can say whether it is real.

    noise = res.noise             # loss_noise(curves, meta.confirm), computed once per Results
    noise.real(1.740 - 1.688)     # a gap between two single runs beyond the noise?

The rule itself (Student's t, the reference seed spread, the floor) is tune_gpt.judge's, the
one the confirm runs use too; this module measures what the report feeds it. Two kinds of
noise, both in nats:

- Seed noise: one config's loss over runs on different seeds (another init, other batches).
  It is what separates two trials' losses, and the confirm runs measure it
  (meta.confirm["noise"], pooled over the confirmed configs, re-runs only) when the search
  ran them. Otherwise the report uses judge.REFERENCE_SEED_NOISE, measured once on
  shakespeare_char, and says so.
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

The per-run noise (judge.seed_noise) is the confirm runs' seed noise, else the reference
seed spread; never below the curves' wobble (on this data a run's evaluations move that much
whatever the seed) nor judge.FLOOR. Comparisons within one run (val_loss turning up, still
falling) use the wobble alone (`Noise.eval`), at least judge.FLOOR too.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from tune_gpt.judge import Noise, seed_noise
from tune_gpt.report.rules import NOISE_MIN_POINTS, NOISE_TAIL

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
    """The noise every loss comparison of a search is judged against (judge.seed_noise), from
    its trials' curves (columns tokens, val_loss, train_loss) and its confirm runs' summary."""
    wobble, n, trials = curve_wobble(curves)
    confirm = confirm or {}
    sd, dof = confirm.get("noise"), int(confirm.get("dof") or 0)
    runs = sum(int(c.get("n") or 0) for c in confirm.get("configs") or [])
    return seed_noise(float(sd) if isinstance(sd, (int, float)) else None, dof, runs,
                      wobble, n, trials)
