"""The README's "How the code is laid out" matches the tree: every path it lists exists, and
every module of tune_gpt/, trainables/ and benchmarks/ (scripts and their subpackage) is
listed, so the map a newcomer reads cannot go stale again."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tune_gpt", "trainables", "benchmarks")


def listed_paths() -> list[str]:
    """The paths at the start of the layout block's lines (continuation lines start with
    blanks); `a/{b,c}.py` lists a/b.py and a/c.py."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    out = []
    for line in block.splitlines()[1:]:
        if not line or line[0].isspace():
            continue
        path = line.split()[0]
        m = re.fullmatch(r"(.*)\{(.+)\}(.*)", path)
        out += [m[1] + part + m[3] for part in m[2].split(",")] if m else [path]
    return out


def test_every_listed_path_exists():
    paths = listed_paths()
    assert len(paths) > 40
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README lists paths that do not exist: {missing}"


def test_every_module_is_listed():
    listed = set(listed_paths())
    folders = {p for p in listed if p.endswith("/")}
    # (benchmarks/results/ holds what the scripts wrote, runs and reports included: no code)
    modules = [str(f.relative_to(ROOT)) for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))
               if f.name != "__init__.py"
               and not str(f.relative_to(ROOT)).startswith("benchmarks/results/")]
    unlisted = [m for m in modules if m not in listed and
                not any(m.startswith(d) and d.count("/") == m.count("/") for d in folders)]
    assert not unlisted, f"modules the README's layout leaves out: {unlisted}"
