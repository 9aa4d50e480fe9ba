"""The Ray Tune trainable: one trial = one call of `tune_gpt.train.train`.

Ray gives the function the trial's config (every knob, resolved by
`tune_gpt.space.resolve`, and the trial's TrialPlan); the search's TrialSettings come
through `tune.with_parameters`. At every evaluation it writes the trial's checkpoint and
reports the metrics ASHA compares (val_loss, tokens seen, ...), so an interrupted or
retried trial continues where it was. Every trial ends with exactly one outcome of
`tune_gpt.trial`, decided here; a trial that fails reports that and returns, so it never
takes the search down.

Every report carries the search metric and never NaN: a NaN leaves Optuna's trial
RUNNING forever (Ray 2.60 tells Optuna nothing for it) and a result without the metric
makes Tuner.fit() raise, which would end the whole search.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from typing import Any

from tune_gpt import trial as outcomes
from tune_gpt.judge import EXPLODED_LOSS_FACTOR, PREDICTED_OOM_MARGIN
from tune_gpt.trial import TrialPlan, TrialSettings


def penalty_for(vocab_size: int) -> float:
    """The value reported for a trial with no usable loss (OOM, diverged, failed).

    ln(vocab)+1 is worse than guessing uniformly over the vocabulary, so the sampler ranks
    such a trial below every trial that learned anything, without the huge numbers that
    would distort a GP or CMA-ES model."""
    return math.log(max(vocab_size, 2)) + 1.0


def gpt_trainable(config: dict[str, Any], data_ship: dict[str, Any] | None = None,
                  settings: TrialSettings | None = None) -> None:
    """Ray Tune function trainable (the default `trainable:` of a search space).

    `data_ship` (tune_gpt.data.folder.shipment) is the data set's token files, put once into
    Ray's object store by the driver (with tune.with_parameters), so a trial on any node of
    a cluster trains on exactly the tokens the driver checked, without a shared file system;
    for a data set too big for that, it is a path and the data's identity, checked here."""
    import ray.tune

    from trainables.limits import MemoryLimitExceeded, is_oom, set_cuda_limit, train_in_child
    from tune_gpt.config import KNOBS, from_mapping, resolve_device
    from tune_gpt.data import prepare
    from tune_gpt.estimate import estimate, peak_memory_bytes
    from tune_gpt.rung_read import RungReads
    from tune_gpt.checkpoint import keep_evals, log_eval, read_checkpoint
    from tune_gpt.train import train

    started = time.time()
    settings = settings or TrialSettings()
    cfg = from_mapping({k: config[k] for k in KNOBS if k in config})
    threads = _cpus_of_trial()
    data = receive_data(data_ship) if data_ship else \
        prepare(cfg.dataset, tokenizer=cfg.tokenizer)
    penalty = penalty_for(data.vocab_size)
    est = estimate(cfg, data.vocab_size)
    device = resolve_device(cfg.device)
    limit = settings.memory_limit_bytes
    base = {"tokens_per_iter": cfg.tokens_per_iter(), "vocab_size": data.vocab_size,
            "n_params": est.n_params, "est_mem_bytes": est.total, "device": device,
            "flops_per_token": est.flops_per_token,
            "memory_limit_bytes": limit or 0, "rescue_of": TrialPlan.of(config).rescue_of,
            "node": os.uname().nodename, "node_id": _node_id(), "pid": os.getpid(),
            "threads": threads}

    if limit and est.total > limit * PREDICTED_OOM_MARGIN:
        row = {**base, "outcome": outcomes.PREDICTED_OOM,
               "error": f"estimated {est.total / 2**20:,.0f} MiB > limit "
                        f"{limit / 2**20:,.0f} MiB (+{PREDICTED_OOM_MARGIN - 1:.0%} margin)"}
        _clean(row, penalty)
        ray.tune.report(row)
        return

    # The trial's checkpoint lives at a stable path of its own, overwritten atomically at
    # every evaluation. (Ray's checkpoint retention deletes old checkpoints that the
    # experiment state saved before a driver crash may still point at; a restored trial
    # would then fail to start. A path per trial cannot go stale.)
    # (The search's final run has a fixed name, final.pt: the search puts the state it
    # continues there before the run starts, and a resumed final run finds its own there.)
    ckpt_path = trial_checkpoint_path(settings.checkpoint_dir,
                                      "final" if TrialPlan.of(config).final_of else None)
    resume = read_checkpoint(ckpt_path) if ckpt_path and os.path.isfile(ckpt_path) else None
    if ckpt_path:  # the reports this state has behind it (Ray may have dropped them)
        keep_evals(ckpt_path, int(resume.get("iter") or 0) if resume else 0)

    last: dict[str, Any] = {}
    retime, cfg = final_retimer(TrialPlan.of(config), cfg, ckpt_path,
                                in_child=bool(limit and device == "cpu"))
    reads = None if TrialPlan.of(config).final_of else \
        RungReads.for_trial(cfg, settings.rungs, settings.rung_cooldown)  # WSD trials only

    def report_eval(record: dict[str, Any]) -> bool:
        """Report one evaluation (its checkpoint already written); True = stop."""
        row = {**base, **record}
        row["best_val_loss"] = min(last.get("best_val_loss", math.inf), row["val_loss"]) \
            if math.isfinite(row["val_loss"]) else last.get("best_val_loss", penalty)
        exploded = math.isfinite(record["train_loss"]) and \
            record["train_loss"] > EXPLODED_LOSS_FACTOR * math.log(data.vocab_size)
        if record["diverged"] or exploded:
            why = f"loss exploded to {record['train_loss']:.4g}" if exploded and \
                not record["diverged"] else "loss became NaN/inf"
            row.update(outcome=outcomes.DIVERGED, error=why)
            _clean(row, penalty)
            if ckpt_path:
                log_eval(ckpt_path, row)
            ray.tune.report(row)
            return True
        final = record["iter"] >= (retime.cfg if retime else cfg).max_iters
        row["outcome"] = outcomes.COMPLETED if final else outcomes.RUNNING
        row["wall_s"] = time.time() - started
        _clean(row, penalty)
        last.update(row)
        if ckpt_path:
            log_eval(ckpt_path, row)
        ray.tune.report(row)
        return False

    def on_eval(record: Any, ckpt: Any) -> bool:
        if ckpt_path:
            ckpt.save_trial(ckpt_path, record.model_val_loss)
        return report_eval(record.to_dict())

    try:
        if limit and device == "cpu":
            train_in_child(cfg.to_dict(), data_path=str(data.dir), limit_bytes=limit,
                           threads=threads, resume=resume, ckpt_path=ckpt_path,
                           on_eval=report_eval, reads=reads)
        else:
            if limit:
                set_cuda_limit(limit)
            train(cfg, on_eval=on_eval, resume=resume if resume is not None else False,
                  threads=threads, data=data, retime=retime, reads=reads)
    except Exception as e:  # noqa: BLE001 — any error is this trial's failure, not the search's
        oom = is_oom(e)
        if oom:
            _free_memory()
        else:
            traceback.print_exc()  # the full traceback goes to the trial's log file
        peak = e.peak_bytes if isinstance(e, MemoryLimitExceeded) else peak_memory_bytes(device)
        row = {**base, **last, "outcome": outcomes.OOM if oom else outcomes.FAILED,
               "error": _one_line(e), "peak_mem_bytes": peak}
        _clean(row, penalty)
        ray.tune.report(row)
    finally:
        if limit and device == "cuda":
            set_cuda_limit(None)
            _free_memory()


