"""Finished runs of one config at fractions of its trial's length: what `tune-gpt plan
--measure` trains so that its predicted loss comes from the user's own corpus.

    points = finished_runs(config, Path("reports/NAME/measure-<trial>"))
    # [(250,368, 2.19), (500,736, 1.99), (1,000,704, 1.84)]: (tokens, val_loss)

A search reads each trial mid-schedule, where a decaying learning rate makes the curve fall
fastest at its end, so a trial's own curve overstates what more tokens buy (README, "Your
long run"). A finished run has no such bias: each run here is the config with its whole
schedule scaled to f x its trial's tokens (max_iters and lr_decay_iters; its learning rate,
warmup and seed kept), its best-validation model scored on the whole validation split
(tune_gpt.evaluate). `finished_predict` fits those points. Each run's result
is kept in OUT/f<f>.json and its model in OUT/f<f>/, so a plan asked again trains nothing
again, and a run cut short resumes from its last.pt.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tune_gpt.errors import UserError

FRACTIONS = (0.25, 0.5, 1.0)  # of the trial's tokens: cost 1.75 trials
EVALS = 10                    # evaluations a run (its best-validation model is kept)

# The rule. Finished runs' losses are fitted by the data term of Hoffmann et al. 2022
# ("Training Compute-Optimal Large Language Models", eq. 2) for one model size,
# L(D) = E + A * D^-FINISHED_ALPHA, E and A by least squares with the exponent fixed (three
# points with a seed's noise cannot pin a third parameter so far out: fitted free, a 0.005
# change in one point moves an 8x prediction by up to 0.045). FINISHED_ALPHA is what three
# finished runs of horizon_transfer's 5x192 gave on tinyshakespeare, a development corpus
# (benchmarks/results/finished_slope: 0.25M, 0.5M, 1M tokens fit exactly at 0.331; 0.5M,
# 1M, 2M at 0.347), between Hoffmann et al.'s 0.28 and Besiroglu et al. 2024's refit, 0.37.
FINISHED_ALPHA = 0.33
# A curve that bends far faster than that is running out of data: on licenses, the other
# development corpus (226k training tokens, a trial reads it 4.4 times), the three runs fit
# only with an exponent of 1 (the bound), and the finished runs at 2M tokens came out 0.02-0.05
# under the 1M ones, where the data term had promised 0.2-0.25; repeated data soon stops
# paying (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"). So when the
# free fit's exponent (horizon.fit_curve) passes SATURATED_ALPHA, no gain is predicted past
# the longest finished run.
SATURATED_ALPHA = 2 * FINISHED_ALPHA
# How far the rule has missed, on the development corpora: (corpus, what, the runs at
# FRACTIONS of a trial, the tokens predicted at, the loss measured there).
FINISHED_CHECKS = (
    ("tinyshakespeare", "the plan's 5x192, 8x its trial (horizon_transfer)",
     ((250_368, 2.1911), (500_736, 1.9939), (1_000_704, 1.8373)), 8_005_632, 1.5291),
    ("licenses", "the plan's 4x128, at its overfitting onset (horizon_transfer)",
     ((250_368, 2.3061), (500_736, 1.8608), (1_000_704, 1.6483)), 3_907_556, 1.6079),
    ("licenses", "the search's winner 4x192 unchanged, 8x (horizon_transfer)",
     ((250_368, 2.2095), (500_736, 1.8175), (1_000_704, 1.6267)), 8_005_632, 1.6418),
)


@dataclass
class Prediction:
    loss: float
    noise_x: float      # sqrt(sum(w_i^2)): how much the points' own noise moves `loss`
    alpha: float        # the free fit's exponent (SATURATED_ALPHA and past: saturated)
    saturated: bool

    def why(self) -> str:
        if self.saturated:
            return (f"the runs bend with an exponent of {self.alpha:.2f}, past "
                    f"{SATURATED_ALPHA:.2f}: the data is running out, so no gain is "
                    f"predicted past the longest run (measured on licenses; "
                    f"tune_gpt/measure.py)")
        return (f"fitted by E + A * D^-{FINISHED_ALPHA:g} (Hoffmann et al. 2022's data term, "
                f"its exponent measured on tinyshakespeare; tune_gpt/measure.py)")


def finished_weights(tokens: Sequence[float], at: float) -> list[float]:
    """w such that sum(w_i * L_i) is the least-squares fit of E + A * D^-FINISHED_ALPHA to
    losses L_i at `tokens`, read at `at` tokens."""
    x = [float(t) ** -FINISHED_ALPHA for t in tokens]
    if len(x) < 2 or len(set(x)) < 2:
        raise ValueError("a fit needs finished runs of at least two lengths")
    mean = sum(x) / len(x)
    sxx = sum((v - mean) ** 2 for v in x)
    x0 = float(at) ** -FINISHED_ALPHA
    return [1 / len(x) + (x0 - mean) * (v - mean) / sxx for v in x]


def finished_predict(points: Sequence[tuple[float, float]], at: float) -> Prediction:
    """The loss at `at` tokens from finished runs (tokens, loss), by the rule above."""
    from tune_gpt.horizon import fit_curve

    pts = sorted((float(t), float(v)) for t, v in points)
    w = finished_weights([t for t, _ in pts], at)
    free = fit_curve([t for t, _ in pts], [v for _, v in pts])
    alpha = free.alpha if free.fitted else FINISHED_ALPHA
    if alpha > SATURATED_ALPHA and at > pts[-1][0]:
        return Prediction(pts[-1][1], 1.0, alpha, True)
    return Prediction(sum(wi * v for wi, (_, v) in zip(w, pts)),
                      math.sqrt(sum(wi * wi for wi in w)), alpha, False)


CHECK_ERRORS = tuple(finished_predict(pts, at).loss - got for _, _, pts, at, got in FINISHED_CHECKS)
FINISHED_SD = math.sqrt(sum(e * e for e in CHECK_ERRORS) / len(CHECK_ERRORS))
FINISHED_DOF = len(FINISHED_CHECKS)


def scaled(config: Mapping[str, Any], f: float, out_dir: Path) -> dict[str, Any]:
    """The config's knobs for f x its trial's tokens, writing to out_dir."""
    iters = max(1, round(int(config["max_iters"]) * f))
    decay = max(1, round(int(config.get("lr_decay_iters") or config["max_iters"]) * f))
    return {**config, "max_iters": iters, "lr_decay_iters": decay,
            "warmup_iters": min(int(config.get("warmup_iters", 0)), max(1, iters // 10)),
            "eval_interval": max(1, iters // EVALS), "log_interval": max(1, iters // EVALS),
            "out_dir": str(out_dir)}


def finished_runs(config: Mapping[str, Any], out: Path, *, data: str | None = None,
                  fractions: tuple[float, ...] = FRACTIONS, threads: int | None = None,
                  say: Callable[[str], None] = print) -> list[tuple[int, float]]:
    """(tokens, whole-split val_loss) of the config trained to each fraction of its trial's
    tokens, oldest results reused. `data` replaces the config's own data set (UserError when
    neither is there)."""
    from tune_gpt.config import from_mapping

    knobs = dict(config) | ({"dataset": data} if data else {})
    dataset = str(knobs.get("dataset", ""))
    if "/" in dataset or os.sep in dataset or dataset.endswith(".txt"):
        if not Path(dataset).expanduser().exists():
            raise UserError(f"--measure: the search's data {dataset} is not there; pass "
                            f"--data PATH (the same corpus the search read)")
    say(f"--measure: finished runs of the chosen config, in {out}")
    points = []
    for f in fractions:
        folder, done = out / f"f{f:g}", out / f"f{f:g}.json"
        cfg = from_mapping(scaled(knobs, f, folder), "--measure")
        got = _read(done)
        if got is None:
            got = _train_and_score(cfg, folder, data, threads, say)
            out.mkdir(parents=True, exist_ok=True)
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(got), encoding="utf-8")
            os.replace(tmp, done)
        else:
            say(f"  f{f:g}: {got['tokens']:,} tokens, val_loss {got['val_loss']:.4f} (kept)")
        points.append((int(got["tokens"]), float(got["val_loss"])))
    return points


def _read(path: Path) -> dict[str, Any] | None:
    try:
        got = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) and {"tokens", "val_loss"} <= set(got) else None


def _train_and_score(cfg: Any, folder: Path, data: str | None, threads: int | None,
                     say: Callable[[str], None]) -> dict[str, Any]:
    from tune_gpt.evaluate import evaluate_checkpoint
    from tune_gpt.train import train

    tokens = cfg.max_iters * cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps
    resume = (folder / "last.pt").is_file()
    say(f"  training {cfg.max_iters:,} iterations ({tokens:,} tokens) to {folder}"
        f"{' (resumed)' if resume else ''} ...")
    result = train(cfg, resume=resume, threads=threads, save=True)
    if result.diverged:
        raise UserError(f"--measure: the run in {folder} diverged; plan without --measure")
    got = evaluate_checkpoint(folder / "ckpt.pt", data=data)
    say(f"  {tokens:,} tokens: val_loss {got.val_loss:.4f} on the whole validation split")
    return {"tokens": tokens, "val_loss": got.val_loss, "iter": got.iter,
            "wall_s": result.wall_s}
