"""Replay: judge search strategies over many seeds on recorded learning curves.

    python benchmarks/replay.py --seeds 30 --json OUT.json
    python benchmarks/search_efficiency.py --replay --seeds 30 --json OUT.json   # the same

The real search-efficiency benchmark trains every trial (~15 min per seed). The replay
trains nothing: `record_curves.py` recorded once, in `results/replay/curves.jsonl`, the full
learning curves of a fixed grid of configs over the space that benchmark searches, and the
nine runs of the guide's manual sweeps (on tinyshakespeare; `--grid quick --data PATH`
records a smaller, shortened table for any corpus). A search is replayed on that table. One
module per part:

- `recording`: what a table is: its plan (grid, fidelity factor) and the data it was
  recorded on (table.json), which the replay checks against its --data.
- `table`: the recorded curves, the reports a real trial would make of them, and the world
  a proposal lives in (it snaps to the nearest recorded config).
- `methods`: the search strategies compared, as Ray searchers and schedulers; a new one is
  one `register_method` call.
- `simulator`: Ray Tune's own scheduler and searcher driven from a simulated clock, the
  way Ray's controller drives them.
- `report`: every (method, seed) replayed, scored against the manual sweeps, and the
  markdown table.
- `cli`: the command both scripts above run.
"""
