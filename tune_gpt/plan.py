"""`tune-gpt plan`: a finished search's measurements brought to the user's own, longer run.

    tune-gpt plan beginner-cpu --tokens 20M            # a search name (under ./runs)
    tune-gpt plan reports/beginner-cpu --tokens 20M --json

The numbers come from tune_gpt.horizon, the module the search's own final phase uses: each
explored config's evaluations fitted by L(D) = E + A*D^-alpha and brought to N tokens, the
lowest prediction chosen, its learning rate moved to N tokens by Bjorck et al. 2024's
tokens^-0.32 rule (a cited rule, not fitted to this search: too few learning rates reach the
same length in one search to fit one). The interval is Student's t times the root of the
seed noise squared (the search's confirm runs, else the reference spread) plus the horizon
rule's measured miss squared (horizon.LAW_SD). A plan beyond
10x the longest curve's tokens is refused, with one line saying how far it can go.

The command (tune_gpt.report.folder.plan_run / write_plan) writes plan-<N>.yaml (for
`tune-gpt train`) and plan-<N>_nanogpt.py (nanoGPT's config format) and prints each number
with its reason; the report's "For your full run" calls plan_from on its own tables.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tune_gpt import horizon
from tune_gpt.errors import UserError


@dataclass
class RunPlan:
    search: str
    requested: int   # --tokens
    tokens: int      # what the config trains: whole iterations
    trial_id: str
    config: dict[str, Any]
    learning_rate: float
    lr_from: float
    predicted: float
    interval: tuple[float, float]
    noise: str
    schedule: str
    warmup_iters: int
    cooldown_iters: int
    evidence: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def text(self) -> str:
        c = self.config
        lo, hi = self.interval
        tail = (f", then a cool-down over the last {self.cooldown_iters:,} iterations"
                if self.schedule == "wsd" else " to min_lr at the last iteration")
        lines = [f"plan for {self.tokens:,} tokens from search '{self.search}' (trial "
                 f"{self.trial_id}'s config):",
                 f"  learning_rate {self.learning_rate:.3g} (min_lr {c['min_lr']:.3g}), batch_size "
                 f"{c['batch_size']} x block_size {c['block_size']} x accumulation "
                 f"{c.get('gradient_accumulation_steps', 1)}, {c['max_iters']:,} iterations",
                 f"  schedule: {self.warmup_iters} warmup iterations, {self.schedule}{tail}",
                 f"  predicted val_loss {self.predicted:.3f} (95% interval {lo:.3f}-{hi:.3f}; "
                 f"{self.noise})",
                 "  evidence:"]
        lines += [f"    {e}" for e in self.evidence]
        lines += [f"  written: {f}" for f in self.files]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_from(trials: Any, curves: Any, meta: Any, tokens: int) -> RunPlan:
    """The plan from a search's tables (trials, curves, SearchMeta)."""
    import pandas as pd

    from tune_gpt import judge
    from tune_gpt import trial as contract
    from tune_gpt.config import KNOBS

    rows = trials.to_dict("records")
    configs = {str(r["trial_id"]): {k: _plain(r[k]) for k in KNOBS
                                    if k in r and not pd.isna(r[k])} for r in rows}
    configs = {t: c for t, c in configs.items() if "learning_rate" in c and "max_iters" in c}
    score = contract.score_column(meta.metric)
    plan = horizon.plan_final(rows, curves, configs, tokens_for=lambda row, rate: tokens,
                              usable=contract.USABLE, score=score) if len(curves) else None
    if plan is None:
        raise UserError(f"search '{meta.name}': no trial trained far enough to plan from "
                        f"(a usable trial with evaluations is needed); run a longer search")
    if plan.predicted is None:
        longest = max((c.measured_tokens for c in plan.candidates), default=0)
        reach = int(longest * horizon.MAX_EXTRAPOLATION)
        if tokens <= reach:  # not too far: no curve could be fitted at all
            why = sorted({c.note for c in plan.candidates if c.note})
            raise UserError(f"search '{meta.name}': no trial's curve can be brought to "
                            f"{tokens:,} tokens ({'; '.join(why)}); run a search whose "
                            f"trials evaluate at least {horizon.MIN_POINTS} times")
        raise UserError(f"--tokens {tokens:,} is beyond what search '{meta.name}' measured: "
                        f"its longest curve reached {longest:,} tokens and a curve is "
                        f"extrapolated at most {horizon.MAX_EXTRAPOLATION:g}x, so plan at most "
                        f"--tokens {reach:,}, or run a search with longer trials")
    chosen = next(c for c in plan.candidates if c.trial_id == plan.trial_id)
    c = curves[curves["trial_id"].astype(str) == plan.trial_id]
    fit = horizon.fit_curve(list(c["tokens"]), list(c["val_loss"]))
    confirm = meta.confirm or {}
    if confirm.get("dof") and confirm.get("noise"):
        sd, dof = float(confirm["noise"]), int(confirm["dof"])
        noise = f"seed noise {sd:.4f} from this search's confirm runs, {dof} dof"
    else:
        ref = judge.REFERENCE_SEED_NOISE
        sd, dof = ref.sd, ref.dof
        noise = f"seed noise {sd:.4f} measured on {ref.data} ({ref.source}), {dof} dof"
    half = judge.t_quantile(dof) * math.sqrt(sd ** 2 + horizon.LAW_SD ** 2)
    noise += (f", and {horizon.LAW_SD:g} for how far the horizon rule has missed a measured "
              f"run (tune_gpt/horizon.py)")
    cfg = plan.config
    iters = int(cfg["max_iters"])
    schedule = str(cfg.get("lr_schedule", "cosine")) if cfg.get("decay_lr", True) else "constant"
    cooldown = round(float(cfg.get("cooldown_frac", 0.2)) * iters) if schedule == "wsd" else 0
    evidence = plan.lines()[:1] + plan.lines()[2:] + [
        f"{chosen.measured_tokens:,} tokens measured, ending at {fit.last_loss:.4f}, brought "
        f"to {plan.tokens:,} as L_end * (D_end / D)^{horizon.DATA_EXPONENT:g} (measured on "
        f"tinyshakespeare; tune_gpt/horizon.py)",
        f"warmup_iters {int(cfg['warmup_iters'])}: the trial's, capped at a tenth of the run"]
    return RunPlan(search=meta.name, requested=tokens, tokens=int(plan.tokens), trial_id=plan.trial_id,
                   config=cfg, learning_rate=plan.lr, lr_from=plan.lr_from,
                   predicted=float(chosen.predicted),
                   interval=(chosen.predicted - half, chosen.predicted + half), noise=noise,
                   schedule=schedule, warmup_iters=int(cfg["warmup_iters"]),
                   cooldown_iters=cooldown, evidence=evidence)


def _amount(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:g}{unit}"
    return str(n)


def _plain(v: Any) -> Any:
    """numpy scalars from a table -> Python (whole floats of int knobs back to int)."""
    if hasattr(v, "item"):
        v = v.item()
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) >= 1 else v
