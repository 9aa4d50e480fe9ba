"""Memory a config needs, for the OOM remedies ("... needs ~X GB"): the project's own
estimator (`tune_gpt.estimate`), the one the search uses to skip configs as predicted_oom,
so the report and the search agree on what fits; and how the trials' measured peaks
compare with it (`calibration`), which the "fits" verdicts then use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tune_gpt.config import from_mapping
from tune_gpt.errors import UserError
from tune_gpt.estimate import Estimate, estimate
from tune_gpt.report.findings import MemoryCalibration
from tune_gpt.report.rules import MEMORY_CALIBRATE_ABOVE, MEMORY_HEADROOM
from tune_gpt.trial import OOM, PREDICTED_OOM


def need_bytes(knobs: dict[str, Any], vocab_size: int | None) -> float | None:
    """Estimated peak training memory in bytes for these knobs, or None if unknown."""
    est = _estimate(knobs, vocab_size)
    return None if est is None else float(est.total)


def _estimate(knobs: dict[str, Any], vocab_size: int | None) -> Estimate | None:
    if not vocab_size:
        return None
    try:  # an incomplete or invalid config (a trial's row read back): no estimate, no guess;
        # the report's memory columns then show "—" for that trial
        return estimate(from_mapping(knobs), vocab_size)
    except (UserError, TypeError, ValueError, KeyError):
        return None


def biggest_part(knobs: dict[str, Any], vocab_size: int | None) -> tuple[str, float] | None:
    """What most of the estimate is, and its share: "activations" (activations and logits,
    which grow with batch_size x block_size) or "model" (weights, gradients, AdamW state and
    autocast copies, which grow with n_layer x n_embd^2)."""
    e = _estimate(knobs, vocab_size)
    if e is None:
        return None
    act = e.activations + e.logits
    model = e.weights + e.optimizer + e.autocast_copies
    if e.gradient_accumulation_steps > 1:  # .grad lives through the micro-batches
        model += e.gradients
    total = act + model
    return ("activations", act / total) if act >= model else ("model", model / total)


def calibration(trials: pd.DataFrame, device: str) -> MemoryCalibration | None:
    """Measured peak / estimate over the trials that ran and recorded both; None when none
    did. `factor` is the ratio when above MEMORY_CALIBRATE_ABOVE, else 1 (never loosens)."""
    t = trials[~trials["outcome"].isin((OOM, PREDICTED_OOM))]
    peak, est = t["peak_mem_bytes"], t["est_mem_bytes"]
    ok = np.isfinite(peak) & np.isfinite(est) & (peak > 0) & (est > 0)
    if not ok.any():
        return None
    r = peak[ok] / est[ok]
    ratio = float(r.median())
    return MemoryCalibration(ratio, float(r.min()), float(r.max()), int(ok.sum()),
                             ratio if ratio > MEMORY_CALIBRATE_ABOVE else 1.0, device)


def fits(mem: float | None, limit: float | None, factor: float = 1.0) -> bool | None:
    """Does an estimate fit under the limit (with MEMORY_HEADROOM), once scaled by the
    measured `factor`? None when either is unknown."""
    if mem is None or not limit:
        return None
    return mem * factor <= MEMORY_HEADROOM * limit


def smaller_model(n_layer: int, n_head: int, n_embd: int) -> tuple[int, int]:
    """The guide's "smaller model" step (6 layers x 384 -> 4 x 256): about two thirds of
    the layers and of the width, the width kept divisible by n_head (and by 16 when it can
    be, for tidy matrix shapes)."""
    layers = max(1, round(n_layer * 2 / 3))
    unit = n_head * 16 // math.gcd(n_head, 16)
    if unit >= n_embd:
        unit = n_head
    width = max(unit, round(n_embd * 2 / 3 / unit) * unit)
    if width >= n_embd:
        width = max(n_head, n_embd - unit)
    return layers, width
