"""What the best trials write: a short text sample from the best trial and the runner-up,
taken from their checkpoints when the search finishes, just before those are removed.

Users judge a character-level model by what it writes, and a loss figure alone does not
tell a beginner whether 1.7 is gibberish or Shakespeare-like. Both samples continue the same
prompt with the same seed, on the CPU, so two trials (or two searches) compare like for
like. They go to results/samples.json, which is logged to MLflow with the other results
(`tune-gpt report` reads it from either, as plain JSON):

    {"prompt": "\\n", "max_new_tokens": 300, "seed": 1337, "temperature": 0.8, "top_k": 200,
     "device": "cpu", "metric": "val_loss",
     "samples": [{"rank": 1, "trial_id": "7e1447ec", "value": 1.688, "iter": 2605,
                  "text": "ROMEO:\\n...", "error": ""}, ...],
     "error": ""}

Sampling is cheap (two small models, 300 tokens each, a second or two) and never sinks the
search: whatever goes wrong is recorded as the sample's (or the file's) "error".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SAMPLES_FILE = "samples.json"
PROMPT = "\n"          # nanoGPT's sample.py starts from a newline too
MAX_NEW_TOKENS = 300   # ~300 characters at the character level: a few lines of a play
SEED = 1337            # nanoGPT's seed: the same draw for every trial and every search
TEMPERATURE = 0.8      # tune_gpt.sample's defaults (nanoGPT's sample.py)
TOP_K = 200
TOP = 2                # the best trial and the runner-up


def pick(trials: Any, metric: str, k: int = TOP) -> list[tuple[str, float]]:
    """The k best trials that trained (completed or stopped early) by the search's metric,
    best first, as (trial_id, value)."""
    from tune_gpt import trial as contract

    col = contract.score_column(metric)
    rows = trials.to_dict("records") if hasattr(trials, "to_dict") else list(trials)
    usable = [(str(r["trial_id"]), float(r[col])) for r in rows
              if r.get("outcome") in contract.USABLE and _finite(r.get(col))]
    return sorted(usable, key=lambda x: x[1])[:k]


def sample_trials(checkpoints: Path, picked: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """One sample per picked trial from checkpoints/<trial_id>.pt; a trial whose checkpoint is
    missing (a trial on another node keeps it there) or unreadable gets an error instead."""
    out = []
    for rank, (tid, value) in enumerate(picked, 1):
        item: dict[str, Any] = {"rank": rank, "trial_id": tid, "value": value, "iter": None,
                                "text": None, "error": ""}
        path = checkpoints / f"{tid}.pt"
        try:
            if not path.is_file():
                raise FileNotFoundError(f"no checkpoint at {path} (a trial on another node "
                                        f"keeps its checkpoint there)")
            item["iter"], item["text"] = _generate(path)
        except Exception as e:  # noqa: BLE001 — a sample is a nicety: record why, go on
            item["error"] = _why(e)
        out.append(item)
    return out


def _generate(path: Path) -> tuple[int | None, str]:
    """(the checkpoint's iteration, the continuation of PROMPT). One CPU thread: a tiny model
    generating token by token is latency-bound, and on a busy machine more threads only
    wait for each other (2 threads were 6x slower than 1 beside a running benchmark)."""
    import torch

    from tune_gpt.checkpoint import read_checkpoint
    from tune_gpt.sample import generate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = generate(path, start=PROMPT, num_samples=1, max_new_tokens=MAX_NEW_TOKENS,
                        temperature=TEMPERATURE, top_k=TOP_K, seed=SEED, device="cpu")[0]
        it = read_checkpoint(path).get("iter")
    finally:
        torch.set_num_threads(threads)
    return (int(it) if it is not None else None), text.removeprefix(PROMPT)


def write_samples(folder: Path, trials: Any, metric: str) -> dict[str, Any]:
    """Sample the best trial and the runner-up of the search in `folder` from its
    checkpoints/ and write results/samples.json; returns what was written. Never raises."""
    summary: dict[str, Any] = {"prompt": PROMPT, "max_new_tokens": MAX_NEW_TOKENS, "seed": SEED,
                               "temperature": TEMPERATURE, "top_k": TOP_K, "device": "cpu",
                               "metric": metric, "samples": [], "error": ""}
    try:
        picked = pick(trials, metric)
        if not picked:
            summary["error"] = "no trial trained far enough to have a checkpoint worth sampling"
        else:
            summary["samples"] = sample_trials(folder / "checkpoints", picked)
    except Exception as e:  # noqa: BLE001 — never sink a finished search over its samples
        summary["error"] = _why(e)
    try:
        (folder / "results").mkdir(parents=True, exist_ok=True)
        (folder / "results" / SAMPLES_FILE).write_text(
            json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    except OSError as e:
        summary["error"] = _why(e)
    return summary


def _why(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"[:300]


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
