"""The benchmark scripts (run them as `python benchmarks/NAME.py --help`) and, in
`benchmarks.common`, what they share.

Every script at this level takes `--quick` (a smoke run of a few minutes at most on 2
cores) and `--json OUT` (the summary, with a markdown table beside it as OUT.md), and
writes only where it is told. A script never imports another script: what two of them
need lives in `benchmarks.common`.
"""
