"""The final phase (`final:`): after exploring, train the best config to the budget's horizon
and hand back that model.

    summary = run_final(ctx, trials, curves, configs, explore_wall)   # -> meta.final

The plan (which config, how many tokens, which learning rate, and why) comes from
tune_gpt.horizon and is written to FOLDER/final_plan.json before the run starts, so an
interrupted final run resumes with the same plan (`tune-gpt resume NAME`) from its last
evaluation. The run is one more Ray Tune trial (experiment FOLDER/final, a nested MLflow run
tagged `final_of`) on every trial slot of the search at once: on 2 CPU cores, one run with 2
threads instead of two trials with 1. Its best-validation model is copied to
FOLDER/model/ckpt.pt, which `tune-gpt sample` and `tune-gpt eval` take.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tune_gpt import horizon, retime
from tune_gpt import trial as contract
from tune_gpt.config import tokens_per_iter

PLAN_FILE = "final_plan.json"
MODEL_DIR = "model"              # FOLDER/model/ckpt.pt: the model the search hands back
CHECKPOINTS = "final-checkpoints"
FINAL_EVALS = 10  # the final run evaluates at least this often (a trial: 8 times)
END_S = 10.0                     # kept back for the tables, samples and report afterwards
OVERRUN = 0.1                    # the final run may overrun its planned time by this share


def flops_of(config: Mapping[str, Any], tokens: float, vocab_size: int) -> float:
    """Training FLOPs of `tokens` tokens of this config (as `tune-gpt estimate` counts)."""
    from tune_gpt.config import KNOBS, from_mapping
    from tune_gpt.estimate import estimate

    cfg = from_mapping({k: config[k] for k in KNOBS if k in config})
    return float(tokens) * estimate(cfg, vocab_size).flops_per_token


def first_trial(rows: list[Mapping[str, Any]], space: Any = None) -> str | None:
    """The search's first trial: with priors (`space` given and has_prior), the trial whose
    searched knobs are all at their priors, the recipe (tune_gpt.search.priors); else, or
    when no row matches, the first row of the trials table. The table lists trials in the
    order Ray created them only until a search is resumed: a restored experiment lists them
    in the order its state first saved them, which saves the trials of one step from a set,
    so after `tune-gpt resume` the recipe and the trial started beside it can trade places."""
    if not rows:
        return None
    if space is not None and has_prior(space):
        priors = space.priors()
        for r in rows:
            if all(_at(r, name, prior) for name, prior in priors.items()):
                return str(r["trial_id"])
    return str(rows[0]["trial_id"])


def _at(row: Mapping[str, Any], name: str, prior: Any) -> bool:
    """Whether a trials-table row has knob (or group of knobs) `name` at `prior`."""
    wanted = prior.items() if isinstance(prior, dict) else [(name, prior)]
    for knob, value in wanted:
        have = row.get(knob)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                if not math.isclose(float(have), float(value), rel_tol=1e-9, abs_tol=1e-12):
                    return False
            except (TypeError, ValueError):
                return False
        elif have != value:
            return False
    return True


def _left(space: Any, rows: list[dict[str, Any]], configs: Mapping[str, Any], vocab: int,
          explore_wall: float, reruns: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What the final phase may spend: seconds (a time budget) and/or tokens (a token
    budget) and/or FLOPs, each the budget minus what exploring and the confirm runs spent
    (`reruns`, each with the trial it re-runs in confirm_of; their time is in explore_wall)."""
    b = space.budget
    def spent(r: Mapping[str, Any]) -> float:  # rung reads' cool-down branches included
        extra = r.get("read_tokens")  # absent (an older search) or NaN in a table: none
        return float(r.get("tokens") or 0) + (float(extra) if isinstance(extra, (int, float))
                                              and math.isfinite(extra) else 0.0)

    def cost(of: Sequence[Mapping[str, Any]], key: str) -> tuple[float, float]:
        return (sum(spent(r) for r in of),
                sum(flops_of(configs[str(r[key])], spent(r), vocab)
                    for r in of if configs.get(str(r[key]))))

    tokens, flops = cost(rows, "trial_id")
    confirm = [r for r in reruns if r.get("confirm_of")]
    c_tokens, c_flops = cost(confirm, "confirm_of")
    return {"seconds": b.time_budget_s - explore_wall - END_S if b.time_budget_s else None,
            "tokens": b.total_tokens - tokens - c_tokens if b.total_tokens else None,
            "flops": b.total_flops - flops - c_flops if b.total_flops else None,
            "explore": {"wall_s": explore_wall, "tokens": tokens, "flops": flops,
                        "trials": len(rows)},
            "confirm": {"tokens": c_tokens, "flops": c_flops, "runs": len(confirm)}}


