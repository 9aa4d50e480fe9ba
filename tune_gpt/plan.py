"""`tune-gpt plan`: a finished search's measurements brought to the user's own, longer run.

    tune-gpt plan beginner-cpu --tokens 20M            # a search name (under ./runs)
    tune-gpt plan reports/beginner-cpu --tokens 20M --json

The numbers come from tune_gpt.horizon, the module the search's own final phase uses: each
explored config's evaluations fitted by L(D) = E + A*D^-alpha and brought to N tokens, the
lowest prediction chosen, its learning rate moved to N tokens by Bjorck et al. 2024's
tokens^-0.32 rule (a cited rule, not fitted to this search: too few learning rates reach the
same length in one search to fit one). The interval is Student's t times the root of the
seed noise squared (the search's confirm runs, else the reference spread) plus the horizon
rule's own doubt squared, which grows with how far the plan goes (horizon.law_sd). A plan
beyond 10x the longest curve's tokens is refused, with one line saying how far it can go.

With --n_embd and/or --n_layer the plan is for a wider or deeper model: the chosen config is
brought to that size by tune_gpt.transfer (µP with the searched width as base width, the head
size kept by scaling n_head, so µP keeps the searched learning rate; the horizon rule has
already moved it to N tokens). The search measured loss at its own sizes only, so such a plan
predicts no val_loss, and says so. Narrower or shallower than the searched model is refused:
µP transfers up in width here, and depth carries over only empirically.

    tune-gpt plan reports/beginner-cpu --tokens 20M --n_embd 384 --n_layer 6

The command (tune_gpt.report.folder.plan_run / write_plan) writes plan-<N>.yaml (for
`tune-gpt train`) and plan-<N>_nanogpt.py (nanoGPT's config format; plan-<N>-<L>x<W>.* for
another size) and prints each number with its reason; the report's "For your full run"
calls plan_from on its own tables.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tune_gpt import horizon
from tune_gpt.config import tokens_per_iter
from tune_gpt.errors import UserError

SHAPE = ("n_layer", "n_embd", "n_head")  # a model's size: what `plan --n_embd/--n_layer` moves


@dataclass
class RunPlan:
    search: str
    requested: int   # --tokens
    tokens: int      # what the config trains: whole iterations
    trial_id: str
    config: dict[str, Any]   # the knobs to train: at the searched size, or transferred
    learning_rate: float
    lr_from: float
    predicted: float | None  # None: another size than the search measured (prediction_note)
    interval: tuple[float, float] | None
    noise: str
    schedule: str
    warmup_iters: int
    cooldown_iters: int
    evidence: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    searched: dict[str, Any] = field(default_factory=dict)  # n_layer, n_embd, n_head trained
    transfer: list[str] = field(default_factory=list)  # µP's statement, for another size
    prediction_note: str = ""  # why nothing is predicted
    warnings: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        """The files' name: plan-<tag>.yaml (20M, or 20M-6x384 for another size)."""
        c, s = self.config, self.searched
        other = (c.get("n_layer"), c.get("n_embd")) != (s.get("n_layer"), s.get("n_embd"))
        return _amount(self.requested) + (f"-{c['n_layer']}x{c['n_embd']}" if other else "")

    def model(self) -> str:
        """The model's size, and where it comes from."""
        c, s = self.config, self.searched
        size = f"{c.get('n_layer')} layers x {c.get('n_embd')} wide, {c.get('n_head')} heads"
        if not self.transfer:
            return size + " (the searched size)"
        return (f"{size}: brought by µP from the searched {s.get('n_layer')} x "
                f"{s.get('n_embd')}, {s.get('n_head')} heads (mup_base_width "
                f"{c.get('mup_base_width')}, head size {c['n_embd'] // c['n_head']} kept)")

    def text(self) -> str:
        c = self.config
        tail = (f", then a cool-down over the last {self.cooldown_iters:,} iterations"
                if self.schedule == "wsd" else " to min_lr at the last iteration")
        ramp = (f"{self.warmup_iters} warmup iterations, {self.schedule}{tail}"
                if self.schedule != "constant" else
                "constant: learning_rate from the first step (decay_lr false: no warmup, "
                "no decay)")
        if self.predicted is not None and self.interval is not None:
            lo, hi = self.interval
            pred = (f"  predicted val_loss {self.predicted:.3f} (95% interval {lo:.3f}-"
                    f"{hi:.3f}; {self.noise})")
        else:
            pred = f"  {self.prediction_note}"
        lines = [f"plan for {self.tokens:,} tokens from search '{self.search}' (trial "
                 f"{self.trial_id}'s config):",
                 f"  model: {self.model()}",
                 f"  learning_rate {self.learning_rate:.3g} (min_lr {c['min_lr']:.3g}), batch_size "
                 f"{c['batch_size']} x block_size {c['block_size']} x accumulation "
                 f"{c.get('gradient_accumulation_steps', 1)}, {c['max_iters']:,} iterations",
                 f"  schedule: {ramp}",
                 pred, "  evidence:"]
        lines += [f"    {e}" for e in self.evidence + self.transfer]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  written: {f}" for f in self.files]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def half_interval(predicted: float, tokens_end: float, tokens: float, sd: float,
                  dof: int) -> tuple[float, float, float]:
    """(half width of the 95% interval, the horizon rule's sd, the dof) for a loss predicted
    at `tokens` from a curve that ended at `tokens_end`: Student's t, with Welch-
    Satterthwaite's dof, times the root of the seed noise `sd` (its `dof`) squared plus
    horizon.law_sd squared."""
    from tune_gpt import judge

    law = horizon.law_sd(predicted, tokens_end, tokens)
    both = sd ** 2 + law ** 2
    if both <= 0:
        return 0.0, law, float(dof)
    dof_sum = both ** 2 / (sd ** 4 / dof + law ** 4 / horizon.EXPONENT_DOF)
    return judge.t_quantile(dof_sum) * math.sqrt(both), law, dof_sum