class _FinalRetime:
    """The final run's tune_gpt.retime.Retimer, whose every new length is also written
    beside the run's checkpoint (RETIMED), so a resumed final run keeps it; a cool-down
    started by overfitting is written there with its rise (the summary says why)."""

    def __init__(self, retimer: Any, cfg: Any, sidecar: str):
        self.retimer, self.cfg, self.sidecar = retimer, cfg, sidecar

    @property
    def back_to_best(self) -> bool:
        return self.retimer.back_to_best

    def __call__(self, it: int, cfg: Any, val_loss: float | None = None) -> Any:
        new = self.retimer(it, cfg, val_loss)
        if new is not None:
            self.cfg = new
            self.write(new, self.retimer.changes[-1])
        return new

    def write(self, cfg: Any, change: dict[str, Any] | None = None) -> None:
        tmp = self.sidecar + ".tmp"
        saved = {k: getattr(cfg, k) for k in RETIMED_KEYS}
        from tune_gpt.retime import OVERFITTING

        if change and change.get("reason") == OVERFITTING:
            saved["overfit"] = {k: change[k] for k in ("iter", "rise", "margin", "lowest")}
        with open(tmp, "w") as f:
            json.dump(saved, f)
        os.replace(tmp, self.sidecar)


RETIMED_KEYS = ("max_iters", "lr_decay_iters", "learning_rate", "min_lr")


