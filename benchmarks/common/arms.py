"""One arm of a benchmark run as the user runs it: a `tune-gpt` subprocess.

A script that compares whole runs (a search, a training, a scored model) drives the
`tune-gpt` command rather than the library, so what it measures is what the command does.
Here: the command of this interpreter's environment, a run whose output goes to a log
(one line, with the log's path, when it fails), a checkpoint scored by `tune-gpt eval` on
the whole validation split, and an arm's wall time over the attempts a resume takes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common.output import saved_cell, write_json


class ArmFailed(Exception):
    """An arm that cannot finish; its message is one line to print."""


def tune_gpt() -> list[str]:
    """The `tune-gpt` command of this interpreter's environment."""
    beside = Path(sys.executable).with_name("tune-gpt")
    found = str(beside) if beside.exists() else shutil.which("tune-gpt")
    return [found] if found else [sys.executable, "-m", "tune_gpt.cli"]


def flags_of(command: str, wanted: tuple[str, ...]) -> set[str]:
    """Those of the optional flags `wanted` that `tune-gpt COMMAND --help` lists."""
    out = subprocess.run([*tune_gpt(), command, "--help"], capture_output=True, text=True,
                         timeout=120, check=False).stdout
    words = {w.strip("[],") for w in out.split()}
    return {f for f in wanted if f in words}


def run_logged(cmd: list[str], log: Path, cwd: Path) -> None:
    """`cmd` run in `cwd`, its output appended to `log`; ArmFailed when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, check=False,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
    if rc:
        lines = [x for x in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if x.strip()]
        raise ArmFailed(f"`tune-gpt {' '.join(cmd[1:2])}` exited with {rc} "
                        f"({lines[-1] if lines else 'no output'}); its log: {log}")


def score(ckpt: Path, data: str, log: Path, cwd: Path, context: int | None = None
          ) -> dict[str, Any]:
    """`tune-gpt eval CKPT --json [--context N]`: {"val_loss", "tokens"} on the whole
    validation split of `data` (the output appended to `log`)."""
    if not ckpt.is_file():
        raise ArmFailed(f"no model to score at {ckpt}")
    cmd = [*tune_gpt(), "eval", str(ckpt), "--data", data, "--json"]
    cmd += ["--context", str(context)] if context is not None else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n{proc.stdout}{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        raise ArmFailed(f"`tune-gpt eval {ckpt}` failed ({proc.stderr.strip()[-300:]})")
    return json.loads(lines[-1])


def timed(clock: Path, progress: Path, run: Callable[[], None]) -> float:
    """Run `run`, and return the wall seconds the arm has taken over all its attempts (kept
    in `clock`). An attempt cut short counts until `progress` (the state a resume continues
    from) was last written: what it did after that is done again by the next attempt."""
    attempts = saved_cell(clock, ("attempts",)) or {"attempts": []}
    for a in attempts["attempts"]:
        if a[1] is None:
            a[1] = max(a[0], progress.stat().st_mtime if progress.exists() else a[0])
    attempts["attempts"].append([time.time(), None])
    write_json(clock, attempts)
    run()
    attempts["attempts"][-1][1] = time.time()
    write_json(clock, attempts)
    return round(sum(end - start for start, end in attempts["attempts"]), 1)