def plan_from(trials: Any, curves: Any, meta: Any, tokens: int, *, n_embd: int | None = None,
              n_layer: int | None = None) -> RunPlan:
    """The plan from a search's tables (trials, curves, SearchMeta); with n_embd and/or
    n_layer, for a model of that width and depth (`to_size`)."""
    import pandas as pd

    from types import SimpleNamespace

    from tune_gpt import judge
    from tune_gpt import trial as contract
    from tune_gpt.config import KNOBS, TrainConfig
    from tune_gpt.report.noise import loss_noise
    from tune_gpt.schedule import cooldown_start

    score = contract.score_column(meta.metric)
    rows, curves, final_id = _with_final_run(trials.to_dict("records"), curves, meta, score)
    configs = {str(r["trial_id"]): {k: _plain(r[k]) for k in KNOBS
                                    if k in r and not pd.isna(r[k])} for r in rows}
    configs = {t: c for t, c in configs.items() if "learning_rate" in c and "max_iters" in c}
    doctor = meta.data_doctor or {}
    usable = {str(r["trial_id"]) for r in rows if r.get("outcome") in contract.USABLE}
    measured = curves[curves["trial_id"].astype(str).isin(usable)]["tokens"] if len(curves) \
        else pd.Series([], dtype=float)
    if len(measured) and tokens > measured.max() * horizon.MAX_EXTRAPOLATION:
        _beyond(meta.name, tokens, int(measured.max()))  # the lr rule too: not that far
    one = min((tokens_per_iter(c) for c in configs.values()
               if "batch_size" in c and "block_size" in c), default=1)
    if tokens < one:
        raise UserError(f"--tokens {tokens:,} is less than one iteration of the searched "
                        f"configs ({one:,} tokens); plan a run of at least --tokens {one:,}")
    plan = horizon.plan_final(rows, curves, configs, tokens_for=lambda row, rate: tokens,
                              usable=contract.USABLE, score=score,
                              train_tokens=doctor.get("n_train")) if len(curves) else None
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
        _beyond(meta.name, tokens, longest)
    chosen = next(c for c in plan.candidates if c.trial_id == plan.trial_id)
    c = curves[curves["trial_id"].astype(str) == plan.trial_id]
    fit = horizon.fit_curve(list(c["tokens"]), list(c["val_loss"]))
    # the noise the report judges this search by (judge.seed_noise: confirm, else the
    # reference spread, never below the curves' wobble nor judge.FLOOR)
    n = loss_noise([g for _, g in curves.groupby("trial_id")], meta.confirm)
    sd, dof, ref = n.per_run, n.dof, judge.REFERENCE_SEED_NOISE
    noise = {"confirm": f"seed noise {sd:.4f} from this search's confirm runs, {dof} dof",
             "curves": f"noise {sd:.4f}: this search's curves wobble by more than the seed "
                       f"spread measured on {ref.data} ({ref.sd:.4f}), {dof} dof"
             }.get(n.source, f"seed noise {sd:.4f} measured on {ref.data} ({ref.source}), "
                             f"{dof} dof")
    half, law, dof_sum = half_interval(float(chosen.predicted), chosen.measured_tokens,
                                       chosen.predicted_at, sd, dof)
    taken = sorted(horizon.EXPONENTS_TAKEN)
    noise += (f"; and {law:.4f} for the horizon rule: its exponent "
              f"{horizon.DATA_EXPONENT:g} was off by sd {horizon.EXPONENT_SD:.3f} over "
              f"{len(taken)} measured runs on the development corpora (they took "
              f"{taken[0]:.3f}-{taken[-1]:.3f}), x ln({chosen.predicted_at:,} / "
              f"{chosen.measured_tokens:,}) x the loss (tune_gpt/horizon.py); t with "
              f"{dof_sum:.1f} dof")
    cfg = plan.config
    schedule = str(cfg.get("lr_schedule", "cosine")) if cfg.get("decay_lr", True) else "constant"
    cooldown = int(cfg["lr_decay_iters"]) - cooldown_start(SimpleNamespace(
        cooldown_frac=float(cfg.get("cooldown_frac", TrainConfig.cooldown_frac)),
        lr_decay_iters=int(cfg["lr_decay_iters"]), warmup_iters=int(cfg["warmup_iters"]))) \
        if schedule == "wsd" else 0
    evidence = plan.lines()[:1] + plan.lines()[2:] + [
        f"{chosen.measured_tokens:,} tokens measured, ending at {fit.last_loss:.4f}, brought "
        f"to {chosen.predicted_at:,} as L_end * (D_end / D)^{horizon.DATA_EXPONENT:g} (measured on "
        f"tinyshakespeare; tune_gpt/horizon.py)",
        f"warmup_iters {int(cfg['warmup_iters'])}: the trial's, capped at a tenth of the run"]
    if plan.trial_id == final_id:
        evidence.insert(0, f"trial {final_id} is the search's final run ({meta.final['of']}'s "
                           f"config trained to {chosen.measured_tokens:,} tokens): the longest "
                           f"curve the search measured")
    p = RunPlan(search=meta.name, requested=tokens, tokens=int(plan.tokens),
                trial_id=plan.trial_id, config=cfg, learning_rate=plan.lr, lr_from=plan.lr_from,
                predicted=float(chosen.predicted),
                interval=(chosen.predicted - half, chosen.predicted + half), noise=noise,
                schedule=schedule, warmup_iters=int(cfg["warmup_iters"]),
                cooldown_iters=cooldown, evidence=evidence,
                searched={k: cfg.get(k) for k in SHAPE})
    if n_embd is not None or n_layer is not None:
        p = to_size(p, n_embd, n_layer, measured=_sizes(rows, contract.USABLE))
    p.warnings = _nanogpt_warning(p.config)
    return p


