"""One search: a space YAML -> Ray Tune (Optuna sampler + ASHA) -> MLflow -> results + report.

    tune-gpt search search_spaces/beginner.yaml
    tune-gpt search search_spaces/smoke.yaml --data input.txt --name demo --storage-path runs
    tune-gpt resume demo

Layout of one search (everything under STORAGE/NAME, default ./runs/NAME):
    state.json        what is needed to resume (options, profile, MLflow parent run id)
    space.yaml        the space as resolved (profile merged, --set applied)
    optuna.db         the Optuna study (optuna-dashboard sqlite:///.../optuna.db)
    tune/             Ray Tune's experiment: trial folders, logs, checkpoints
    results/          trials.csv, curves.csv, meta.json (what the report reads)
The default MLflow store is STORAGE/mlflow.db, shared by all searches of that storage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tune_gpt.errors import UserError, check_writable
from tune_gpt.sampling import label, resolve, suggest
from tune_gpt.space import SearchSpace, grid_size, load_space


@dataclass
class SearchOptions:
    """What `tune-gpt search` was asked (CLI flags; None = as the space says)."""

    space: str
    num_samples: int | None = None
    max_iters: int | None = None
    data: str | None = None
    name: str | None = None
    seed: int | None = None
    tracking_uri: str | None = None
    storage_path: str | None = None
    address: str | None = None
    resume: bool = False
    sets: list[str] = field(default_factory=list)
    profile: str | None = None
    lang: str = "en"
    report: bool = True
    reports_dir: str = "reports"
    quiet: bool = False


@dataclass
class SearchResult:
    name: str
    folder: Path
    best: dict[str, Any] | None
    counts: dict[str, int]
    report: Path | None
    tracking_uri: str
    parent_run_id: str
    wall_s: float


RESCUE_ATTR = "tune_gpt.rescue"


class DefineByRun:
    """Optuna define-by-run space for Ray's OptunaSearch: sample the tuned knobs, return the
    rest of the trial's config as constants (picklable, so a restored search has it)."""

    def __init__(self, space: SearchSpace, data: str, max_iters_cap: int | None,
                 seed: int | None, checkpoint_dir: str):
        self.space, self.data, self.cap, self.seed = space, data, max_iters_cap, seed
        self.checkpoint_dir = checkpoint_dir

    def __call__(self, trial: Any) -> dict[str, Any]:
        sampled = suggest(trial, self.space)
        knobs = resolve(self.space, sampled, data=self.data, max_iters_cap=self.cap,
                        seed=self.seed)
        extra: dict[str, Any] = {"_metric": self.space.metric, "_sampled": sampled,
                                 "_checkpoint_dir": self.checkpoint_dir}
        if self.space.memory_limit:
            extra["_memory_limit"] = self.space.memory_limit
        rescue = (getattr(trial, "user_attrs", None) or {}).get(RESCUE_ATTR)
        if rescue:  # an OOM'd config again: same tokens/iter in smaller micro-batches
            knobs["batch_size"] = rescue["batch_size"]
            knobs["gradient_accumulation_steps"] = rescue["gradient_accumulation_steps"]
            extra.update(_rescue_of=rescue["of"], _rescue_depth=rescue["depth"])
        return {**knobs, **extra}


def make_sampler(space: SearchSpace, seed: int | None) -> Any:
    import optuna

    opts = {k: v for k, v in space.sampler.items() if k not in ("type", "seed")}
    seed = seed if seed is not None else space.sampler.get("seed")
    kind = space.sampler["type"]
    classes = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
               "cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler,
               "nsga2": optuna.samplers.NSGAIISampler, "grid": optuna.samplers.GridSampler}
    if kind == "grid":
        opts["search_space"] = {k: [label(v) for v in d.candidates() or []]
                                for k, d in space.params.items()}
    try:
        return classes[kind](seed=seed, **opts)
    except TypeError as e:
        raise UserError(f"{space.source}: sampler: {e}; see Optuna's {classes[kind].__name__} "
                        f"for its options") from None


def make_scheduler(space: SearchSpace, max_iters: int) -> Any:
    s = space.scheduler
    if s.type == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    max_t = s.max_t or {"tokens": space.budget.tokens_per_trial or 0, "iter": max_iters,
                        "time_s": space.budget.time_budget_s or 3600}[s.time_attr]
    grace = s.grace_period or max_t / 10
    return ASHAScheduler(time_attr=s.time_attr, max_t=max_t, grace_period=grace,
                         reduction_factor=s.reduction_factor, brackets=s.brackets)