def final_resources(space: Any, slots: int) -> tuple[dict[str, float], float]:
    """What the final run asks Ray for, and how many times one trial's speed that buys:
    every trial slot, capped at what the largest node has (one trial runs on one node);
    more than one trial's worth runs at FINAL_EFFICIENCY (threads, or a whole GPU instead
    of shares of it, do not scale perfectly)."""
    res = space.resources
    node_cpu, node_gpu = _largest_node()
    cpu = max(res["cpu"], min(res["cpu"] * slots, node_cpu or res["cpu"] * slots))
    gpu = min(res["gpu"] * slots, 1.0, node_gpu if node_gpu else 1.0) if res["gpu"] else 0.0
    gpu = max(gpu, res["gpu"])
    units = gpu / res["gpu"] if res["gpu"] else cpu / res["cpu"]
    return {"cpu": cpu, "gpu": gpu}, units * (horizon.FINAL_EFFICIENCY if units > 1 else 1.0)


def _largest_node() -> tuple[float, float]:
    """(CPUs, GPUs) of the Ray node with the most CPUs; (0, 0) outside Ray."""
    try:
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    except Exception:  # noqa: BLE001 — no Ray here (tests): no cap
        return 0.0, 0.0
    if not nodes:
        return 0.0, 0.0
    top = max(nodes, key=lambda r: r.get("CPU", 0))
    return float(top.get("CPU", 0)), float(top.get("GPU", 0))


def has_prior(space: Any) -> bool:
    """Whether the search's first trial is its prior (the recipe): the space names priors,
    the sampler uses them, and it is not a grid (tune_gpt.search.optuna)."""
    return bool(space.sampler.priors and space.sampler.type != "grid"
                and any(getattr(d, "prior", None) is not None for d in space.params.values()))