def final_retimer(plan: TrialPlan, cfg: Any, ckpt_path: str | None,
                  in_child: bool) -> tuple[_FinalRetime | None, Any]:
    """(retime, cfg) for a trial: the search's final run with a time budget fits its
    length to the time left (not in a memory-capped child process: it keeps its plan). Its
    first start writes RETIMED beside its checkpoint; a resumed or retried final run finds
    it and keeps the length it had been given (its deadline has passed), watched for
    overfitting only (none once an overfit cool-down has begun)."""
    from dataclasses import replace

    from tune_gpt.retime import Retimer, retimed_file

    if not (plan.final_of and plan.final_until and ckpt_path):
        return None, cfg
    sidecar = retimed_file(ckpt_path)
    if os.path.isfile(sidecar):
        with open(sidecar) as f:
            saved = json.load(f)
        cfg = replace(cfg, **{k: v for k, v in saved.items() if k in RETIMED_KEYS})
        # resumed: its length stands; a run not yet cut keeps its watch for overfitting
        watch = None if in_child or "overfit" in saved else \
            _FinalRetime(Retimer(None), cfg, sidecar)
        return watch, cfg
    retime = _FinalRetime(Retimer(plan.final_until, plan.final_max_iters), cfg, sidecar)
    retime.write(cfg)
    return (None if in_child else retime), cfg


def trial_checkpoint_path(folder: str | None, name: str | None = None) -> str | None:
    """<search>/checkpoints/<trial id (or name)>.pt, or None outside a search."""
    if not folder:
        return None
    import ray.tune

    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{name or ray.tune.get_context().get_trial_id()}.pt")


def receive_data(ship: dict[str, Any]) -> Any:
    """The driver's data set on this node: shipped token files written into this node's
    cache once, or a path this node must see holding the same data (same identity)."""
    from tune_gpt.data import default_cache_dir
    from tune_gpt.data.folder import materialise, read_shipped_path
    from tune_gpt.errors import UserError

    if "files" in ship:
        return materialise(ship, default_cache_dir())
    try:
        return read_shipped_path(ship["path"], ship["sha256"])
    except UserError as e:
        raise UserError(f"node {os.uname().nodename}: {e}; every node must see the same "
                        f"folder at that path (shared or copied)") from None


def _clean(row: dict[str, Any], penalty: float) -> None:
    """Make the metrics safe for Ray/Optuna: finite losses, the metric always present."""
    for key in ("val_loss", "train_loss", "best_val_loss"):
        v = row.get(key)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            row[key] = penalty
    row.setdefault("iter", 0)
    row.setdefault("tokens", 0)
    # compute spent, for ASHA's time_attr "flops" and budget.total_flops (6N + 12LCT per
    # token), the tokens of rung reads' cool-down branches included
    row["flops"] = float(row["tokens"] + (row.get("read_tokens") or 0)) * \
        float(row.get("flops_per_token") or 0)
    row["time_s"] = row.get("elapsed_s", 0.0)  # ASHA's time_attr "time_s"


def _cpus_of_trial() -> int:
    """Torch threads = CPUs Ray reserved for this trial, never more: on 2 cores a 2-thread
    trial beside a busy process slowed ~60x, while 1 thread per trial held its speed."""
    try:
        import ray.tune

        res = ray.tune.get_context().get_trial_resources().required_resources
        return max(1, int(res.get("CPU", 1)))
    except Exception:  # noqa: BLE001 — outside Ray (tests) use one thread
        return 1


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 — outside Ray
        return ""


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:500] if text else type(e).__name__


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