# ----------------------------------------------------------------------------- preflight

def _storage(opts: SearchOptions) -> Path:
    """The storage folder, checked for writing without creating anything yet."""
    storage = Path(opts.storage_path or "runs").expanduser().resolve()
    check_writable(storage, "storage path", "pass a writable --storage-path")
    return storage


def _find_resumable(storage: Path, space_name: str) -> str:
    candidates = []
    for state in storage.glob("*/state.json"):
        info = json.loads(state.read_text())
        if info.get("space_name") == space_name and not info.get("finished"):
            candidates.append((state.stat().st_mtime, info["name"]))
    if not candidates:
        raise UserError(f"nothing to resume: no unfinished search of '{space_name}' under "
                        f"{storage}; run without --resume, or pass --name of a search")
    return max(candidates)[1]


def _check_data(space: SearchSpace, data: str) -> tuple[str, Any]:
    """Resolve the data set once in the driver (raises UserError if it is not usable)."""
    from tune_gpt.config import check_block_size
    from tune_gpt.data import prepare

    path = Path(data).expanduser()
    dataset = str(path.resolve()) if path.exists() or os.sep in data or data.endswith(".txt") \
        else data
    prepared = prepare(dataset)
    blocks = []
    for d in space.params.values():
        for v in d.candidates() or []:
            blocks.append(v.get("block_size", 0) if isinstance(v, dict) else 0)
    if "block_size" in space.params:
        blocks += list(space.params["block_size"].candidates() or [])
    blocks.append(space.fixed.get("block_size", 0))
    from tune_gpt.config import TrainConfig

    check_block_size(TrainConfig(block_size=max(blocks + [1])), prepared.n_val)
    return dataset, prepared


def _check_ray_address(address: str | None) -> None:
    """Fail fast on a cluster address nobody answers at (ray.init would wait a minute)."""
    import socket

    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r} must look like HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise UserError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one "
                        f"with `ray start --head`, or leave --address out for a local Ray") \
            from None


def _connect_ray(address: str | None, temp_dir: str) -> None:
    import ray

    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR,
                                  configure_logging=True)
    address = address or os.environ.get("RAY_ADDRESS")
    env = {k: os.environ[k] for k in ("TUNE_GPT_CACHE_DIR",) if k in os.environ}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, _temp_dir=temp_dir, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address} ({first}); check "
                        f"`ray status` there, or leave --address out for a local Ray") from None


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- the search

