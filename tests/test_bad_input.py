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


# ----------------------------------------------------------------------------- classes
# Each class of bad input, a table of YAML snippets: `validate` and `search` both
# refuse it with one line naming the key, exit 2, and write nothing. `search` gets a good
# --data so that only the snippet can be at fault (the data class names none).

TUNED = "params: {learning_rate: {loguniform: [1.0e-4, 1.0e-2]}}\n"

# A number a training knob cannot take, wherever the space names it: sizes must be positive
# integers (a zero reached `tokens_per_trial / tpi` before), rates in their ranges.
KNOB_RANGES = {
    "fixed size zero": ("fixed: {block_size: 0}\nbudget: {tokens_per_trial: 1M}\n",
                        "fixed.block_size: 0 is not allowed ('block_size' must be a positive"),
    "fixed batch negative": ("fixed: {batch_size: -4}\n", "fixed.batch_size"),
    "fixed accumulation zero": ("fixed: {gradient_accumulation_steps: 0}\n"
                                "budget: {tokens_per_trial: 1M}\n",
                                "fixed.gradient_accumulation_steps"),
    "fixed n_head zero": ("fixed: {n_head: 0}\n", "fixed.n_head"),
    "fixed n_embd zero": ("fixed: {n_embd: 0}\n", "fixed.n_embd"),
    "fixed n_layer zero": ("fixed: {n_layer: 0}\n", "fixed.n_layer"),
    "fixed max_iters zero": ("fixed: {max_iters: 0}\n", "fixed.max_iters"),
    "fixed eval_iters zero": ("fixed: {eval_iters: 0}\n", "fixed.eval_iters"),
    "fixed eval_interval zero": ("fixed: {eval_interval: 0}\n", "fixed.eval_interval"),
    "fixed warmup negative": ("fixed: {warmup_iters: -1}\n", "fixed.warmup_iters"),
    "fixed size absurd": ("fixed: {batch_size: 100000000000000000000}\n", "fixed.batch_size"),
    "fixed dropout one": ("fixed: {dropout: 1.0}\n", "'dropout' must be in [0, 1)"),
    "fixed lr zero": ("params: {dropout: {uniform: [0.0, 0.2]}}\nfixed: {learning_rate: 0}\n",
                      "fixed.learning_rate"),
    "fixed lr nan beside tuned": ("fixed: {learning_rate: .nan}\n", "fixed.learning_rate"),
    "fixed beta2 one": ("fixed: {beta2: 1.0}\n", "fixed.beta2"),
    "fixed grad_clip inf": ("fixed: {grad_clip: .inf}\n", "fixed.grad_clip"),
    "plain value in params": ("params: {batch_size: 0, dropout: {uniform: [0.0, 0.2]}}\n",
                              "params.batch_size"),
    "choice with zero": ("params: {batch_size: {choice: [0, 8]}}\n"
                         "budget: {tokens_per_trial: 1M}\n", "params.batch_size: 0"),
    "choice of heads with zero": ("params: {n_head: {choice: [0, 4]}}\n", "params.n_head: 0"),
    "int range from zero": ("params: {n_layer: {int: [0, 4]}}\n", "params.n_layer: 0"),
    "int range far too long": ("params: {batch_size: {int: [1, 100000000000]}}\n",
                               "params.batch_size: the range holds more than"),
    "uniform bound infinite": ("params: {dropout: {uniform: [0.0, .inf]}}\n",
                               "params.dropout: uniform bound must be a finite number"),
    "group value zero": ("params: {model: {choice: [{n_layer: 2}, {block_size: 0}]}}\n"
                         "budget: {tokens_per_trial: 1M}\n", "params.model.block_size: 0"),
    "prior nan": ("params: {learning_rate: {loguniform: [1.0e-4, 1.0e-2], prior: .nan}}\n",
                  "params.learning_rate: prior must be a finite number"),
    "prior of a bad choice": ("params: {dropout: {choice: [0.1, 0.2], prior: 1.5}}\n",
                              "params.dropout: prior: 1.5 is not allowed"),
    "set to zero": ("", "fixed.block_size"),  # --set block_size=0, below
}

