"""What the benchmark scripts share, one concept per module:

- `cli`: the command-line shape every script has (--quick, --json, --data, --out).
- `output`: how results reach the disk (atomic writes) and how a resume reads them back
  (a cell that does not parse is redone, never trusted).
- `efficiency`: the search-efficiency experiment (the guide's manual sweeps, the searches'
  space and budget), which `search_efficiency.py`, `record_curves.py` and the replay share.
- `curves`: best val_loss so far against compute, and the figures read off it.
- `arms`: one arm of a comparison run as a `tune-gpt` subprocess (logged, scored by
  `tune-gpt eval`, its wall time summed over resumed attempts).
- `replay`: the replay of searches on recorded learning curves (recording, table, methods,
  simulator, report, command).
"""