def run_search(opts: SearchOptions) -> SearchResult:
    """Validate everything, then run (or resume) the search, then write results + report."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Save Ray's experiment state every second (default: every 10 s or more), so that after a
    # crash a trial that had finished is known as finished and is not run again.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # see _ctrl_c_stops_gracefully
    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, flush=True))
    from tune_gpt import tracking

    storage = _storage(opts)
    if opts.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", opts.name):
        raise UserError(f"--name {opts.name!r}: use letters, digits, '_', '-' and '.' only "
                        f"(it names a folder under the storage path)")
    state: dict[str, Any] = {}
    if not opts.resume and not Path(opts.space).is_file():
        raise UserError(f"{opts.space}: search space not found; see search_spaces/ for examples")
    if opts.resume:
        name = opts.name or _find_resumable(storage, load_space(opts.space, sets=opts.sets,
                                                                profile=opts.profile).name)
        state_file = storage / name / "state.json"
        if not state_file.is_file() or name in ("", ".", ".."):
            raise UserError(f"cannot resume '{name}': no search of that name under {storage}; "
                            f"check --name and --storage-path")
        state = json.loads(state_file.read_text())
        opts = SearchOptions(**{**asdict(opts), **state["options"], "resume": True,
                                "address": opts.address or state["options"].get("address")})
        space = load_space(storage / name / "space.yaml", profile=state["profile"])
    else:
        space = load_space(opts.space, sets=opts.sets, profile=opts.profile)
        if opts.num_samples is not None:
            if opts.num_samples < 1:
                raise UserError("--num-samples must be at least 1")
            space.budget.num_samples = opts.num_samples
        name = opts.name or f"{space.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
        if (storage / name / "state.json").exists():
            raise UserError(f"a search named '{name}' already exists under {storage}; add "
                            f"--resume to continue it, or choose another --name")
    if opts.max_iters is not None and opts.max_iters < 1:
        raise UserError("--max-iters must be at least 1")
    folder = storage / name
    dataset, prepared = _check_data(space, opts.data or space.data)
    uri = opts.tracking_uri or state.get("tracking_uri") or tracking.default_tracking_uri(storage)
    tracking.check_tracking_uri(uri)
    _check_ray_address(opts.address)
    if space.profile == "cpu":
        say(f"no GPU here: using the CPU profile of {space.source} — {space.description}")

    temp_dir = tempfile.mkdtemp(prefix="tgray-")
    _connect_ray(opts.address, temp_dir)
    import ray

    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not state:
            import yaml

            (folder / "space.yaml").write_text(yaml.safe_dump(space.raw, sort_keys=False))
            parent = tracking.start_parent(
                uri, f"tune-gpt-{space.name}", name,
                tags={"space_file": str(Path(space.source).resolve()), "profile": space.profile,
                      "sampler": space.sampler["type"], "scheduler": space.scheduler.type,
                      "seed": str(opts.seed if opts.seed is not None
                                  else space.sampler.get("seed")),
                      "git_commit": _git_commit(), "dataset": dataset,
                      "dataset_sha256": str(getattr(prepared, "sha256", ""))},
                params={"num_samples": space.budget.num_samples,
                        **{f"space.{k}": v.to_yaml() for k, v in space.params.items()},
                        **{f"fixed.{k}": v for k, v in space.fixed.items()}},
                artifacts=[Path(space.source), folder / "space.yaml"],
                artifact_root=storage / "mlartifacts" if uri.startswith("sqlite") else None)
            state = {"name": name, "space_name": space.name, "profile": space.profile,
                     "tracking_uri": uri, "parent_run_id": parent, "dataset": dataset,
                     "created": dt.datetime.now().isoformat(timespec="seconds"),
                     "options": {**asdict(opts), "data": dataset, "resume": False},
                     "finished": False}
        else:
            tracking.start_parent(uri, f"tune-gpt-{space.name}", name, {}, {}, [], None,
                                  run_id=state["parent_run_id"])
        (folder / "state.json").write_text(json.dumps(state, indent=2))

        say(f"search '{name}': {space.budget.num_samples} trials of {space.source} "
            f"({space.sampler['type']} sampler, "
            f"{'ASHA on ' + space.scheduler.time_attr if space.scheduler.type == 'asha' else 'no early stopping'})")
        say(f"  results: {folder}\n  MLflow:  {uri} (parent run {state['parent_run_id']}; "
            f"`tune-gpt ui{'' if opts.storage_path is None else ' --storage-path ' + str(storage)}`)")
        started = time.time()
        tuner = _tuner(space, opts, folder, dataset, prepared, uri, state["parent_run_id"],
                       resume=bool(opts.resume))
        with _ctrl_c_stops_gracefully() as interrupted:
            grid = tuner.fit()
        wall = time.time() - started
        if interrupted.is_set():  # Ray saved its state: keep the search resumable
            tracking.mark_interrupted(uri, state["parent_run_id"])
            raise SearchInterrupted(name, len(grid) - grid.num_terminated)
        from tune_gpt.results import collect, reconcile_study, write_tables

        trials, curves, meta = collect(grid, space, state, folder, wall)
        if opts.resume:
            reconcile_study(folder / "optuna.db", folder.name, trials, space.metric)
        write_tables(folder / "results", trials, curves, meta)
        tracking.log_folder(uri, state["parent_run_id"], folder / "results", "results")
        best = meta.get("best")
        counts = meta["counts"]
        tracking.finish_parent(uri, state["parent_run_id"], best, counts)
        state["finished"] = True
        (folder / "state.json").write_text(json.dumps(state, indent=2))
        # Trial checkpoints (one per trial, kept until now so that a crash at any moment
        # can resume) are not needed once the search is finished.
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    finally:
        ray.shutdown()

    report_path = None
    if opts.report:
        from tune_gpt.report import build_report, write_report

        report = build_report(trials, curves, meta, lang=opts.lang)
        report_path = write_report(report, Path(opts.reports_dir) / name)
        tracking.log_folder(uri, state["parent_run_id"], report_path.parent, "report")
    _print_summary(say, name, best, counts, wall, folder, report_path, space)
    return SearchResult(name, folder, best, counts, report_path, uri, state["parent_run_id"], wall)


def resume_search(name: str, storage_path: str | None = None,
                  address: str | None = None) -> SearchResult:
    return run_search(SearchOptions(space="", name=name, storage_path=storage_path,
                                    address=address, resume=True))


def _tuner(space: SearchSpace, opts: SearchOptions, folder: Path, dataset: str, prepared: Any,
           uri: str, parent_run_id: str, resume: bool) -> Any:
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from trainables.gpt import gpt_trainable
    from tune_gpt.live import LiveView, MLflowTrialCallback

    res = space.resources
    # The text travels once through Ray's object store: any node can train on it.
    corpus = Path(prepared.source).read_bytes()
    trainable = tune.with_resources(
        tune.with_parameters(gpt_trainable, corpus=corpus, corpus_sha256=prepared.sha256),
        {"cpu": res["cpu"], "gpu": res["gpu"]})
    tune_dir = folder / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        return tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_errored=True)
    if resume:
        raise UserError(f"cannot resume: {tune_dir} holds no Ray Tune experiment (the search "
                        f"stopped before its first trial); start it again without --resume")

    import optuna

    seed = opts.seed if opts.seed is not None else space.sampler.get("seed")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    searcher = OptunaSearch(DefineByRun(space, dataset, opts.max_iters, opts.seed,
                                        str(folder / "checkpoints")),
                            metric=space.metric, mode=space.mode,
                            sampler=make_sampler(space, seed), study_name=folder.name,
                            storage=storage)
    max_iters = max(resolve(space, {k: (d.low if d.candidates() is None else
                                        label(d.candidates()[0]))
                                    for k, d in space.params.items()},
                            max_iters_cap=opts.max_iters)["max_iters"], 1)
    num = space.budget.num_samples
    if space.sampler["type"] == "grid" and not space.rescue:
        num = min(num, grid_size(space))  # rescues are extra trials: the user sizes those
    concurrency = space.budget.max_concurrent_trials or max(1, int(_cluster_cpus() //
                                                                   res["cpu"]))
    tuned = list(space.params)
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    # Ray's automatic loggers are off (TensorBoard's noise); keep the two the results need.
    from tune_gpt.live import RescueOnOOM, TokenBudget

    rescue = [RescueOnOOM(str(folder / "optuna.db"), folder.name, space.rescue, RESCUE_ATTR)] \
        if space.rescue else []
    callbacks = [*rescue, JsonLoggerCallback(), CSVLoggerCallback(),
                 MLflowTrialCallback(uri, parent_run_id, space.budget.time_budget_s),
                 LiveView(num, tuned, space.metric, concurrency, space.budget.time_budget_s,
                          stream=None if not opts.quiet else open(os.devnull, "w"),
                          total_tokens=space.budget.total_tokens)]
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode, search_alg=searcher,
            scheduler=make_scheduler(space, max_iters), num_samples=num,
            max_concurrent_trials=space.budget.max_concurrent_trials,
            time_budget_s=space.budget.time_budget_s, reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(folder), verbose=0, log_to_file=True,
            stop=TokenBudget(space.budget.total_tokens, str(tune_dir))
            if space.budget.total_tokens else None,
            failure_config=tune.FailureConfig(max_failures=2),
            callbacks=callbacks))


class SearchInterrupted(Exception):
    """The search stopped before its end (Ctrl-C); its state is saved for --resume."""

    def __init__(self, name: str, unfinished: int):
        super().__init__(f"search '{name}' interrupted with {unfinished} trial(s) unfinished; "
                         f"continue it with `tune-gpt resume {name}` (same --storage-path)")
        self.name = name


@contextlib.contextmanager
def _ctrl_c_stops_gracefully() -> Any:
    """Ctrl-C during fit(): remember it, and ask Ray Tune to stop gracefully (it saves its
    state) through its SIGUSR1 handler; a second Ctrl-C interrupts at once. Ray's own SIGINT
    handler is off (TUNE_DISABLE_SIGINT_HANDLER) because it leaves no trace of the
    interruption: the search would look finished and could not be resumed."""
    import signal
    import threading

    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(sig: int, frame: Any) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, previous)
        os.kill(os.getpid(), signal.SIGUSR1)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _trial_name(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1))


def _print_summary(say: Any, name: str, best: dict[str, Any] | None, counts: dict[str, int],
                   wall: float, folder: Path, report: Path | None, space: SearchSpace) -> None:
    say(f"\nsearch '{name}' done in {wall / 60:.1f} min: " +
        ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in counts.items() if n))
    if best:
        say(f"best {space.metric}: {best['best_val_loss']:.4f} (trial {best['trial_id']})")
        shown = [k for k in space.params if k in best["config"]]
        shown += [k for d in space.group_params().values() for v in d.values for k in v
                  if k not in shown]
        say("best config: " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in ((k, best["config"][k]) for k in dict.fromkeys(shown))))
    else:
        say("no trial produced a usable result")
    say(f"results: {folder / 'results'}")
    if report:
        say(f"report:  {report}")
