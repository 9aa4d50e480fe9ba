"""Replay benchmark: judge search strategies over many seeds on recorded learning curves.

    python benchmarks/replay.py --seeds 30 --json OUT.json    # every method, 30 seeds (~10 s)
    python benchmarks/replay.py --methods asha_tpe random --seeds 0 1 2
    python benchmarks/replay.py --quick                       # 2 seeds, a few seconds
    python benchmarks/replay.py --table DIR --data PATH --json OUT.json
                                  # a table record_curves.py recorded on other data

The same command as `python benchmarks/search_efficiency.py --replay ...`. Nothing is
trained: Ray Tune's real ASHA scheduler and searchers are driven on a simulated clock over
the learning curves `record_curves.py` recorded (results/replay/, or --table DIR recorded on
--data, which the table's table.json must name), and every
method is scored against the guide's manual sweeps at equal compute. How the world, the
simulator, the methods and the figures work: `benchmarks/common/replay/`. A new method is
one `register_method` call in a module passed with `--methods-from`.

Not a test: it prints figures. Writes nothing unless --json is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.replay import cli as replay_cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick=f"{replay_cli.QUICK_SEEDS} seeds (unless --seeds "
                                            f"says), a few seconds")
    p.add_argument("--methods", nargs="+", default=None,
                   help="the registered methods to replay (default all)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help=f"one number N means seeds 0..N-1 (default {replay_cli.SEEDS}), "
                        f"several are the seeds themselves")
    p.add_argument("--budget-fraction", type=float, default=1.0,
                   help="each search's compute, as a fraction of the manual sweeps' (default 1)")
    cli.add_data(p, "the data the table was recorded on")
    replay_cli.add_replay_args(p)
    return replay_cli.run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