def make_plan(space: Any, trials: Any, curves: Any, configs: Mapping[str, Mapping[str, Any]],
              vocab: int, explore_wall: float, slots: int,
              states: Path | None = None, reruns: Sequence[Mapping[str, Any]] = ()
              ) -> dict[str, Any] | None:
    """The final run's plan as written to final_plan.json (None: nothing to train). With
    `states` (the trials' checkpoint folder) and `final.continue_trial`, a trial whose
    state is kept there is continued, not started again."""
    rows = trials.to_dict("records")
    left = _left(space, rows, configs, vocab, explore_wall, reruns)
    knobs = {t: contract.knobs_of(c) for t, c in configs.items() if c}
    resources, speedup = final_resources(space, slots)

    def tokens_for(row: Mapping[str, Any], rate: float) -> float:
        """The tokens a candidate can train in what is left: the tightest of the budgets."""
        cfg = knobs.get(str(row["trial_id"]), {})
        limits = []
        if left["seconds"] is not None:
            limits.append(max(0.0, left["seconds"] - horizon.STARTUP_S) * rate * speedup)
        if left["tokens"] is not None:
            limits.append(max(0.0, left["tokens"]))
        if left["flops"] is not None and cfg:
            limits.append(max(0.0, left["flops"]) / max(flops_of(cfg, 1, vocab), 1.0))
        return min(limits) if limits else 0.0

    def continues(trial_id: str) -> bool:
        return bool(states and space.final.continue_trial
                    and (states / f"{trial_id}.pt").is_file())

    plan = horizon.plan_final(rows, curves, knobs, tokens_for=tokens_for,
                              seconds=left["seconds"], usable=contract.USABLE,
                              score=contract.score_column(space.metric), continues=continues,
                              schedule=horizon.FINAL_SCHEDULE)
    if plan is None:
        return None
    prior = first_trial(rows, space)
    # A time budget: the run fits its length to the time left as it measures its own speed
    # (retime.Retimer), up to what a token or FLOP budget leaves, if there is one.
    cap = [left["tokens"]] if left["tokens"] is not None else []
    if left["flops"] is not None:
        cap.append(left["flops"] / max(flops_of(plan.config, 1, vocab), 1.0))
    tpi = max(1, plan.tokens // max(int(plan.config["max_iters"]), 1))
    # evaluated (and saved) at least FINAL_EVALS times over what it trains: a run cut by
    # its time limit before its first evaluation would hand back nothing of its own
    new_iters = int(plan.config["max_iters"]) - plan.start_tokens // tpi
    plan.config["eval_interval"] = max(1, min(int(plan.config.get("eval_interval") or new_iters),
                                              new_iters // FINAL_EVALS))
    timing = {"until": time.time() + left["seconds"] if left["seconds"] else 0.0,
              "max_iters": int((plan.start_tokens + max(0.0, min(cap))) // tpi) if cap else 0}
    return {"plan": plan.to_dict(), "lines": plan.lines(), "left": left, "slots": slots,
            "retime": timing,
            "resources": resources, "speedup": speedup, "first_trial": prior,
            "prior_trial": prior if has_prior(space) else None,
            "prior_config": knobs.get(prior or "", {})}


def run_final(space: Any, folder: Path, prepared: Any, uri: str, parent_run_id: str,
              trials: Any, curves: Any, configs: Mapping[str, Mapping[str, Any]],
              explore_wall: float, quiet: bool, guard: Any,
              reruns: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """Plan (or read the plan of an interrupted final phase), train, and summarise: the
    summary meta.json keeps as `final`. None when no trial can be brought to the horizon.
    `guard`: the search's Ctrl-C handling (run.ctrl_c_stops_gracefully), around the run."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from tune_gpt.search.collect import result_row
    from tune_gpt.search.confirm import points_searcher
    from tune_gpt.search.live import LiveView
    from tune_gpt.search.mlflow_runs import MLflowTrialCallback
    from tune_gpt.search.tuner import make_trainable, trial_name, trial_slots

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    vocab = prepared.vocab_size
    plan_path = folder / PLAN_FILE
    if plan_path.is_file():
        saved = json.loads(plan_path.read_text())
    else:
        states = folder / "checkpoints"
        saved = make_plan(space, trials, curves, configs, vocab, explore_wall,
                          trial_slots(space), states, reruns)
        if saved is None:
            say("final phase: no trial could be brought to the horizon; nothing trained")
            return None
        if saved["plan"]["start_tokens"]:  # the state it continues, where the run finds it
            tid = saved["plan"]["trial_id"]
            (folder / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            for src, dst in ((f"{tid}.pt", "final.pt"), (f"{tid}.best.pt", "final.best.pt")):
                if (states / src).is_file():
                    shutil.copyfile(states / src, folder / CHECKPOINTS / dst)
        tmp = plan_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(json_safe(saved), indent=2, default=str))
        os.replace(tmp, plan_path)
    plan = saved["plan"]
    pred = plan["predicted"]
    say(f"\nfinal phase: trial {plan['trial_id']}'s config for {plan['tokens']:,} tokens"
        + (f" (predicted {space.metric} {pred:.4f})" if pred is not None else ""))
    for line in saved["lines"]:
        say(f"  {line}")

    timing = saved.get("retime") or {}
    point_plan = contract.TrialPlan(final_of=plan["trial_id"],
                                    final_until=float(timing.get("until") or 0.0),
                                    final_max_iters=int(timing.get("max_iters") or 0))
    point = {**plan["config"], **point_plan.to_config()}
    trainable = make_trainable(space, folder, prepared, checkpoints=CHECKPOINTS,
                               resources=saved["resources"])
    seconds = saved["left"]["seconds"]
    limit = seconds * (1 + OVERRUN) if seconds else None
    final_dir = folder / "final"
    started = time.time()
    if tune.Tuner.can_restore(str(final_dir)):
        tuner = tune.Tuner.restore(str(final_dir), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=space.metric, mode=space.mode, num_samples=1,
                search_alg=points_searcher([point], space.metric, space.mode),
                time_budget_s=limit,
                trial_name_creator=trial_name, trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(
                name="final", storage_path=str(folder), verbose=0, log_to_file=True,
                failure_config=tune.FailureConfig(max_failures=2),
                callbacks=[JsonLoggerCallback(), CSVLoggerCallback(),
                           MLflowTrialCallback(uri, parent_run_id, limit),
                           LiveView(1, list(space.params), space.metric, 1, seconds,
                                    quiet=quiet, deadline=point_plan.final_until or None,
                                    start_tokens=plan["start_tokens"])]))
    from tune_gpt.errors import SearchInterrupted

    with guard() as interrupted:
        grid = tuner.fit()
    if interrupted.is_set():  # Ray saved the run's state: `tune-gpt resume` continues it
        from tune_gpt.search.collect import unfinished

        raise SearchInterrupted(folder.name, unfinished(grid))
    results = list(grid)
    if not results:
        return None
    row, evals = result_row(results[0], folder / CHECKPOINTS, "final")
    # the run's own clock (Ray's, over every resume of it), not this process's
    wall = _num((results[0].metrics or {}).get("time_total_s")) or time.time() - started
    tid = str(row["trial_id"])
    best_file = Path(folder / CHECKPOINTS / "final.best.pt")
    model = folder / MODEL_DIR / "ckpt.pt"
    kept: dict[str, Any] = {}
    if best_file.is_file():
        from tune_gpt.checkpoint import read_checkpoint

        model.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best_file, model)
        kept = read_checkpoint(model)  # what it holds: maybe the continued trial's own best
    explore = saved["left"]["explore"]
    before = explore["flops"] + (saved["left"].get("confirm") or {}).get("flops", 0.0)
    retimed_at = Path(retime.retimed_file(str(folder / CHECKPOINTS / "final.pt")))
    retimed = json.loads(retimed_at.read_text()) if retimed_at.is_file() else {}
    start = float(plan.get("start_tokens") or 0)
    # a run that ended before its first evaluation reported nothing: it trained nothing kept
    tokens = max(float(row.get("tokens") or 0), start)
    final_flops = flops_of(plan["config"], max(0.0, tokens - start), vocab)
    tpi = tokens_per_iter(plan["config"])
    summary = {
        "trial_id": tid, "of": plan["trial_id"], "outcome": row.get("outcome"),
        # the saved model's own loss and length (the final run's best evaluation, or the
        # continued trial's best when the final run never beat it)
        "best_val_loss": _num(kept.get("best_val_loss", row.get("best_val_loss"))),
        "best_tokens": float(kept["iter"]) * tpi if "iter" in kept else None,
        "final_val_loss": _num(row.get("final_val_loss")),
        "tokens": tokens, "start_tokens": start, "wall_s": wall, "flops": final_flops,
        "trained_nothing": not evals,
        "predicted": plan["predicted"], "planned_tokens": plan["tokens"],
        "learning_rate": retimed.get("learning_rate", plan["lr"]), "lr_from": plan["lr_from"],
        "planned_lr": plan["lr"], "lines": saved["lines"] + _retimed_lines(retimed, plan, tpi),
        # the length and schedule the run fitted to its time (retime.Retimer), if it did
        "retimed": retimed if retimed.get("max_iters") != plan["config"]["max_iters"] else None,
        "candidates": plan["candidates"], "config": plan["config"],
        "checkpoint": str(model.resolve()) if model.is_file() else None,
        "explore": explore, "confirm": saved["left"].get("confirm"),
        "flops_total": before + final_flops,  # exploring, confirm runs and the final run
        "wall_s_total": explore["wall_s"] + wall,
        "prior_trial": saved.get("prior_trial"), "prior_config": saved.get("prior_config"),
        "prior": _prior(saved, trials, curves, plan, final_flops + before, vocab),
        "curve": [{k: e.get(k) for k in ("tokens", "val_loss", "train_loss")} for e in evals],
    }
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)
    return json_safe(summary)


def _retimed_lines(retimed: Mapping[str, Any], plan: Mapping[str, Any], tpi: int) -> list[str]:
    """The plan's reason line for a run that refitted its length to its time."""
    if not retimed or retimed.get("max_iters") == plan["config"]["max_iters"]:
        return []
    if over := retimed.get("overfit"):
        return [f"the run began to overfit: at {int(over['iter']) * tpi:,} tokens the mean of "
                f"its last {retime.OVERFIT_WINDOW} validation losses lay {over['rise']:.3f} "
                f"above its lowest (more than {over.get('margin', retime.OVERFIT_MARGIN):.3f}: "
                f"{retime.OVERFIT_MARGIN:g}, or 3 se of its own evaluation noise), so it "
                f"went back to the state of its best evaluation and cooled down from there "
                f"(tune_gpt.retime) and ended at "
                f"{int(retimed['max_iters']) * tpi:,} tokens instead of the planned "
                f"{int(plan['tokens']):,}, leaving the rest of its time unused: more data, or "
                f"the guide's overfitting remedies (dropout 0.1-0.2, a smaller model), would "
                f"let a longer run pay"]
    return [f"the run measured its own speed and refitted its length to the time left "
            f"(tune_gpt.retime.Retimer): {int(retimed['max_iters']) * tpi:,} tokens in all "
            f"instead of the planned {int(plan['tokens']):,}, at learning_rate "
            f"{float(retimed['learning_rate']):.3g} by the same tokens^-"
            f"{horizon.LR_TOKENS_EXPONENT:g} rule"]


def json_safe(v: Any) -> Any:
    """`v` with every non-finite float as None (JSON has no Infinity or NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def _prior(saved: Mapping[str, Any], trials: Any, curves: Any, plan: Mapping[str, Any],
           flops: float, vocab: int) -> dict[str, Any] | None:
    """The first trial (the prior) at the final model's whole compute: measured in the
    search at its own length, and predicted from its curve at the tokens the search's whole
    compute would have bought it (None when it cannot be predicted that far)."""
    tid, cfg = saved.get("prior_trial"), saved.get("prior_config") or {}
    if not tid or not cfg:
        return None
    rows = [r for r in trials.to_dict("records") if str(r["trial_id"]) == tid]
    if not rows:
        return None
    c = curves[curves["trial_id"].astype(str) == tid]
    out: dict[str, Any] = {"trial_id": tid, "measured": _num(rows[0].get("best_val_loss")),
                           "measured_tokens": float(rows[0].get("tokens") or 0),
                           "tokens_at_budget": flops / max(flops_of(cfg, 1, vocab), 1.0),
                           "predicted": None, "why": ""}
    if len(c):
        curve = horizon.fit_curve(list(c["tokens"]), list(c["val_loss"]))
        try:
            out["predicted"] = curve.predict(out["tokens_at_budget"]) if curve.fitted else None
            out["why"] = "" if curve.fitted else "too few evaluations to fit its curve"
        except ValueError as e:
            out["why"] = str(e)
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