# Any other number of the space: finite, whole where a count is meant, in its range.
SECTION_NUMBERS = {
    "tokens_per_trial infinite": ("budget: {tokens_per_trial: .inf}\n",
                                  "budget.tokens_per_trial must be a finite number of tokens"),
    "tokens_per_eval nan": ("budget: {tokens_per_eval: .nan}\n", "budget.tokens_per_eval"),
    "time budget a word": ("budget: {time_budget_s: soon}\n", "budget.time_budget_s"),
    "time budget nan": ("budget: {time_budget_s: .nan}\n", "budget.time_budget_s"),
    "num_samples true": ("budget: {num_samples: true}\n", "budget.num_samples"),
    "concurrency true": ("budget: {max_concurrent_trials: true}\n",
                         "budget.max_concurrent_trials"),
    "total_flops infinite": ("budget: {total_flops: .inf}\n", "budget.total_flops"),
    "reduction_factor a word": ("scheduler: {reduction_factor: x}\n",
                                "scheduler.reduction_factor"),
    "reduction_factor nan": ("scheduler: {reduction_factor: .nan}\n",
                             "scheduler.reduction_factor"),
    "grace_period nan": ("scheduler: {grace_period: .nan}\n", "scheduler.grace_period"),
    "max_t infinite": ("scheduler: {max_t: .inf}\n", "scheduler.max_t"),
    "brackets true": ("scheduler: {brackets: true}\n", "scheduler.brackets"),
    "cpu nan": ("resources: {cpu: .nan}\n", "resources.cpu"),
    "gpu infinite": ("resources: {gpu: .inf}\n", "resources.gpu"),
    "sampler seed a word": ("sampler: {type: tpe, seed: abc}\n", "sampler.seed"),
    "sampler seed negative": ("sampler: {type: random, seed: -5}\n", "sampler.seed"),
    "startup trials negative": ("sampler: {type: tpe, n_startup_trials: -1}\n",
                                "sampler.n_startup_trials"),
    "confirm seeds a word": ("confirm: {top_k: 1, seeds: two}\n", "confirm.seeds"),
    "rescue half": ("memory: {limit: 8G, rescue: 1.5}\n", "memory.rescue"),
}

# A budget that cannot hold one iteration (or an ASHA rung under one evaluation): the
# message gives the smallest meaningful value. 12 x 64 x 1 = 768 tokens by default.
BUDGET_FITS = {
    "tokens_per_trial under one iteration": (
        "budget: {tokens_per_trial: 10}\n",
        "budget.tokens_per_trial (10) is less than one iteration of the space's largest config "
        "(768 tokens"),
    "tokens_per_trial under the largest config's iteration": (
        "params: {batch_size: {choice: [8, 64]}}\nfixed: {block_size: 32}\n"
        "budget: {tokens_per_trial: 1000}\n", "the smallest meaningful value is 2,048"),
    "a group's largest iteration": (
        "params: {shape: {choice: [{batch_size: 4, block_size: 256}, "
        "{batch_size: 64, block_size: 16}]}}\nbudget: {tokens_per_trial: 1000}\n",
        "the smallest meaningful value is 1,024"),
    "tokens_per_eval under one iteration": (
        "budget: {tokens_per_trial: 1M, tokens_per_eval: 100}\n",
        "budget.tokens_per_eval (100) is less than one iteration"),
    "grace under one evaluation (tokens)": (
        "budget: {tokens_per_trial: 1M, tokens_per_eval: 100k}\n"
        "scheduler: {type: asha, time_attr: tokens, grace_period: 10k}\n",
        "scheduler.grace_period (10,000 tokens) is less than one evaluation"),
    "grace under one evaluation (iter)": (
        "fixed: {eval_interval: 50}\nscheduler: {type: asha, time_attr: iter, grace_period: 5}\n",
        "the smallest meaningful value is 50 iterations"),
}

