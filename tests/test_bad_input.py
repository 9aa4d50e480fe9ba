"""Every mistake a user can make with `tune-gpt search`: one clear line on stderr, exit
status 2, and nothing started or written (no storage folder, no Ray, no MLflow store)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tune_gpt.cli import main
from tune_gpt.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def _space(tmp: Path, text: str) -> str:
    p = tmp / "space.yaml"
    p.write_text(text, encoding="utf-8")
    return str(p)


# case -> (argument builder taking (tmp_path, data_file), expected part of the error line)
CASES = {
    "malformed yaml": (lambda t, d: [_space(t, "params: {a: [1, 2"), "--data", d],
                       "malformed YAML"),
    "not a mapping": (lambda t, d: [_space(t, "- 1\n- 2\n"), "--data", d],
                      "must be a mapping"),
    "unknown key": (lambda t, d: [_space(t, "paramz: {}\n"), "--data", d],
                    "did you mean 'params'"),
    "wrong type": (lambda t, d: [_space(t, "params: {batch_size: {choice: [8, x]}}\n"),
                                 "--data", d], "'batch_size' must be an integer"),
    "inverted range": (lambda t, d: [_space(t, "params: {dropout: {uniform: [0.2, 0.1]}}\n"),
                                     "--data", d], "empty or inverted"),
    "log range with 0": (lambda t, d: [_space(t, "params: {learning_rate: "
                                                 "{loguniform: [0, 0.1]}}\n"), "--data", d],
                         "loguniform range must be > 0"),
    "heads never divide": (lambda t, d: [_space(t, "params: {n_head: {choice: [3, 5]}}\n"
                                                   "fixed: {n_embd: 64}\n"), "--data", d],
                           "divisible by n_head=3"),
    "missing space": (lambda t, d: [str(t / "nope.yaml"), "--data", d], "not found"),
    "missing data": (lambda t, d: [str(SMOKE), "--data", str(t / "missing.txt")], "missing.txt"),
    "empty data": (lambda t, d: [str(SMOKE), "--data", _write(t / "empty.txt", b"")], "empty"),
    "non-utf8 data": (lambda t, d: [str(SMOKE), "--data", _write(t / "bin.txt", b"\xff\xfe\x00abc" * 50)],
                      "UTF-8"),
    "block_size longer than corpus": (lambda t, d: [str(SMOKE), "--data",
                                                    _write(t / "tiny.txt", b"to be or not " * 20)],
                                      "block_size"),
    "unwritable storage": (lambda t, d: [str(SMOKE), "--data", d, "--storage-path",
                                         str(_readonly(t) / "runs")], "not writable"),
    "unreachable tracking server": (lambda t, d: [str(SMOKE), "--data", d, "--tracking-uri",
                                                  "http://127.0.0.1:9"], "unreachable"),
    "tracking uri not a uri": (lambda t, d: [str(SMOKE), "--data", d, "--tracking-uri",
                                             "mlflow.db"], "not a URI"),
    "unreachable ray address": (lambda t, d: [str(SMOKE), "--data", d, "--address",
                                              "127.0.0.1:9"], "no Ray cluster answers"),
    "resume of nothing": (lambda t, d: [str(SMOKE), "--data", d, "--resume", "--name", "ghost"],
                          "cannot resume 'ghost'"),
    "resume without any search": (lambda t, d: [str(SMOKE), "--data", d, "--resume"],
                                  "nothing to resume"),
    "bad --set value": (lambda t, d: [str(SMOKE), "--data", d, "--set", "batch_size=big"],
                        "'batch_size' must be an integer"),
    "bad --set form": (lambda t, d: [str(SMOKE), "--data", d, "--set", "budget.num_samples"],
                       "KEY=VALUE"),
    "name escaping the storage": (lambda t, d: [str(SMOKE), "--data", d, "--name", "../../etc"],
                                  "--name"),
    "bad --num-samples": (lambda t, d: [str(SMOKE), "--data", d, "--num-samples", "0"],
                          "--num-samples"),
    "folder without train.bin": (lambda t, d: [str(SMOKE), "--data", _dir(t / "empty")],
                                 "not a nanoGPT data folder (no train.bin)"),
    "hostile meta.pkl": (lambda t, d: [str(SMOKE), "--data", _hostile(t)],
                         "meta.pkl: refused (it refers to posix.system)"),
    "nanoGPT name, no folder": (lambda t, d: [str(SMOKE), "--data", "openwebtext"],
                                "not a data set tune-gpt can fetch"),
    "GPU-only space on a CPU": (lambda t, d: [str(ROOT / "search_spaces" / "gpt2_small.yaml"),
                                              "--data", _bpe(t / "owt")],
                                "needs a GPU per trial (resources.gpu: 1) and this machine has "
                                "none; on its CPU one trial (200M tokens of a 124M-parameter"),
}


def _dir(path: Path) -> str:
    path.mkdir()
    return str(path)


def _bpe(path: Path) -> str:
    """A GPT-2 BPE folder in nanoGPT's format (no meta.pkl)."""
    import numpy as np

    path.mkdir()
    np.arange(20_000, dtype=np.uint16).tofile(path / "train.bin")
    np.arange(5_000, dtype=np.uint16).tofile(path / "val.bin")
    return str(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _hostile(t: Path) -> str:
    import pickle

    folder = Path(_bpe(t / "evil"))
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65, "x": _RunsCode()}))
    return str(folder)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _readonly(tmp: Path) -> Path:
    ro = tmp / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o500)
    return ro


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case: str, tmp_path: Path,
                                                      shakespeare_path: Path, monkeypatch,
                                                      capsys) -> None:
    if case == "unwritable storage" and os.geteuid() == 0:
        # root ignores permission bits; a path below a regular file is unwritable for anyone
        build = lambda t, d: [str(SMOKE), "--data", d, "--storage-path",  # noqa: E731
                              _write(t / "afile", b"x") + "/runs"]
        needle = "not writable"
    else:
        build, needle = CASES[case]
    if case == "GPU-only space on a CPU":
        from tune_gpt.space.load import detect_profile

        if detect_profile() == "gpu":
            pytest.skip("this machine has a GPU: the GPU-only space is allowed here")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = build(tmp_path, str(shakespeare_path))
    code = main(["search", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert list(work.iterdir()) == [], "nothing may be written"


def test_validate_reports_the_same_errors(tmp_path: Path, capsys) -> None:
    path = _space(tmp_path, "params: {learning_rat: {uniform: [0.1, 0.2]}}\n")
    assert main(["validate", path]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().err
    assert main(["validate", str(SMOKE)]) == 0
    assert "search 'smoke'" in capsys.readouterr().out


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
yaml_values = st.recursive(yaml_scalars, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
    max_leaves=12)
keys = st.sampled_from(["params", "fixed", "sampler", "scheduler", "budget", "resources",
                        "profiles", "name", "data", "metric", "mode", "batch_size", "zzz"])
inner = st.sampled_from(["batch_size", "learning_rate", "n_embd", "n_head", "dropout", "choice",
                         "uniform", "loguniform", "int", "step", "type", "num_samples",
                         "grace_period", "cpu", "model"])
documents = st.dictionaries(keys, st.one_of(yaml_values, st.dictionaries(inner, yaml_values,
                                                                          max_size=4)),
                            max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents)
def test_fuzzed_spaces_load_or_fail_with_a_user_error(doc: dict, tmp_path_factory) -> None:
    """Whatever the YAML holds, the loader either accepts it or raises UserError — never
    another exception (which would reach the user as a traceback)."""
    import yaml

    from tune_gpt.space import load_space

    path = tmp_path_factory.mktemp("fuzz") / "space.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        load_space(path, profile="cpu")
    except UserError as e:
        assert str(e) and "\n" not in str(e)
