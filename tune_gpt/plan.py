"""`tune-gpt plan`: a finished search's measurements brought to the user's own, longer run.

    tune-gpt plan beginner-cpu --tokens 20M            # a search name (under ./runs)
    tune-gpt plan reports/beginner-cpu --tokens 20M --json

The numbers come from tune_gpt.horizon, the module the search's own final phase uses: each
explored config's evaluations fitted by L(D) = E + A*D^-alpha and brought to N tokens, the
lowest prediction chosen, its learning rate moved to N tokens by Bjorck et al. 2024's
tokens^-0.32 rule (a cited rule, not fitted to this search: too few learning rates reach the
same length in one search to fit one). The interval is Student's t times the root of the
seed noise squared (the search's confirm runs, else the reference spread) plus the curve
fit's squared residual; it does not count how far the extrapolation reaches. A plan beyond
10x the longest curve's tokens is refused, with one line saying how far it can go.

It writes plan-<N>.yaml (for `tune-gpt train`) and plan-<N>_nanogpt.py (nanoGPT's config
format) and prints each number with its reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
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


def results_of(search: str, storage_path: str | None) -> Path:
    """The results folder of `search`: a name, a search folder, or a report folder
    (reports/NAME: the search NAME under the storage path)."""
    from tune_gpt.report.folder import find_results

    here = Path(search)
    try:
        return find_results(search, storage_path)
    except UserError:
        if (here / "report.md").is_file():
            return find_results(here.name, storage_path)
        raise


def make_plan(search: str, tokens: int, storage_path: str | None = None) -> RunPlan:
    """The plan for a run of `tokens` tokens of the search `search` (a name or folder;
    UserError when nothing supports one)."""
    from tune_gpt.report.folder import load_results

    if tokens < 1:
        raise UserError("--tokens must be at least 1 (e.g. --tokens 20M)")
    return plan_from(*load_results(results_of(search, storage_path)), tokens)


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
    half = judge.t_quantile(dof) * math.sqrt(sd ** 2 + fit.rmse ** 2)
    noise += f", curve fit residual {fit.rmse:.4f}; the extrapolation's own error is not counted"
    cfg = plan.config
    iters = int(cfg["max_iters"])
    schedule = str(cfg.get("lr_schedule", "cosine")) if cfg.get("decay_lr", True) else "constant"
    cooldown = round(float(cfg.get("cooldown_frac", 0.2)) * iters) if schedule == "wsd" else 0
    evidence = plan.lines()[:1] + plan.lines()[2:] + [
        f"{chosen.measured_tokens:,} tokens measured, {fit.points} evaluations: "
        f"L(D) = {fit.E:.3f} + {fit.A:.3g} * D^-{fit.alpha:.3f}",
        f"warmup_iters {int(cfg['warmup_iters'])}: the trial's, capped at a tenth of the run"]
    return RunPlan(search=meta.name, requested=tokens, tokens=int(plan.tokens), trial_id=plan.trial_id,
                   config=cfg, learning_rate=plan.lr, lr_from=plan.lr_from,
                   predicted=float(chosen.predicted),
                   interval=(chosen.predicted - half, chosen.predicted + half), noise=noise,
                   schedule=schedule, warmup_iters=int(cfg["warmup_iters"]),
                   cooldown_iters=cooldown, evidence=evidence)


def write_plan(p: RunPlan, out: Path, folder: Path) -> list[Path]:
    """plan-<N>.yaml and plan-<N>_nanogpt.py in `out`."""
    import yaml

    from tune_gpt.report.export import nanogpt_config
    from tune_gpt.report.folder import load_results
    from tune_gpt.report.results import prepare

    tag = _amount(p.requested)
    res = prepare(*load_results(folder))
    knobs = {**p.config, "out_dir": f"out-{p.search}-{tag}"}
    head = [f"# Planned by `tune-gpt plan` from search '{p.search}' for {p.tokens:,} tokens:",
            f"# trial {p.trial_id}'s config, learning rate {p.lr_from:.3g} -> "
            f"{p.learning_rate:.3g}; predicted val_loss {p.predicted:.3f} "
            f"({p.interval[0]:.3f}-{p.interval[1]:.3f}).", "#   tune-gpt train <this file>"]
    paths = [out / f"plan-{tag}.yaml", out / f"plan-{tag}_nanogpt.py"]
    texts = ["\n".join(head) + "\n" + yaml.safe_dump(knobs, sort_keys=False),
             nanogpt_config(res, p.trial_id, knobs).replace(
                 "best trial", f"planned for {p.tokens:,} tokens from trial", 1)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, texts):
            path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"{out}: cannot write ({e.strerror}); pass --out DIR") from None
    return paths


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