# The sampler's own options go to the Optuna sampler: one it does not have is refused
# before the search writes anything (it once failed after the search had started).
SAMPLER_OPTIONS = {
    "misspelt option": ("sampler: {type: tpe, seed: 0, n_startup: 3}\n",
                        "sampler.n_startup is not an option of Optuna's TPESampler (did you "
                        "mean 'n_startup_trials'?)"),
    "option of another sampler": ("sampler: {type: random, n_startup_trials: 5}\n",
                                  "sampler.n_startup_trials is not an option of Optuna's "
                                  "RandomSampler"),
    "option out of Optuna's range": ("sampler: {type: nsga2, population_size: 1}\n",
                                     "sampler: `population_size` must be greater than or "
                                     "equal to 2"),
    "a function's place": ("sampler: {type: tpe, gamma: 3}\n",
                           "sampler.gamma takes a Python object (Callable[[int], int] | None), "
                           "which a YAML space cannot give"),
    "a word for a bool": ("sampler: {type: tpe, multivariate: 'yes'}\n",
                          "sampler.multivariate must be bool, got 'yes'"),
    "a bool for a number": ("sampler: {type: nsga2, crossover_prob: true}\n",
                            "sampler.crossover_prob must be float, got True"),
    "a word for a number": ("sampler: {type: tpe, n_ei_candidates: many}\n",
                            "sampler.n_ei_candidates must be int, got 'many'"),
    "grid option": ("params: {n_layer: {choice: [1, 2]}}\nsampler: {type: grid, "
                    "n_startup_trials: 2}\n", "not an option of Optuna's GridSampler"),
}



def test_the_samplers_validate_trusts_with_n_startup_trials_have_it() -> None:
    # validate skips importing Optuna for the common `n_startup_trials` alone
    import inspect

    import optuna

    from tune_gpt.space.sampler_options import STARTUP_SAMPLERS
    from tune_gpt.space.schema import SAMPLERS

    for kind in SAMPLERS:
        cls = getattr(optuna.samplers, SAMPLERS[kind])
        has = "n_startup_trials" in inspect.signature(cls).parameters
        assert has == (kind in STARTUP_SAMPLERS), kind


DATA = {  # what `search` refuses of the space's data, `validate` refuses too
    "data file missing": (lambda t: str(t / "missing.txt"), "missing.txt: text file not found"),
    "data not UTF-8": (lambda t: _write(t / "bin.txt", b"\xff\xfe\x00abc" * 50),
                       "not UTF-8 text"),
    "data empty": (lambda t: _write(t / "empty.txt", b""), "empty"),
    "data folder without train.bin": (lambda t: _dir(t / "nodata"),
                                      "not a nanoGPT data folder (no train.bin)"),
    "data folder without val.bin": (lambda t: _only_train(t / "half"), "(no val.bin)"),
    "data shorter than block_size": (lambda t: _write(t / "tiny.txt", b"to be or not " * 20),
                                     "'block_size' (64) must be shorter"),
}


def _only_train(path: Path) -> str:
    path.mkdir()
    (path / "train.bin").write_bytes(b"\x01\x00" * 100)
    return str(path)


