"""The shape of the package: no import cycles, small modules, and the light
commands stay light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tune_gpt", "trainables", "benchmarks")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Project modules that `name` imports anywhere: at module level or inside a function
    (a lazy import is still a dependency; a cycle through one is still a tangle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert not node.level, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    deps = set()
    for imp in found:
        # importing a.b.c imports a and a.b (their __init__) too
        parts = imp.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in modules and mod != name:
                deps.add(mod)
    return deps


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: _imports(p, m, modules) for m, p in modules.items()}
    # a package's __init__ importing its own submodules is not a cycle of concepts
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_tune_gpt_imports_nothing_from_trainables() -> None:
    """trainables/ is a package beside tune_gpt/ (the layout's): a space names its trainable
    (`trainable: module:function`) and the search imports it by that name."""
    modules = _modules()
    leaning = {m: sorted(d for d in _imports(p, m, modules) if d.split(".")[0] == "trainables")
               for m, p in modules.items() if m.split(".")[0] == "tune_gpt"}
    assert not {m: d for m, d in leaning.items() if d}


def test_no_module_is_a_monolith() -> None:
    long = {m: n for m, p in _modules().items()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("argv", [
    ["--help"], ["search", "--help"], ["train", "--help"],
    ["validate", str(ROOT / "search_spaces" / "beginner.yaml")],
])
def test_light_commands_import_neither_ray_nor_torch(argv: list[str]) -> None:
    code = ("import sys, json\nfrom tune_gpt.cli import main\ntry:\n    rc = main(%r)\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "print(json.dumps([rc, sorted(m for m in ('ray', 'torch', 'mlflow', 'optuna') "
            "if m in sys.modules)]))") % (argv,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    rc, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert rc == 0 and heavy == [], (rc, heavy, out.stderr[-500:])


def test_train_help_lists_every_knob_from_a_library_call(capsys) -> None:
    """main(['train', '--help']) from a test lists the knobs (help built from field
    metadata, not from sys.argv)."""
    from tune_gpt.cli import main
    from tune_gpt.config import KNOBS, field_doc

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for k in KNOBS:
        assert f"--{k}=" in out and field_doc(k) and field_doc(k)[:30] in out.replace("\n", " ")
