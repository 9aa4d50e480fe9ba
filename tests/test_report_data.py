"""Hand-made search results for the report tests (and for eyeballing the figures):

    python tests/test_report_data.py /tmp/demo-report [--lang zh]

`trial(...)` builds one trial row and its curve from a few shape parameters; the
`*_search()` functions assemble whole searches with planted problems. Numbers are chosen
to look like a GPU search on shakespeare_char (vocab 65, ln 65 = 4.17 nats)."""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


VOCAB = 65
GB = 1e9
TOKENS_PER_TRIAL = 24_576_000   # budget.tokens_per_trial: max_iters = this / tokens_per_iter
TOKENS_PER_EVAL = 2_048_000     # budget.tokens_per_eval: evaluations at equal token counts
RUNG0 = 4_096_000               # ASHA grace_period (tokens)

BASE: dict[str, Any] = dict(
    dataset="shakespeare_char", out_dir="out", batch_size=32, block_size=256,
    gradient_accumulation_steps=1, n_layer=6, n_head=6, n_embd=384, dropout=0.1, bias=False,
    learning_rate=1e-3, weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0,
    warmup_iters=100, decay_lr=True, eval_iters=50, log_interval=100, dtype="bfloat16",
    compile=True, device="cuda", seed=1337)


def trial(tid: str, outcome: str = "completed", *, stop_tokens: int | None = None,
          floor: float = 1.50, tau: float = 1.5e6, gap_end: float = 0.04,
          overfit_at: int | None = None, overfit_slope: float = 0.03, nan_at: int | None = None,
          flat: bool = False, explode_at: int | None = None, noise: float = 0.0,
          tokens_per_s: float | None = None, peak_gb: float | None = None,
          est_gb: float | None = None, rescue_of: str = "", error: str = "", curve: bool = True,
          **knobs: Any) -> tuple[dict, list[dict]]:
    """One trial: its row and its evaluations. max_iters and eval_interval follow from the
    token budgets unless given. val_loss decays from ln(vocab) to `floor` with token scale
    `tau`; train_loss ends `gap_end` below it. Overfitting bends val up after iteration
    `overfit_at`; `nan_at` turns both losses NaN from that iteration on."""
    from tune_gpt.report.memory import need_bytes

    k = {**BASE, **knobs}
    tpi = k["batch_size"] * k["block_size"] * k["gradient_accumulation_steps"]
    k.setdefault("max_iters", TOKENS_PER_TRIAL // tpi)
    k.setdefault("lr_decay_iters", k["max_iters"])
    k.setdefault("min_lr", k["learning_rate"] / 10)
    k.setdefault("eval_interval", max(1, TOKENS_PER_EVAL // tpi))
    last = k["max_iters"] if stop_tokens is None else stop_tokens // tpi
    if outcome in ("oom", "predicted_oom", "failed"):
        last = 0
    if outcome == "diverged":
        last = nan_at or k["eval_interval"]
    if tokens_per_s is None:  # bigger batches and compile are faster; bigger models slower
        tokens_per_s = (2.0e5 * (k["batch_size"] / 32) ** 0.4 * (384 / k["n_embd"]) ** 2
                        * (6 / k["n_layer"]) * (1.0 if k["compile"] else 0.6))
    mfu = 0.35 * tokens_per_s / 2.0e5 * (k["n_embd"] / 384) ** 2 * (k["n_layer"] / 6)
    rng = np.random.default_rng(sum(map(ord, tid)))
    ln_v, total = math.log(VOCAB), k["max_iters"] * tpi
    iters = sorted(set(range(0, last + 1, k["eval_interval"])) | {last}) if curve and last else []
    train_s = last * tpi / tokens_per_s
    # evaluation: 2 * eval_iters forward passes (train + val), a forward ~ 1/3 of a step
    eval_per_train = 2 * k["eval_iters"] * k["batch_size"] * k["block_size"] / 3 / (k["eval_interval"] * tpi)
    eval_s = train_s * eval_per_train
    rows = []
    for it in iters:
        tok = it * tpi
        val = floor + (ln_v - floor) * math.exp(-tok / tau)
        train = val - gap_end * tok / total
        if flat:
            val = train = ln_v - 0.05 * tok / total
        if overfit_at is not None and it > overfit_at:
            at_k = floor + (ln_v - floor) * math.exp(-overfit_at * tpi / tau)
            val = at_k + overfit_slope * (it - overfit_at) / k["eval_interval"]
            train = train - 0.02 * (it - overfit_at) / k["eval_interval"]
        if explode_at is not None and it >= explode_at:
            train = val = val + 1.0 + 0.5 * (it - explode_at) / k["eval_interval"]
        if nan_at is not None and it >= nan_at:
            train = val = float("nan")
        if it:
            val += noise * rng.standard_normal()
        rows.append(dict(trial_id=tid, iter=it, tokens=tok, train_loss=train, val_loss=val,
                         lr=k["learning_rate"], tokens_per_s=tokens_per_s,
                         ms_per_iter=1000 * tpi / tokens_per_s, mfu=mfu, peak_mem_bytes=np.nan,
                         elapsed_s=(train_s + eval_s) * it / max(last, 1),
                         eval_s=eval_s * it / max(last, 1)))
    est = need_bytes(k, VOCAB) if est_gb is None else est_gb * GB
    peak = peak_gb * GB if peak_gb is not None else (
        np.nan if outcome in ("oom", "predicted_oom") else 0.93 * est)
    for r in rows:
        r["peak_mem_bytes"] = peak
    vals = [r["val_loss"] for r in rows if np.isfinite(r["val_loss"])]
    trains = [r["train_loss"] for r in rows if np.isfinite(r["train_loss"])]
    ran = bool(iters)
    row = dict(trial_id=tid, outcome=outcome, error=error, **k, tokens_per_iter=tpi,
               iters=iters[-1] if ran else 0, tokens=iters[-1] * tpi if ran else 0,
               best_val_loss=min(vals) if vals else np.nan,
               final_val_loss=vals[-1] if vals else np.nan,
               final_train_loss=trains[-1] if trains else np.nan,
               tokens_per_s=tokens_per_s if ran else np.nan,
               ms_per_iter=1000 * tpi / tokens_per_s if ran else np.nan,
               mfu=mfu if ran else np.nan, peak_mem_bytes=peak, est_mem_bytes=est,
               wall_s=train_s + eval_s if ran else (4.0 if outcome == "oom" else 0.0),
               eval_s=eval_s if ran else 0.0,
               n_params=12 * k["n_layer"] * k["n_embd"] ** 2 + VOCAB * k["n_embd"],
               rescue_of=rescue_of, vocab_size=VOCAB)
    return row, rows


def assemble(items: list[tuple[dict, list[dict]]], **meta: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    trials = pd.DataFrame([r for r, _ in items])
    curves = pd.DataFrame([c for _, cs in items for c in cs],
                          columns=["trial_id", "iter", "tokens", "train_loss", "val_loss", "lr",
                                   "tokens_per_s", "ms_per_iter", "mfu", "peak_mem_bytes",
                                   "elapsed_s", "eval_s"])
    base = dict(name="beginner-demo", space_file="search_spaces/beginner.yaml", metric="val_loss",
                mode="min", profile="gpu", device="cuda", data="shakespeare_char",
                sampler={"type": "tpe", "seed": 0, "n_startup_trials": 8},
                scheduler={"type": "asha", "time_attr": "tokens", "grace_period": RUNG0,
                           "reduction_factor": 3, "max_t": TOKENS_PER_TRIAL, "brackets": 1},
                params={"batch_size": {"choice": [4, 16, 32, 64]},
                        "learning_rate": {"loguniform": [1.0e-4, 1.0e-1]},
                        "n_layer": {"int": [4, 12]},
                        "n_head": {"choice": [6, 12]},
                        "n_embd": {"int": [192, 768], "step": 96},
                        "dropout": {"uniform": [0.0, 0.3]}},
                fixed={"block_size": 256, "warmup_iters": 100, "eval_iters": 50, "dtype": "bfloat16"},
                budget={"num_samples": len(items), "max_concurrent_trials": 2, "time_budget_s": None,
                        "tokens_per_trial": TOKENS_PER_TRIAL, "tokens_per_eval": TOKENS_PER_EVAL},
                resources={"cpu": 4, "gpu": 0.25}, wall_s=float(trials["wall_s"].sum() / 2),
                started_at="2025-06-01T10:00:00", memory_limit_bytes=int(12 * GB),
                importances={"learning_rate": 0.46, "n_layer": 0.21, "batch_size": 0.14,
                             "dropout": 0.11, "n_embd": 0.05, "n_head": 0.03},
                tracking_uri="sqlite:///runs/mlflow.db", mlflow_parent_run_id="abc123")
    base.update(meta)
    return trials, curves, base


def planted_search() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A realistic search with one of each problem planted:
    t_oom (oom) + t_rescue, t_pred (predicted_oom), t_slow (batch 8, compile off, eval-heavy),
    t_over (val rises from iteration 1500 while train falls), t_div (lr 0.1 -> NaN)."""
    items = [
        trial("t01", learning_rate=1.2e-3, batch_size=32, dropout=0.15, floor=1.47, noise=0.003),
        trial("t02", learning_rate=2.0e-3, batch_size=64, dropout=0.2, floor=1.49, noise=0.003),
        trial("t03", learning_rate=8e-4, batch_size=32, dropout=0.1, floor=1.52, noise=0.003),
        trial("t04", learning_rate=3e-4, batch_size=16, n_layer=4, n_embd=192, dropout=0.05,
              floor=1.70, tau=3e6, outcome="stopped_early", stop_tokens=RUNG0, noise=0.003),
        trial("t05", learning_rate=1.5e-4, batch_size=16, n_layer=4, n_embd=288, dropout=0.25,
              floor=1.80, tau=4e6, outcome="stopped_early", stop_tokens=RUNG0, noise=0.003),
        trial("t06", learning_rate=5e-3, batch_size=64, n_layer=8, dropout=0.1, floor=1.58,
              outcome="stopped_early", stop_tokens=3 * RUNG0, noise=0.003),
        trial("t07", learning_rate=6e-4, batch_size=16, n_layer=5, n_embd=480, n_head=12,
              dropout=0.2, floor=1.56, tau=2e6, outcome="stopped_early", stop_tokens=3 * RUNG0,
              noise=0.003),
        trial("t08", learning_rate=2.5e-3, batch_size=32, n_layer=4, n_embd=384, dropout=0.3,
              floor=1.55, outcome="stopped_early", stop_tokens=RUNG0, noise=0.003),
        trial("t_over", learning_rate=1.5e-3, batch_size=32, n_layer=8, n_embd=576, n_head=12,
              dropout=0.0, floor=1.45, overfit_at=1500),
        trial("t_slow", learning_rate=1e-3, batch_size=8, compile=False, eval_interval=50,
              eval_iters=200, log_interval=10, floor=1.75, outcome="stopped_early",
              stop_tokens=RUNG0, noise=0.003),
        trial("t_div", learning_rate=1e-1, batch_size=32, outcome="diverged", nan_at=500),
        trial("t_oom", batch_size=64, block_size=512, n_layer=12, n_head=12, n_embd=768,
              learning_rate=6e-4, outcome="oom",
              error="CUDA out of memory. Tried to allocate 3.00 GiB"),
        trial("t_rescue", batch_size=32, block_size=512, gradient_accumulation_steps=2,
              n_layer=12, n_head=12, n_embd=768, learning_rate=6e-4, rescue_of="t_oom",
              floor=1.50, outcome="stopped_early", stop_tokens=3 * RUNG0, noise=0.003),
        trial("t_pred", batch_size=64, block_size=1024, n_layer=16, n_head=16, n_embd=1024,
              learning_rate=6e-4, outcome="predicted_oom", curve=False),
    ]
    return assemble(items)


def clean_search() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Eight healthy trials: nothing should be flagged as OOM, overfitting or divergence."""
    items = [trial(f"c{i}", learning_rate=lr, batch_size=bs, dropout=dr, n_layer=nl,
                   floor=fl, gap_end=0.03, noise=0.002,
                   outcome="completed" if i < 5 else "stopped_early",
                   stop_tokens=None if i < 5 else RUNG0)
             for i, (lr, bs, dr, nl, fl) in enumerate([
                 (1e-3, 32, 0.1, 6, 1.48), (2e-3, 32, 0.2, 6, 1.50), (6e-4, 64, 0.1, 6, 1.52),
                 (1.5e-3, 64, 0.15, 4, 1.55), (8e-4, 16, 0.2, 4, 1.58), (3e-4, 16, 0.1, 4, 1.70),
                 (2e-4, 32, 0.2, 6, 1.75), (4e-3, 64, 0.1, 6, 1.62)])]
    return assemble(items, name="clean", memory_limit_bytes=None)


def biased_search() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Early-stopping bias: high-dropout trials are *better* at every equal budget, but they
    were stopped at the first rung, so their final val_loss looks worse than that of the
    low-dropout trials that ran to the end."""
    items = []
    for i, dr in enumerate([0.0, 0.05, 0.1]):      # full runs, worse at equal budget
        items.append(trial(f"lo{i}", dropout=dr, floor=1.60 - 0.01 * i, tau=4e6))
    for i, dr in enumerate([0.2, 0.25, 0.3]):      # stopped early, better at equal budget
        items.append(trial(f"hi{i}", dropout=dr, floor=1.40 - 0.01 * i, tau=2e6,
                           outcome="stopped_early", stop_tokens=RUNG0))
    return assemble(items, name="biased",
                    params={"dropout": {"uniform": [0.0, 0.3]}}, importances={})


def test_planted_tables_are_well_formed():
    trials, curves, meta = planted_search()
    assert trials["trial_id"].is_unique
    assert set(curves["trial_id"]) <= set(trials["trial_id"])
    assert not curves[curves["trial_id"] == "t_pred"].size


# ----------------------------------------------------------------------------- cached reports
# Building a report draws four figures (~1-2 s), so each scenario is built once per session.


@lru_cache(maxsize=None)
def report_of(kind: str, lang: str = "en", figures: bool | None = None):
    """The report of a scenario. Figures (most of the build time) are drawn only for the
    English planted search unless asked for; elsewhere `make_figures` is stubbed out."""
    from unittest import mock

    from tune_gpt.report import build_report

    make = {"planted": planted_search, "clean": clean_search, "biased": biased_search}[kind]
    if figures is None:
        figures = (kind, lang) == ("planted", "en")
    if figures:
        return build_report(*make(), lang=lang)
    with mock.patch("tune_gpt.report.build.make_figures", lambda *a: {}):
        return build_report(*make(), lang=lang)


def section(markdown: str, number: int) -> str:
    """The text of section `number` ("## 3. ..." up to the next "## ")."""
    start = markdown.index(f"\n## {number}. ")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end > 0 else None]


if __name__ == "__main__":
    from tune_gpt.report import build_report, write_report

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo-report")
    lang = "zh" if "--lang" in sys.argv and sys.argv[-1] == "zh" else "en"
    which = {"planted": planted_search, "clean": clean_search, "biased": biased_search}
    kind = next((a for a in sys.argv[2:] if a in which), "planted")
    print(write_report(build_report(*which[kind](), lang=lang), out))