def _refused(argv: list[str], needle: str, work: Path, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert list(work.iterdir()) == [], "nothing may be written"
    return lines[0]


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _class_space(tmp: Path, snippet: str) -> str:
    return _space(tmp, snippet if snippet.startswith("params:") or "\nparams:" in snippet
                  else TUNED + snippet)


@pytest.mark.parametrize("table", ["knob", "section", "budget", "sampler"])
def test_every_class_of_bad_number_is_refused_by_validate_and_search(
        table: str, tmp_path: Path, work: Path, shakespeare_path: Path, capsys) -> None:
    cases = {"knob": KNOB_RANGES, "section": SECTION_NUMBERS, "budget": BUDGET_FITS,
             "sampler": SAMPLER_OPTIONS}[table]
    for case, (snippet, needle) in cases.items():
        sets = ["--set", "block_size=0"] if case == "set to zero" else []
        path = _class_space(tmp_path, snippet)
        _refused(["validate", path, *sets], needle, work, capsys)
        _refused(["search", path, "--data", str(shakespeare_path), *sets], needle, work,
                 capsys)


@pytest.mark.parametrize("case", list(DATA))
def test_validate_checks_the_data_as_search_does(case: str, tmp_path: Path, work: Path,
                                                 capsys) -> None:
    make, needle = DATA[case]
    # block_size fixed: search checks the blocks a space names (the default, it leaves to
    # the trials)
    data = make(tmp_path)
    path = _space(tmp_path, f"data: {data}\n" + TUNED + "fixed: {block_size: 64}\n")
    assert f"{path}: data: " in _refused(["validate", path], needle, work, capsys)
    _refused(["search", path], needle, work, capsys)
    # and given as --data, the way search takes it, to a space whose own data is fine
    good = _space(tmp_path, "data: shakespeare_char\n" + TUNED + "fixed: {block_size: 64}\n")
    _refused(["validate", good, "--data", data], needle, work, capsys)


def test_validate_peeks_at_data_without_preparing_it(tmp_path: Path, work: Path,
                                                     shakespeare_path: Path, capsys) -> None:
    """A good text file passes validate with nothing tokenised; a large file is judged by its
    first MiB (a bad byte after it is found by search, which reads it all)."""
    import tune_gpt.data.text as text

    big = tmp_path / "big.txt"
    big.write_bytes(shakespeare_path.read_bytes() + b"\xff")
    before = set(Path(os.environ["TUNE_GPT_CACHE_DIR"]).rglob("*"))
    for data in (shakespeare_path, big):
        path = _space(tmp_path, f"data: {data}\n" + TUNED)
        assert main(["validate", path]) == 0, capsys.readouterr().err
        assert ": ok" in capsys.readouterr().out
    assert set(Path(os.environ["TUNE_GPT_CACHE_DIR"]).rglob("*")) == before
    assert big.stat().st_size > text.PEEK_BYTES
    # a multi-byte character cut by the prefix's end is not an error
    cut = tmp_path / "cut.txt"
    cut.write_bytes(b"a" * (text.PEEK_BYTES - 1) + "é".encode() * 10)
    assert text.peek_text(cut) is None


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
yaml_values = st.recursive(yaml_scalars, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
    max_leaves=12)
keys = st.sampled_from(["params", "fixed", "sampler", "scheduler", "budget", "resources",
                        "profiles", "name", "data", "metric", "mode", "batch_size", "zzz"])
inner = st.sampled_from(["batch_size", "learning_rate", "n_embd", "n_head", "dropout", "choice",
                         "uniform", "loguniform", "int", "step", "type", "num_samples",
                         "grace_period", "cpu", "model", "block_size", "tokens_per_trial",
                         "tokens_per_eval", "reduction_factor", "seed", "prior", "time_attr"])
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


def test_resuming_a_run_that_left_nothing_says_so_before_fetching_data(
        tmp_path: Path, work: Path, monkeypatch, capsys) -> None:
    """`train --resume` in a folder with no last.pt names that file, not a download of the
    default data set it never needed (no internet here: that download fails)."""
    monkeypatch.setenv("TUNE_GPT_CACHE_DIR", str(tmp_path / "empty-cache"))
    line = _refused(["train", "--resume", f"--out_dir={work / 'out'}"], "last.pt", work,
                    capsys)
    assert "checkpoint not found" in line and "download" not in line