def to_size(p: RunPlan, n_embd: int | None, n_layer: int | None,
            measured: list[tuple[int, int]] | None = None) -> RunPlan:
    """The plan for a model n_embd wide and n_layer deep (None: the searched one's), by µP
    (tune_gpt.transfer.to_target): the searched width is the base width, n_head grows so the
    head size stays the searched one (µP's attention scale then equals the searched
    model's), and the learning rate (already at the horizon) is kept, as µP keeps it for
    every width. `measured`: the (n_layer, n_embd) sizes the search trained, for the line
    saying why nothing is predicted. UserError for a size that does not fit."""
    from tune_gpt.transfer import to_target

    s = p.searched
    if any(s.get(k) is None for k in SHAPE):
        raise UserError(f"search '{p.search}': its table does not record trial {p.trial_id}'s "
                        f"{'/'.join(k for k in SHAPE if s.get(k) is None)}, so its size "
                        f"cannot be transferred; plan without --n_embd/--n_layer")
    emb, layers, heads = (int(s[k]) for k in ("n_embd", "n_layer", "n_head"))
    hs = emb // heads
    width = emb if n_embd is None else int(n_embd)
    depth = layers if n_layer is None else int(n_layer)
    if depth < 1:
        raise UserError(f"--n_layer {depth}: a model needs at least one layer; pass --n_layer "
                        f"{layers} (the searched depth) or more")
    if depth < layers:
        raise UserError(f"--n_layer {depth} is shallower than the searched model ({layers} "
                        f"layers): µP here transfers across width, not depth "
                        f"(tune_gpt/transfer.py); pass --n_layer {layers} or more")
    if width < emb:
        raise UserError(f"--n_embd {width} is narrower than the searched model ({emb}): µP "
                        f"brings a search to a wider model, not a narrower one; pass --n_embd "
                        f"{emb} or a larger multiple of its head size {hs}")
    if width % hs:
        lo = width // hs * hs
        raise UserError(f"--n_embd {width} is not a multiple of the searched head size {hs} "
                        f"({emb} / {heads} heads), which the transfer keeps; pass --n_embd "
                        f"{lo} or {lo + hs}")
    if (width, depth) == (emb, layers):
        return p
    cfg, _, notes = to_target(dict(p.config),
                              {"n_embd": width, "n_layer": depth, "n_head": width // hs},
                              where=f"plan of search '{p.search}': ")
    keep = set(p.config) | {*SHAPE, "parametrization", "mup_base_width", "mup_base_head_size"}
    config = {k: v for k, v in cfg.to_dict().items() if k in keep}
    base = cfg.mup_base_width
    was_sp = p.config.get("parametrization", "sp") != "mup"
    lead = ([f"the search trained SP; this plan assumes µP-parametrized training (tune-gpt "
             f"train): the config has parametrization: mup with mup_base_width {base}, the "
             f"searched width, where µP is exactly SP (tune_gpt/model.py)"] if was_sp else [])
    lead.append(f"learning_rate {p.learning_rate:.3g}: the searched model's, moved to "
                f"{p.tokens:,} tokens by the horizon rule above; µP keeps it at width {width}")
    widths = sorted({w for _, w in measured or [(layers, emb)]})
    depths = sorted({d for d, _ in measured or [(layers, emb)]})
    note = (f"no prediction: the search measured {_which('width', widths)} and "
            f"{_which('depth', depths)}, and nothing it measured relates loss to model size "
            f"(at the searched {layers} x {emb} the horizon predicts {p.predicted:.3f})")
    return replace(p, config=config, predicted=None, interval=None, transfer=lead + notes,
                   prediction_note=note)


def _with_final_run(rows: list[dict[str, Any]], curves: Any, meta: Any, score: str
                    ) -> tuple[list[dict[str, Any]], Any, str | None]:
    """The search's final run (meta.final) as one more measured config, with its curve: the
    longest evidence a search has (a trial trains ~1M tokens on a CPU, its final run ~15M).
    Its config is the one it trained: the length and lr its time fitted (retimed)."""
    import pandas as pd

    from tune_gpt import trial as contract
    from tune_gpt.schedule import stretched_decay

    f = meta.final or {}
    pts = [p for p in f.get("curve") or [] if _finite(p.get("tokens"))
           and _finite(p.get("val_loss"))]
    if f.get("trained_nothing") or len(pts) < horizon.MIN_POINTS or not f.get("config"):
        return rows, curves, None
    cfg, tid = dict(f["config"]), str(f.get("trial_id") or "final")
    if f.get("retimed") and f["retimed"].get("max_iters"):
        end = int(f["retimed"]["max_iters"])
        cfg.update(lr_decay_iters=stretched_decay(int(cfg.get("lr_decay_iters") or end),
                                                  int(cfg["max_iters"]), end), max_iters=end,
                   learning_rate=float(f["retimed"].get("learning_rate",
                                                        cfg["learning_rate"])))
    tpi = tokens_per_iter(cfg)
    row = {**cfg, "trial_id": tid, "outcome": contract.COMPLETED, "tokens": pts[-1]["tokens"],
           "tokens_per_iter": tpi, "wall_s": f.get("wall_s"),
           score: f.get(score, f.get("best_val_loss"))}
    extra = pd.DataFrame([{"trial_id": tid, "tokens": p["tokens"], "val_loss": p["val_loss"],
                           "train_loss": p.get("train_loss")} for p in pts])
    return rows + [row], pd.concat([curves, extra], ignore_index=True), tid


def _beyond(search: str, tokens: int, longest: int) -> None:
    """The one line refusing a plan past its evidence, with how far it can go."""
    raise UserError(f"--tokens {tokens:,} is beyond what search '{search}' measured: its "
                    f"longest curve reached {longest:,} tokens and a curve is extrapolated at "
                    f"most {horizon.MAX_EXTRAPOLATION:g}x, so plan at most --tokens "
                    f"{int(longest * horizon.MAX_EXTRAPOLATION):,}, or run a search with "
                    f"longer trials")


def _which(what: str, values: list[int]) -> str:
    if len(values) == 1:
        return f"one {what} ({values[0]})"
    return f"{what}s {', '.join(str(v) for v in values)}"


def _sizes(rows: list[dict[str, Any]], usable: Any) -> list[tuple[int, int]]:
    """The (n_layer, n_embd) of every usable trial."""
    return [(int(r["n_layer"]), int(r["n_embd"])) for r in rows
            if r.get("outcome") in usable and _finite(r.get("n_layer"))
            and _finite(r.get("n_embd"))]


def _nanogpt_warning(c: dict[str, Any]) -> list[str]:
    """nanoGPT has no µP: a µP config other than the plain model (another width than its
    base width, or multipliers) cannot be trained there as it is meant."""
    if c.get("parametrization") != "mup":
        return []
    from tune_gpt.config import MUP_MULTS

    mults = any(float(c.get(k, 1.0)) != 1.0 for k in MUP_MULTS)
    if int(c.get("n_embd", 0)) == int(c.get("mup_base_width", 0)) and not mults:
        return []
    return [f"the nanoGPT file is for reference only: nanoGPT's model.py has no µP, so it "
            f"would train this µP config (width {c.get('n_embd')}, mup_base_width "
            f"{c.get('mup_base_width')}) as a standard model, for which this learning rate "
            f"was not chosen; train the YAML with `tune-gpt train`"]


def _amount(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:g}{unit}"
    return str(n)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _plain(v: Any) -> Any:
    """numpy scalars from a table -> Python (whole floats of int knobs back to int)."""
    if hasattr(v, "item"):
        v = v.item()
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) >= 1 else v
