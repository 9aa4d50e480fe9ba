"""One search, start to end: check everything, open the MLflow parent, fit, collect the
tables, write the report. `run_search` starts one; `resume_search` continues one.

    tune-gpt search search_spaces/beginner.yaml
    tune-gpt search search_spaces/smoke.yaml --data input.txt --name demo --storage-path runs
    tune-gpt resume demo

Layout of one search (everything under STORAGE/NAME, default ./runs/NAME):
    state.json        what is needed to resume (options, profile, MLflow parent run id)
    space.yaml        the space as resolved (profile merged, --set applied)
    optuna.db         the Optuna study (optuna-dashboard sqlite:///.../optuna.db)
    tune/             Ray Tune's experiment: trial folders, logs
    checkpoints/      one checkpoint per trial, until the search is finished
    results/          trials.csv, curves.csv, meta.json, samples.json (what the report reads)
The default MLflow store is STORAGE/mlflow.db, shared by all searches of that storage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from tune_gpt.errors import SearchInterrupted, UserError
from tune_gpt.search.nodes import check_ray_address, connect_ray
from tune_gpt.search.state import (SearchOptions, SearchResult, SearchState, check_name,
                                   existing_state, find_resumable, new_name, storage_of)
from tune_gpt.space import SearchSpace, load_space

# Ray settings of every search: no usage stats, no TensorBoard loggers, the classic output,
# and the experiment state saved every second (default: every 10 s or more), so that after
# a crash a trial that had finished is known as finished and is not run again.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
           "RAY_AIR_NEW_OUTPUT": "0", "TUNE_GLOBAL_CHECKPOINT_S": "1"}


@dataclass
class _Plan:
    """A checked search, ready to run."""

    opts: SearchOptions
    space: SearchSpace
    storage: Path
    folder: Path
    dataset: str
    prepared: Any
    uri: str
    state: SearchState | None  # None: a new search (its parent run is not made yet)
    doctor: Any = None         # the data doctor's DataReport (data.doctor), made once
    priors: list[str] | None = None  # each prior with its reason (space/auto_priors.py)


def run_search(opts: SearchOptions) -> SearchResult:
    """Validate everything, then run the search, then write results + report.
    With opts.resume, continue the unfinished search (--name, or the latest of the space)."""
    storage = storage_of(opts.storage_path)
    if opts.resume:
        name = opts.name or find_resumable(storage, load_space(
            opts.space, sets=opts.sets, profile=opts.profile).name)
        return resume_search(name, storage_path=str(storage), address=opts.address,
                             quiet=opts.quiet)
    return _run(_plan_new(opts, storage))


def resume_search(name: str, storage_path: str | None = None, address: str | None = None,
                  quiet: bool = False) -> SearchResult:
    """Continue the interrupted search `name` with the options it was started with."""
    storage = storage_of(storage_path)
    state = existing_state(storage, name)
    if state.finished:  # resuming it would train nothing and rewrite its tables and report
        raise UserError(f"search '{name}' is already finished: nothing to resume; its results "
                        f"are in {storage / name / 'results'} (`tune-gpt report {name}` writes "
                        f"its report again)")
    opts = replace(SearchOptions.from_dict(state.options), resume=True, quiet=quiet,
                   storage_path=str(storage), address=address or state.options.get("address"))
    space = load_space(storage / name / "space.yaml", profile=state.profile)
    return _run(_checked(opts, space, storage, name, state))


def _plan_new(opts: SearchOptions, storage: Path) -> _Plan:
    if opts.name is not None:
        check_name(opts.name)
    if not Path(opts.space).is_file():
        raise UserError(f"{opts.space}: search space not found; see search_spaces/ for examples")
    space = load_space(opts.space, sets=opts.sets, profile=opts.profile)
    if opts.num_samples is not None:
        if opts.num_samples < 1:
            raise UserError("--num-samples must be at least 1")
        space.budget.num_samples = opts.num_samples
    name = opts.name or new_name(space.name)
    if (storage / name / "state.json").exists():
        raise UserError(f"a search named '{name}' already exists under {storage}; continue it "
                        f"with `tune-gpt resume {name}`, or choose another --name")
    return _checked(opts, space, storage, name, None)


def _checked(opts: SearchOptions, space: SearchSpace, storage: Path, name: str,
             state: SearchState | None) -> _Plan:
    """Every check that needs no Ray: iterations, data, tracking store, cluster address."""
    from tune_gpt import tracking

    if opts.max_iters is not None and opts.max_iters < 1:
        raise UserError("--max-iters must be at least 1")
    if state is not None:  # a resume: refuse a tampered ASHA state before anything changes
        from tune_gpt.search.asha import read_state

        read_state(storage / name / "asha.json")
    dataset, prepared = check_data(space, opts.data or space.data)
    from tune_gpt.space import auto_priors

    # `prior: auto`: set from this data, this budget and this hardware by the cited rules
    priors = auto_priors.resolve(space, prepared.n_train, auto_priors.device_of(space))
    from tune_gpt.search.nodes import check_gpu_needed

    check_gpu_needed(space, prepared.vocab_size, opts.address)
    uri = opts.tracking_uri or (state.tracking_uri if state else None) or \
        tracking.default_tracking_uri(storage)
    tracking.check_tracking_uri(uri)
    check_ray_address(opts.address)
    return _Plan(opts, space, storage, storage / name, dataset, prepared, uri, state,
                 priors=priors)


def _run(plan: _Plan) -> SearchResult:
    from tune_gpt import tracking

    opts, space, folder = plan.opts, plan.space, plan.folder
    say: Callable[..., None] = (lambda *a: None) if opts.quiet else \
        (lambda *a: print(*a, flush=True))
    if space.profile == "cpu":
        say(f"no GPU here: using the CPU profile of {space.source} — {space.description}")
    plan.doctor = data_report(space, plan.prepared)
    say(plan.doctor.format())
    if plan.priors:
        say("priors (the first trial; start-up trials are drawn near them):\n"
            + "\n".join(f"  {line}" for line in plan.priors))
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    with ray_session(opts.address):
        from tune_gpt.search.nodes import check_cluster_gpus, check_nodes_see

        check_cluster_gpus(space, opts.address)
        check_nodes_see(plan.prepared)  # a data set read in place: every node must see it
        state = plan.state or _start(plan)
        if plan.state is not None:
            tracking.reopen_parent(plan.uri, state.parent_run_id)
        state.write(folder)
        _announce(say, plan, state)
        from tune_gpt.search.tuner import build_tuner

        started = time.time()
        tuner = build_tuner(space, folder, plan.dataset, plan.prepared, plan.uri,
                            state.parent_run_id, seed=opts.seed, max_iters_cap=opts.max_iters,
                            resume=plan.state is not None, quiet=opts.quiet)
        with ctrl_c_stops_gracefully() as interrupted:
            grid = tuner.fit()
        wall = time.time() - started
        state.explored_s += wall  # (a SIGKILLed driver loses this part: it never got here)
        state.write(folder)
        if interrupted.is_set():  # Ray saved its state: keep the search resumable
            tracking.mark_interrupted(plan.uri, state.parent_run_id)
            from tune_gpt.search.asha import read_state
            from tune_gpt.search.collect import unfinished

            asha = read_state(folder / "asha.json") or {}
            raise SearchInterrupted(state.name, unfinished(grid, asha.get("stopped", ())))
        # the exploring time over every resume, not this session's share of it
        trials, curves, meta = _finish(plan, state, grid, state.explored_s)

    report_path = None
    if opts.report:
        from tune_gpt.report import build_report, read_samples, write_report

        report = build_report(trials, curves, meta, lang=opts.lang, samples=read_samples(folder))
        report_path = write_report(report, Path(opts.reports_dir) / state.name)
        tracking.log_folder(plan.uri, state.parent_run_id, report_path.parent, "report")
    from tune_gpt.search.live import print_summary

    print_summary(say, state.name, meta.best, meta.counts, state.explored_s, folder,
                  report_path, space, meta.confirm, meta.final)
    return SearchResult(state.name, folder, meta.best, meta.counts, report_path, plan.uri,
                        state.parent_run_id, state.explored_s)


def _start(plan: _Plan) -> SearchState:
    """A new search: its folder, space.yaml and MLflow parent run."""
    import yaml

    from tune_gpt import tracking

    opts, space, folder = plan.opts, plan.space, plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.yaml").write_text(yaml.safe_dump(space.raw, sort_keys=False))
    seed = opts.seed if opts.seed is not None else space.sampler.seed
    parent = tracking.start_parent(
        plan.uri, f"tune-gpt-{space.name}", folder.name,
        tags={"space_file": str(Path(space.source).resolve()), "profile": space.profile,
              "sampler": space.sampler.type, "scheduler": space.scheduler.type,
              "metric": space.metric, "mode": space.mode, "seed": str(seed),
              "git_commit": _git_commit(), "dataset": plan.dataset,
              "dataset_sha256": str(getattr(plan.prepared, "sha256", ""))},
        params={"num_samples": space.budget.num_samples, **data_params(plan.prepared),
                **{f"space.{k}": v.to_yaml() for k, v in space.params.items()},
                **{f"fixed.{k}": v for k, v in space.fixed.items()}},
        artifacts=[Path(space.source), folder / "space.yaml"],
        artifact_root=plan.storage / "mlartifacts" if plan.uri.startswith("sqlite") else None)
    return SearchState(name=folder.name, space_name=space.name, profile=space.profile,
                       tracking_uri=plan.uri, parent_run_id=parent, dataset=plan.dataset,
                       options={**asdict(opts), "data": plan.dataset, "resume": False})


def _finish(plan: _Plan, state: SearchState, grid: Any, wall: float) -> tuple[Any, Any, Any]:
    """Tables, Optuna study closed, MLflow parent finished, checkpoints dropped."""
    from tune_gpt import tracking
    from tune_gpt.search.collect import collect, trial_id_of, write_tables
    from tune_gpt.search.optuna import reconcile_study
    from tune_gpt.search.samples import write_samples
    from tune_gpt.trial import told_column

    folder = plan.folder
    from tune_gpt.search.tuner import longest_trial_iters, resolved_scheduler

    scheduler = resolved_scheduler(plan.space, longest_trial_iters(plan.space, plan.opts.max_iters),
                                   plan.prepared.vocab_size)
    trials, curves, meta = collect(grid, plan.space, state, folder, wall, scheduler)
    if plan.doctor is not None:
        meta.data_doctor = plan.doctor.to_dict()
    meta.priors = list(plan.priors or [])
    if plan.state is not None:
        reconcile_study(folder, trials, told_column(plan.space.metric))
    confirm_started = time.time()
    reruns: list[dict] = []  # the confirm runs, charged to the final phase's budget
    if plan.space.confirm.top_k and len(trials):
        from tune_gpt.search.confirm import run_confirm

        configs = {trial_id_of(r): r.config for r in grid}
        done = run_confirm(plan.space, folder, plan.prepared, plan.uri, state.parent_run_id,
                           trials, configs, plan.opts.quiet)
        if done is not None:
            reruns, meta.confirm = done
            import pandas as pd

            (folder / "results").mkdir(parents=True, exist_ok=True)
            pd.DataFrame(reruns).to_csv(folder / "results" / "confirm.csv", index=False)
    if plan.space.final is not None and len(trials):
        from tune_gpt.search.final import run_final

        configs = {trial_id_of(r): r.config for r in grid}
        # the time exploring took, over every resume, and the confirm runs': both come
        # out of the budget the final run shares
        spent = state.explored_s + (time.time() - confirm_started)
        try:
            meta.final = run_final(plan.space, folder, plan.prepared, plan.uri,
                                   state.parent_run_id, trials, curves, configs, spent,
                                   plan.opts.quiet, ctrl_c_stops_gracefully, reruns)
        except SearchInterrupted:
            tracking.mark_interrupted(plan.uri, state.parent_run_id)
            raise
    write_samples(folder, trials, plan.space.metric)  # results/samples.json, from checkpoints/
    write_tables(folder / "results", trials, curves, meta)
    tracking.log_folder(plan.uri, state.parent_run_id, folder / "results", "results")
    tracking.finish_parent(plan.uri, state.parent_run_id, meta.best, meta.counts,
                           confirm=meta.confirm, final=meta.final)
    state.finished = True
    state.write(folder)
    # Trial checkpoints (one per trial, kept until now so that a crash at any moment can
    # resume) are not needed once the search is finished.
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    shutil.rmtree(folder / "confirm-checkpoints", ignore_errors=True)
    return trials, curves, meta


def _announce(say: Callable[..., None], plan: _Plan, state: SearchState) -> None:
    space, opts = plan.space, plan.opts
    sched = f"ASHA on {space.scheduler.time_attr}" if space.scheduler.type == "asha" else \
        "no early stopping"
    say(f"search '{state.name}': {space.budget.num_samples} trials of {space.source} "
        f"({space.sampler.type} sampler, {sched})")
    ui = "tune-gpt ui" + ("" if opts.storage_path is None else f" --storage-path {plan.storage}")
    say(f"  results: {plan.folder}\n  MLflow:  {plan.uri} (parent run {state.parent_run_id}; "
        f"`{ui}`)")


# ----------------------------------------------------------------------------- preflight

def check_data(space: SearchSpace, data: str) -> tuple[str, Any]:
    """Resolve the data set once in the driver (raises UserError if it is not usable)."""
    from tune_gpt.config import TrainConfig, check_block_size
    from tune_gpt.data import prepare

    path = Path(data).expanduser()
    dataset = str(path.resolve()) if path.exists() or os.sep in data or data.endswith(".txt") \
        else data
    from tune_gpt.space.resolve import values_of

    prepared = prepare(dataset, tokenizer=str(space.fixed.get("tokenizer", "auto")))
    # the longest block the space can take (params, groups, fixed, or the default)
    check_block_size(TrainConfig(block_size=max(values_of(space, "block_size"))),
                     prepared.n_val)
    return dataset, prepared


def data_params(prepared: Any) -> dict[str, Any]:
    """The data set as MLflow params of the parent run: its identity, tokenizer, sizes."""
    return {"data.identity": prepared.sha256, "data.tokenizer": prepared.tokenizer,
            "data.vocab_size": prepared.vocab_size, "data.train_tokens": prepared.n_train,
            "data.val_tokens": prepared.n_val}


def data_report(space: SearchSpace, prepared: Any) -> Any:
    """The data doctor's view of this search's data (printed before the search starts,
    kept in meta.json for the report): at the longest block (the fewest distinct val
    windows) and the smallest batch (the noisiest evaluation) the space can take."""
    from tune_gpt.data.doctor import doctor
    from tune_gpt.space.resolve import values_of

    def extreme(knob: str, pick: Callable[..., Any]) -> Any:
        try:
            return pick(values_of(space, knob))
        except UserError:  # a continuous range: no list of values to look at
            return None
    return doctor(prepared, tokens_per_trial=space.budget.tokens_per_trial,
                  block_size=extreme("block_size", max), batch_size=extreme("batch_size", min))


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for one search: connected on entry (a local Ray, or the cluster at `address`);
    on exit, however the search ends (finished, failed, interrupted), shut down, and the
    local Ray's session folder removed. The folder is new for each search and has a short
    path (Ray's socket paths must stay under 108 bytes); it goes only once Ray's processes
    have exited, since they write their logs and sockets there until then. Its name holds
    the driver's pid (tgray-PID-...): a driver that was SIGKILLed cannot remove it, and
    whoever killed it can then find what it left."""
    temp_dir = tempfile.mkdtemp(prefix=f"tgray-{os.getpid()}-")
    try:
        connect_ray(address, temp_dir)
        import ray

        try:
            yield
        finally:
            ray.shutdown(wait_for_processes=True)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ctrl_c_stops_gracefully() -> Any:
    """Ctrl-C during fit(): remember it, and ask Ray Tune to stop gracefully (it saves its
    state) through its SIGUSR1 handler; a second Ctrl-C interrupts at once. Ray's own SIGINT
    handler is off while fit() runs (TUNE_DISABLE_SIGINT_HANDLER, restored afterwards)
    because it leaves no trace of the interruption: the search would look finished and
    could not be resumed."""
    import signal
    import threading

    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = signal.getsignal(signal.SIGINT)
    env_before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"

    def on_sigint(sig: int, frame: Any) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, previous)
        os.kill(os.getpid(), signal.SIGUSR1)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
        if env_before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = env_before
