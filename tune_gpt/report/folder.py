"""A search's results folder in, a report folder out: the only I/O of the report package.

    runs/<search>/results/{trials.csv, curves.csv, meta.json}  ->  reports/<search>/report.md
    (and `tune-gpt plan`: the same tables in, plan-<N>.yaml and plan-<N>_nanogpt.py out)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from tune_gpt.errors import UserError, note
from tune_gpt.report.findings import Report
from tune_gpt.trial import SearchMeta

RESULT_FILES = ("trials.csv", "curves.csv", "meta.json")
SAMPLES_FILE = "samples.json"  # optional: the best trials' text (search/samples.py)


def find_results(search: str | os.PathLike, storage_path: str | os.PathLike | None = None) -> Path:
    """The folder holding trials.csv: `search` itself (a search folder or its results/
    folder), else <storage_path or ./runs>/<search>/results."""
    here = Path(search)
    root = Path(storage_path) if storage_path else Path("runs")
    tried = [here / "results", here, root / str(search) / "results"]
    for d in tried:
        if (d / "trials.csv").is_file():
            return d
    raise UserError(f"no results for search '{search}': none of "
                    f"{', '.join(str(d / 'trials.csv') for d in dict.fromkeys(tried))} exists; "
                    f"give the search name (see `ls {root}`), its folder, or --storage-path")


def load_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, SearchMeta]:
    """Read trials.csv, curves.csv (optional) and meta.json (optional; keys an older or newer
    version wrote that SearchMeta lacks are dropped). A meta without a name gets the
    search folder's."""
    text = {"trial_id": str, "rescue_of": str, "error": str, "outcome": str}
    try:
        trials = pd.read_csv(folder / "trials.csv", dtype=text)
        curves = pd.read_csv(folder / "curves.csv", dtype={"trial_id": str}) \
            if (folder / "curves.csv").is_file() else pd.DataFrame()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{folder}: cannot read the results table ({str(e).splitlines()[0]}); "
                        f"re-run the search or `tune-gpt report` on another folder") from None
    if "trial_id" not in trials.columns or "outcome" not in trials.columns:
        raise UserError(f"{folder / 'trials.csv'}: needs 'trial_id' and 'outcome' columns")
    meta: dict[str, Any] = {}
    if (folder / "meta.json").is_file():
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{folder / 'meta.json'}: not valid JSON ({e}); fix or delete it") from None
        if not isinstance(meta, dict):
            raise UserError(f"{folder / 'meta.json'}: must hold a JSON object; fix or delete it")
    if not meta.get("name"):
        meta["name"] = folder.parent.name if folder.name == "results" else folder.name
    return trials, curves, SearchMeta.from_dict(meta)


