"""One run of a config at a length, as the horizon benchmarks train it: how big a search and a
run are (Sizing: FULL, QUICK), a config's knobs for a run (for_training), and the run itself,
`tune-gpt train` then `tune-gpt eval` on the whole validation split, kept as a resumable cell
(train_cell). Shared by benchmarks/horizon_transfer.py and benchmarks/finished_slope.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common.arms import run_logged, score, timed, tune_gpt
from benchmarks.common.output import saved_cell, write_json, write_text

SEED = 0
RUN_KEYS = ("learning_rate", "val_loss", "config")


@dataclass(frozen=True)
class Sizing:  # `--set`s of beginner.yaml's CPU profile, default --factor, a run's evaluations
    sets: tuple[str, ...]
    factor: float
    evals: int
    eval_iters: int
    threads: int


FULL = Sizing(("final=null", "budget.num_samples=14", "budget.tokens_per_trial=1M",
               "budget.tokens_per_eval=125k", "budget.time_budget_s=780"), 8, 40, 20, 2)
# smoke.yaml's sizes (2 layers, 2 heads, n_embd 32-64, block 32), three trials of 24k tokens
QUICK = Sizing(("final=null", "params.n_layer=2", "params.n_head=2", "params.block_size=32",
                "params.n_embd={choice: [32, 64], prior: 32}", "budget.num_samples=3",
                "budget.tokens_per_trial=24k", "budget.tokens_per_eval=4k",
                "scheduler.grace_period=8k", "fixed.warmup_iters=5", "fixed.eval_iters=4",
                "budget.time_budget_s=120"), 2, 10, 4, 1)



def corpus_name(data: str) -> str:
    """The corpus a data path holds: a folder's name; a file's stem, or its folder's name when
    the file is input.txt (nanoGPT's and corpora.py's NAME/input.txt)."""
    p = Path(data).expanduser().resolve()
    name = p.name if p.is_dir() else p.parent.name if p.stem == "input" else p.stem
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or "data"


def tokens_per_iter(c: dict[str, Any]) -> int:
    return c["batch_size"] * c["block_size"] * c.get("gradient_accumulation_steps", 1)


def for_training(config: dict[str, Any], s: Sizing, **changes: Any) -> dict[str, Any]:
    """A config's knobs (its data set and folder left out), `changes` applied, on seed SEED,
    evaluated s.evals times."""
    from tune_gpt.config import KNOBS

    knobs = {k: v for k, v in config.items() if k in KNOBS and k not in ("dataset", "out_dir")
             } | changes
    every = max(1, int(knobs["max_iters"]) // s.evals)
    return knobs | {"seed": SEED, "eval_interval": every, "eval_iters": s.eval_iters,
                    "log_interval": every}


def train_cell(name: str, knobs: dict[str, Any], data: str, cells: Path, work: Path,
               threads: int) -> dict[str, Any]:
    """One `tune-gpt train` run (resumed from its last.pt if cut short), scored."""
    if (got := saved_cell(cells / f"{name}.json", RUN_KEYS)) is not None:
        print(f"  {name}: saved, skipped", flush=True)
        return got
    import yaml

    out_dir = work / name
    cfg_file, log = out_dir / "config.yaml", out_dir / "train.log"
    write_text(cfg_file, yaml.safe_dump({**knobs, "out_dir": str(out_dir)}, sort_keys=False))
    resume = (out_dir / "last.pt").is_file()
    cmd = [*tune_gpt(), "train", str(cfg_file), "--data", data, "--threads", str(threads)]
    print(f"  {name}: lr {knobs['learning_rate']:.3g}, {knobs['max_iters']:,} iterations"
          f"{' (resumed)' if resume else ''} ... (log: {log})", flush=True)
    wall = timed(out_dir / "clock.json", out_dir / "last.pt",
                 lambda: run_logged(cmd + (["--resume"] if resume else []), log, work))
    got = score(out_dir / "ckpt.pt", data, log, work)
    cell = {"name": name, "learning_rate": knobs["learning_rate"], "val_loss": got["val_loss"],
            "val_tokens": got["tokens"], "tokens": knobs["max_iters"] * tokens_per_iter(knobs),
            "wall_s": wall, "config": knobs, "checkpoint": str(out_dir / "ckpt.pt")}
    write_json(cells / f"{name}.json", json_safe(cell), indent=1)
    return cell


def json_safe(v: Any) -> Any:
    """`v` with every non-finite float as None (JSON has no NaN)."""
    return json.loads(json.dumps(v), parse_constant=lambda _: None)
