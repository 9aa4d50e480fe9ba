"""What a recorded table is: its plan (the grid and the fidelity), and the data it was recorded on.

`record_curves.py` writes both into the table's folder (`table.json`, beside `curves.jsonl`)
before it trains anything, and refuses to continue a folder recorded with another plan or on
other data; the replay reads them back, and refuses a table recorded on data other than its
`--data` (both in one line).

- **Plans.** `full` is the table the replay was built on: 90 configs, every run as long as
  a search trial (2M tokens), ~2.4 h on 2 cores. `quick` is a table for any corpus in
  under 30 minutes on 2 cores: 40 configs (both batch sizes, all five learning rates, which
  separate good configs from bad most; 2 and 4 layers, widths 64 and 192: the deepest and
  the middle width were the dearest and the least telling) with every run, the manual
  sweeps' included, shortened to FACTOR = 0.2 of its length (iterations, lr decay, warmup
  and evaluation interval alike), evaluated 8 times a run (the real benchmark's interval)
  with the same 20 batches. Its manual best is the manual sweeps' best at that length: the
  target of that table.
- **Fidelity.** The replay reads a table recorded at factor f in full-length units: every
  token count divided by f. A shortened run then reports at the same fractions of the
  2M-token trial as a full one, so ASHA's rungs (250k, 750k), the budget (the manual sweeps'
  tokens) and every compute ratio keep their meaning; the summary says the factor.
- **Identity.** The data is known by its path (as given) and sha256: of the file for a
  text, of `train.bin`, `val.bin` and `meta.pkl` (name and bytes) for a nanoGPT folder.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.common.output import write_json

META = "table.json"
CURVES = "curves.jsonl"
LR_GRID = [1.0e-4, 3.16e-4, 1.0e-3, 3.16e-3, 1.0e-2]   # half-decade steps over the search's range


@dataclass(frozen=True)
class Plan:
    """What record_curves.py trains: a grid, every run shortened by `factor`."""
    name: str
    grid: dict[str, list[Any]] = field(hash=False)
    factor: float = 1.0          # every run's length, as a share of the full-length run
    evals_per_run: int = 16      # evaluations of a grid run (the manual runs keep their own)
    eval_iters: int = 20         # batches per split an evaluation averages

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.grid.values())

    def smoke(self) -> Plan:
        """--quick: 4 tiny grid configs (2 x 64) and the manual runs, 100 times shorter."""
        return replace(self, name=f"{self.name}-smoke", factor=self.factor / 100,
                       eval_iters=2, grid={"batch_size": [12, 32],
                                           "learning_rate": [1.0e-3, 1.0e-2],
                                           "n_layer": [2], "n_embd": [64]})


PLANS = {
    "full": Plan("full", {"batch_size": [12, 32], "learning_rate": LR_GRID,
                          "n_layer": [2, 4, 6], "n_embd": [64, 128, 192]}),
    "quick": Plan("quick", {"batch_size": [12, 32], "learning_rate": LR_GRID,
                            "n_layer": [2, 4], "n_embd": [64, 192]},
                  factor=0.2, evals_per_run=8),
}


def data_identity(path: str | Path) -> dict[str, Any]:
    """{path, kind, sha256, bytes} of a text file or a nanoGPT data folder."""
    p = Path(path).expanduser()
    h = hashlib.sha256()
    if p.is_dir():
        files = [p / n for n in ("train.bin", "val.bin", "meta.pkl") if (p / n).is_file()]
        for f in files:
            h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
            _update(h, f)
        kind, size = "folder", sum(f.stat().st_size for f in files)
    else:
        _update(h, p)
        kind, size = "text", p.stat().st_size
    return {"path": str(path), "kind": kind, "sha256": h.hexdigest(), "bytes": size}


def _update(h: Any, f: Path) -> None:
    with f.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)


def meta_for(plan: Plan, identity: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """The table's table.json: its plan, its data, the data's vocabulary."""
    return {"plan": plan.name, "factor": plan.factor, "grid": plan.grid,
            "grid_size": plan.size, "evals_per_run": plan.evals_per_run,
            "eval_iters": plan.eval_iters, "data": identity, "vocab_size": vocab_size}


def write_meta(folder: str | Path, meta: dict[str, Any]) -> Path:
    path = Path(folder) / META
    write_json(path, meta, indent=1)
    return path


def read_meta(folder: str | Path) -> dict[str, Any] | None:
    """The table.json in `folder`, or None when there is none (a table from before tables
    said their plan and data: the full plan on tinyshakespeare)."""
    path = Path(folder) / META
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def plan_mismatch(meta: dict[str, Any], plan: Plan) -> str | None:
    """What differs between a folder's recorded plan and the one asked for (None: same)."""
    asked = asdict(plan)
    for k in ("name", "factor", "grid", "evals_per_run", "eval_iters"):
        had = meta.get("plan" if k == "name" else k)
        if had != asked[k]:
            return f"{'plan' if k == 'name' else k} {had!r}, not {asked[k]!r}"
    return None


def data_mismatch(meta: dict[str, Any], identity: dict[str, Any]) -> str | None:
    """None if the table was recorded on the data `identity` names, else what to say."""
    had = meta.get("data") or {}
    if had.get("sha256") == identity["sha256"]:
        return None
    return (f"recorded on {had.get('path')} (sha256 {str(had.get('sha256'))[:12]}…), not on "
            f"{identity['path']} (sha256 {identity['sha256'][:12]}…)")