def read_samples(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The best trials' text samples (results/samples.json, search/samples.py) of a search
    folder or its results/ folder; None when the search recorded none (an older search) or
    the file cannot be read: the report then has no samples section."""
    for d in (Path(folder), Path(folder) / "results"):
        path = d / SAMPLES_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
                note(f"{path}: unreadable ({e}); the report shows no text samples")
                return None
            if not isinstance(data, dict):
                note(f"{path}: not a mapping of samples; the report shows no text samples")
                return None
            return data
    note(f"no {SAMPLES_FILE} under {folder} (a search from before samples were kept): the "
         f"report shows no text samples")
    return None


def write_report(report: Report, out_dir: str | os.PathLike) -> Path:
    """Write report.md, the figures and the exported files into `out_dir`, replacing what
    was there. Everything is first written to a temporary sibling folder that is then
    renamed into place, so a reader never sees a half-written report. Returns report.md."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "report.md").write_text(report.markdown, encoding="utf-8")
        for name, data in report.figures.items():
            (tmp / name).write_bytes(data)
        for name, text in report.files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; a report is for reading
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "report.md"


def write_report_for(search: str, *, storage_path: str | os.PathLike | None = None,
                     tracking_uri: str | None = None, lang: str = "en",
                     out: str | os.PathLike | None = None) -> Path:
    """`tune-gpt report SEARCH`: build and write a search's report (default folder
    reports/<name>). SEARCH is a search name or folder (read from its results/ tables), or,
    with --tracking-uri or when no such folder exists, a search name or parent run id in
    MLflow (rebuilt from the runs alone). Returns the path of report.md."""
    from tune_gpt.report.build import build_report

    try:
        if tracking_uri:
            raise LookupError
        results = find_results(search, storage_path)
        trials, curves, meta = load_results(results)
        samples = read_samples(results)
    except (UserError, LookupError) as missing:
        from tune_gpt import tracking

        uri = tracking_uri or tracking.default_tracking_uri(Path(storage_path or "runs"))
        if not tracking_uri and not Path(uri[len("sqlite:///"):]).exists():
            raise missing if isinstance(missing, UserError) else UserError(str(missing))
        tracking.check_tracking_uri(uri)
        trials, curves, meta = tracking.load_search(uri, search)
        samples = tracking.load_samples(uri, meta["mlflow_parent_run_id"])
    report = build_report(trials, curves, meta, lang=lang, samples=samples)
    return write_report(report, Path(out) if out else Path("reports") / report.name)


# ----------------------------------------------------------------------------- plans

def results_of(search: str, storage_path: str | None) -> Path:
    """The results folder of `search`: a name, a search folder, or a report folder
    (reports/NAME: the search NAME under the storage path)."""
    here = Path(search)
    try:
        return find_results(search, storage_path)
    except UserError:
        if not (here / "report.md").is_file():
            raise
    try:
        return find_results(here.name, storage_path)
    except UserError:
        root = Path(storage_path) if storage_path else Path("runs")
        raise UserError(f"{search} is a report; its search's tables "
                        f"({root / here.name / 'results'}) are not here, and a plan is made "
                        f"from them: run `tune-gpt plan` where the search ran, or pass "
                        f"--storage-path to its runs folder") from None


def plan_run(search: str, tokens: int, storage_path: str | None = None, *,
             n_embd: int | None = None, n_layer: int | None = None) -> Any:
    """The plan for a run of `tokens` tokens of the search `search` (a name or folder), for
    the searched model or one n_embd wide and n_layer deep (µP; UserError when nothing
    supports one or the size does not fit)."""
    from tune_gpt.plan import plan_from

    if tokens < 1:
        raise UserError("--tokens must be at least 1 (e.g. --tokens 20M)")
    return plan_from(*load_results(results_of(search, storage_path)), tokens, n_embd=n_embd,
                     n_layer=n_layer)


def write_plan(p: Any, out: Path, folder: Path) -> list[Path]:
    """plan-<tag>.yaml and plan-<tag>_nanogpt.py in `out` (tag: RunPlan.tag). A config that
    nanoGPT cannot train as meant (µP) says so at the top of its nanoGPT file."""
    import textwrap

    import yaml

    from tune_gpt.report.export import nanogpt_config
    from tune_gpt.report.results import prepare

    tag = p.tag
    res = prepare(*load_results(folder))
    knobs = {**p.config, "out_dir": f"out-{p.search}-{tag}"}
    s, c = p.searched, p.config
    src = f"trial {p.trial_id}'s config"
    if p.transfer:
        src += (f" ({s['n_layer']} x {s['n_embd']}, searched) brought by µP to "
                f"{c['n_layer']} x {c['n_embd']} (mup_base_width {c['mup_base_width']})")
    pred = (f"predicted val_loss {p.predicted:.3f} ({p.interval[0]:.3f}-{p.interval[1]:.3f})."
            if p.predicted is not None else p.prediction_note + ".")
    head = [f"# Planned by `tune-gpt plan` from search '{p.search}' for {p.tokens:,} tokens:",
            f"# {src}, learning rate {p.lr_from:.3g} -> {p.learning_rate:.3g};"]
    head += ["# " + line for line in textwrap.wrap(pred, 96)]
    head += ["# " + line for n in p.transfer for line in textwrap.wrap(n, 96)]
    head.append("#   tune-gpt train <this file>")
    nano = nanogpt_config(res, p.trial_id, knobs).replace(
        "best trial", f"planned for {p.tokens:,} tokens from trial", 1)
    if p.warnings:  # said first, where it cannot be missed
        nano = "\n".join("# WARNING: " + line if i == 0 else "#          " + line
                         for w in p.warnings for i, line in enumerate(textwrap.wrap(w, 86))
                         ) + "\n\n" + nano
    paths = [out / f"plan-{tag}.yaml", out / f"plan-{tag}_nanogpt.py"]
    texts = ["\n".join(head) + "\n" + yaml.safe_dump(knobs, sort_keys=False), nano]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, texts):
            path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"{out}: cannot write ({e.strerror}); pass --out DIR") from None
    return paths
