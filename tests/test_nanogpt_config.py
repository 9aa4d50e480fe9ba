"""nanoGPT config files (config/*.py) are read without being run: the real ones parse, code is
refused naming its line, tune-gpt's own export reads back, `base:` in a space and
`tune-gpt train CONFIG.py` work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_cli_train import TINY
from test_report_data import assemble, trial

from tune_gpt.cli import main
from tune_gpt.config import (KNOBS, TrainConfig, load_train_config, load_train_config_with_notes,
                             read_config_file)
from tune_gpt.errors import UserError
from tune_gpt.nanogpt_config import NANOGPT_KEYS, UNREAD, NanoConfig, read_nanogpt_config
from tune_gpt.report.export import nanogpt_config, nanogpt_dataset
from tune_gpt.report.results import prepare
from tune_gpt.space import load_space

# Four unchanged nanoGPT config files, kept beside the project (never copied into it), are
# found by conftest.py's nanogpt_config_file (missing: a failure in CI, a skip elsewhere).
Real = Callable[[str], Path]


def read(path: Path) -> NanoConfig:
    return read_nanogpt_config(path, TrainConfig().to_dict())


def write(folder: Path, text: str, name: str = "x.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- nanoGPT's own files

# file -> (knobs it must yield, nanoGPT keys read but not honoured -> value; None = code)
EXPECTED = {
    "train_shakespeare_char.py": (
        {"out_dir": "out-shakespeare-char", "dataset": "shakespeare_char", "batch_size": 64,
         "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2,
         "learning_rate": 1e-3, "max_iters": 5000, "min_lr": 1e-4, "beta2": 0.99},
        {"always_save_checkpoint": False, "wandb_log": False,
         "wandb_project": "shakespeare-char", "wandb_run_name": "mini-gpt"}),
    "train_gpt2.py": (
        {"gradient_accumulation_steps": 40, "batch_size": 12, "block_size": 1024,
         "max_iters": 600000, "weight_decay": 0.1},
        {"wandb_log": True, "wandb_project": "owt", "wandb_run_name": "gpt2-124M"}),
    "finetune_shakespeare.py": (
        {"dataset": "shakespeare", "gradient_accumulation_steps": 32, "learning_rate": 3e-5,
         "decay_lr": False, "min_lr": 3e-6},
        {"init_from": "gpt2-xl", "wandb_log": False, "wandb_project": "shakespeare",
         "wandb_run_name": None, "always_save_checkpoint": False}),
    "eval_gpt2.py": (
        {"batch_size": 8, "eval_iters": 500},
        {"eval_only": True, "wandb_log": False, "init_from": "gpt2"}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nanogpts_config_files_read_with_their_unhonoured_keys_listed(
        name: str, nanogpt_config_file: Real) -> None:
    real = nanogpt_config_file
    cfg = read(real(name))
    knobs, ignored = EXPECTED[name]
    assert {k: cfg.knobs[k] for k in knobs} == pytest.approx(knobs)
    assert cfg.ignored == ignored
    notes = "\n".join(cfg.notes)
    assert "wandb_log = " in notes and "does not log to Weights & Biases" in notes
    for key in ignored:
        assert key in notes, key
    # the result is a valid training config, each note one line
    config, lines = load_train_config_with_notes(real(name))
    assert isinstance(config, TrainConfig) and lines == cfg.notes
    assert all("\n" not in line for line in lines)


def test_what_is_not_honoured_says_what_happens_instead(nanogpt_config_file: Real) -> None:
    real = nanogpt_config_file
    notes = "\n".join(read(real("finetune_shakespeare.py")).notes)
    assert "init_from = 'gpt2-xl': ignored; tune-gpt trains from scratch" in notes
    assert "`import time`: not run; only wandb_run_name uses it" in notes
    assert "wandb_run_name = 'ft-' + str(time.time()) (code, not run)" in notes
    assert "min_lr = learning_rate / 10 = 3e-06" in notes  # tune-gpt's default is above 3e-5
    notes = "\n".join(read(real("eval_gpt2.py")).notes)
    assert "eval_only = True: ignored; `tune-gpt train` always trains" in notes
    notes = "\n".join(read(real("train_gpt2.py")).notes)
    # it sets no model size: nanoGPT's train.py defaults (GPT-2 124M) fill it, as in nanoGPT
    assert "so nanoGPT's train.py defaults apply, as they would in nanoGPT: dataset " \
           "'openwebtext', n_layer 12, n_head 12, n_embd 768" in notes
    assert "dtype 'float32' (tune-gpt's default; nanoGPT's 'bfloat16' assumes a GPU)" in notes
    cfg = read(real("train_gpt2.py"))
    assert cfg.knobs["batch_size"] == 12 and "n_layer" not in cfg.knobs  # what the file sets
    assert cfg.all_knobs()["n_layer"] == 12 and cfg.all_knobs()["learning_rate"] == 6e-4
    knobs, _ = read_config_file(real("train_gpt2.py"))
    gpt2 = TrainConfig(**knobs)
    assert (gpt2.n_layer, gpt2.n_head, gpt2.n_embd, gpt2.block_size) == (12, 12, 768, 1024)
    assert gpt2.gradient_accumulation_steps == 40 and gpt2.dtype == "float32"


def test_unread_keys_are_nanogpts_keys_without_a_knob() -> None:
    assert set(UNREAD) == set(NANOGPT_KEYS) - set(KNOBS)


# ----------------------------------------------------------------------------- values

def test_constant_arithmetic_is_computed_from_the_tree(tmp_path: Path) -> None:
    path = write(tmp_path, '"""a docstring"""\n'
                           "# a comment\n"
                           "gradient_accumulation_steps = 5 * 8\n"
                           "max_iters = 2 ** 10\n"
                           "block_size = (1024 + 1024) // 3 % 100\n"
                           "beta2 = 1 - 0.05\n"
                           "learning_rate = 6e-4\n"
                           "min_lr = -(-6e-5)\n"
                           "dropout = +0.0\n"
                           "out_dir = 'out-' + 'gpt2'\n"
                           "'a bare string is prose too'\n"
                           "bias = True\n")
    knobs = read(path).knobs
    assert knobs == {"gradient_accumulation_steps": 40, "max_iters": 1024, "block_size": 82,
                     "beta2": pytest.approx(0.95), "learning_rate": 6e-4, "min_lr": 6e-5,
                     "dropout": 0.0, "out_dir": "out-gpt2", "bias": True}


REFUSED = [
    ("batch_size = 8\nx = open('f')\n", 2, "found a call to open()"),
    ("import os\nbatch_size = 8\n", 1, "found an import"),
    ("from os import *\nwandb_run_name = path\n", 1, "found an import"),
    ("wandb_run_name = 'a'\nimport time\n", 2, "found an import"),  # used by nothing
    ("learning_rate = 1e-3\nmin_lr = learning_rate / 10\n", 2, "found the name learning_rate"),
    ("device = os.environ\n", 1, "found the attribute os.environ"),
    ("n_layer = 1\n\nout_dir = f'out-{n_layer}'\n", 3, "found an f-string"),
    ("batch_size = (8, 16)\n", 1, "found a tuple"),
    ("if True:\n    batch_size = 8\n", 1, "found an if statement"),
    ("batch_size = 8\nbatch_size += 1\n", 2, "found an augmented assignment"),
    ("batch_size = block_size = 8\n", 1, "found a chained assignment"),
    ("print('hi')\n", 1, "found a call to print()"),
    ("n_layer = (2 +\n   len('x'))\n", 2, "found a call to len()"),
    ("out_dir = 'a' * 1000000000\n", 1, "found arithmetic on a string"),
    ("n_layer = 2 ** 10 ** 10\n", 1, "absurdly large number"),
    ("n_layer = 10 ** 9 * 10 ** 9 * 10\n", 1, "absurdly large number"),
    ("learning_rate = 1e300 * 1e300\n", 1, "absurdly large number"),
    ("n_layer = 1 // 0\n", 1, "divides by zero"),
    ("batch_siz = 8\n", 1, "unknown key 'batch_siz' (did you mean 'batch_size'?)"),
    ("batch_size = 'big'\n", 1, "'batch_size' must be an integer"),
    ("batch_size = = 8\n", 1, "not valid Python"),
]


@pytest.mark.parametrize("text,line,needle", REFUSED, ids=[r[2] for r in REFUSED])
def test_anything_but_literal_assignments_is_refused_naming_the_line(
        tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        read_config_file(path)  # the reader, then each knob's type check
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and needle in message
    assert "\n" not in message


def test_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for text in (f"import os\nos.system('touch {marker}')\n",
                 f"batch_size = __import__('os').system('touch {marker}')\n",
                 f"wandb_run_name = __import__('os').system('touch {marker}')\n"):
        try:
            read(write(tmp_path, text))
        except UserError:
            pass
        assert not marker.exists()
    # an ignored key may hold code: skipped, noted, never run
    cfg = read(write(tmp_path, f"wandb_run_name = __import__('os').system("
                                              f"'touch {marker}')\n"))
    assert cfg.ignored == {"wandb_run_name": None} and "(code, not run)" in cfg.notes[0]


def test_a_nanogpt_dataset_is_its_data_folder_when_there(tmp_path: Path) -> None:
    text = "dataset = 'shakespeare_char'\n"
    config = write(tmp_path / "nanoGPT" / "config", text)
    assert read(config).knobs["dataset"] == "shakespeare_char"
    folder = tmp_path / "nanoGPT" / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    cfg = read(config)
    assert cfg.knobs["dataset"] == str(folder.resolve())
    assert any("nanoGPT's data folder" in n for n in cfg.notes)


def test_devices_tune_gpt_cannot_use_as_written(tmp_path: Path) -> None:
    assert read(write(tmp_path, "device = 'cuda:1'\n")).knobs == {"device": "cuda"}
    cfg = read(write(tmp_path, "device = 'mps'\n"))
    assert cfg.knobs == {"device": "auto"} and "mps" in cfg.notes[0]


def test_load_train_config_reads_py_files_and_prints_the_notes(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, "n_layer = 3\nwandb_log = True\n")
    cfg = load_train_config(path, ["--n_embd=96"], batch_size=4)
    assert (cfg.n_layer, cfg.n_embd, cfg.batch_size) == (3, 96, 4)
    err = capsys.readouterr().err
    assert f"{path}: note: wandb_log = True: ignored" in err
    knobs, _ = read_config_file(write(tmp_path, "learning_rate = 1\nbias = False\n"))
    assert knobs["learning_rate"] == 1.0 and knobs["bias"] is False
    assert knobs["n_layer"] == 12 and knobs["min_lr"] == 6e-5  # nanoGPT's defaults for the rest
    assert isinstance(knobs["learning_rate"], float)  # type-checked as the knob's type


# ----------------------------------------------------------------------------- export round trip

def test_the_exported_nanogpt_config_reads_back_to_the_same_knobs(tmp_path: Path) -> None:
    folder = tmp_path / "nanoGPT" / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    knobs = {**TrainConfig().to_dict(), "dataset": str(folder.resolve()), "batch_size": 24,
             "block_size": 128, "gradient_accumulation_steps": 5 * 8, "n_layer": 6,
             "n_head": 6, "n_embd": 384, "dropout": 0.15, "bias": True,
             "learning_rate": 1.5e-3 / 7, "min_lr": 1.5e-4 / 7, "max_iters": 3000,
             "lr_decay_iters": 3000, "warmup_iters": 150, "weight_decay": 0.05, "beta2": 0.95,
             "grad_clip": 0.5, "decay_lr": True, "eval_interval": 300, "eval_iters": 40,
             "log_interval": 25, "device": "cpu", "dtype": "bfloat16", "compile": True}
    trials, curves, meta = assemble([trial("t01")])
    res = prepare(trials, curves, meta)
    text = nanogpt_config(res, "t01", knobs)
    assert "dataset = 'shakespeare_char'" in text and f"dataset = '{folder}" not in text
    path = write(tmp_path / "nanoGPT" / "config", text, "best_config_nanogpt.py")
    cfg = read(path)
    # nanoGPT has no µP: parametrization and mup_* are tune-gpt's own (SP here);
    # nor WSD: lr_schedule and cooldown_frac are tune-gpt's (cosine here, nanoGPT's).
    expected = {k: v for k, v in knobs.items() if k not in (
        "out_dir", "seed", "tokenizer", "parametrization", "mup_base_width",
        "mup_base_head_size", "mup_input_mult", "mup_output_mult", "mup_init_mult",
        "mup_attn_mult", "lr_schedule",
        "cooldown_frac")}
    assert cfg.knobs.pop("out_dir") == f"out-{res.name}"
    assert set(cfg.knobs) == set(expected)
    for k, v in expected.items():
        assert cfg.knobs[k] == (pytest.approx(v, rel=1e-9) if isinstance(v, float) else v), k
    assert set(cfg.ignored) == set(UNREAD) - {"eval_only", "backend"}
    # tune-gpt's device 'auto' is exported as nanoGPT's 'cuda'
    assert read(write(tmp_path, nanogpt_config(res, "t01", {
        **knobs, "device": "auto"}))).knobs["device"] == "cuda"


def test_a_nanogpt_config_means_cosine_whatever_tune_gpts_default(tmp_path: Path) -> None:
    """nanoGPT's get_lr is cosine: a file that sets no lr_schedule (none can: nanoGPT has no
    such key) reads as cosine, even were tune-gpt's own default WSD, and says so."""
    path = write(tmp_path, "n_layer = 3\n")
    assert read(path).all_knobs().get("lr_schedule", "cosine") == "cosine"
    cfg = read_nanogpt_config(path, {**TrainConfig().to_dict(), "lr_schedule": "wsd"})
    assert cfg.all_knobs()["lr_schedule"] == "cosine"
    assert any("lr_schedule 'cosine'" in note for note in cfg.notes)


def test_export_names_the_data_set_as_nanogpt_does() -> None:
    assert nanogpt_dataset("shakespeare_char") == ("shakespeare_char", [])
    name, note = nanogpt_dataset("/home/u/nanoGPT/data/shakespeare_char/")
    assert name == "shakespeare_char" and "data folder" in note[0]
    name, note = nanogpt_dataset("/home/u/corpus.v2.txt", "gpt2")
    assert name == "corpus.v2" and "text file" in note[0] and "data/shakespeare/" in note[1]


# ----------------------------------------------------------------------------- base: in a space

SPACE = """
name: based
base: {base}
params:
  learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}
fixed: {{n_layer: 2, compile: false}}
budget: {{num_samples: 2, tokens_per_trial: 200k}}
"""


def test_a_space_base_supplies_fixed_knobs_under_its_own(tmp_path: Path) -> None:
    base = write(tmp_path / "nanoGPT" / "config", "n_layer = 6\nn_head = 4\nn_embd = 128\n"
                 "block_size = 64\nlearning_rate = 1e-3\nmin_lr = 1e-4\nmax_iters = 5000\n"
                 "lr_decay_iters = 5000\nwarmup_iters = 50\nwandb_log = False\n"
                 "dataset = 'shakespeare_char'\n", "train_small.py")
    (tmp_path / "nanoGPT" / "data" / "shakespeare_char").mkdir(parents=True)
    path = write(tmp_path / "spaces", SPACE.format(base="../nanoGPT/config/train_small.py"),
                 "space.yaml")
    space = load_space(path, profile="cpu")
    assert space.base == str(tmp_path / "spaces" / "../nanoGPT/config/train_small.py")
    assert space.fixed == {"n_head": 4, "n_embd": 128, "block_size": 64, "n_layer": 2,
                           "compile": False,  # the space's n_layer wins
                           # nanoGPT's train.py defaults for what the file leaves unset
                           "eval_interval": 2000, "eval_iters": 200, "log_interval": 1,
                           "gradient_accumulation_steps": 40, "beta2": 0.95}
    assert "learning_rate" not in space.fixed  # tuned by the space
    assert space.data == str((tmp_path / "nanoGPT" / "data" / "shakespeare_char").resolve())
    notes = "\n".join(space.base_notes)
    assert "max_iters = 5000 not fixed: budget.tokens_per_trial" in notes
    assert "lr_decay_iters = 5000 not fixed" in notes and "min_lr = 0.0001 not fixed" in notes
    assert "warmup_iters = 50 not fixed: budget.tokens_per_trial sets max_iters" in notes
    assert "wandb_log = False: ignored" in notes
    # the saved space holds the knobs itself, so a resumed search needs no base file
    saved = write(tmp_path / "runs", yaml.safe_dump(space.raw, sort_keys=False), "space.yaml")
    again = load_space(saved, profile="cpu")
    assert again.fixed == space.fixed and again.data == space.data and again.base == ""


def test_a_yaml_base_and_the_spaces_data_win(tmp_path: Path) -> None:
    write(tmp_path, "batch_size: 4\nn_layer: 3\ndataset: other.txt\n", "best_config.yaml")
    path = write(tmp_path, SPACE.format(base="best_config.yaml") + "data: mine.txt\n",
                 "space.yaml")
    space = load_space(path, profile="cpu")
    assert space.fixed["batch_size"] == 4 and space.fixed["n_layer"] == 2
    assert space.data == "mine.txt" and "dataset 'other.txt' not used" in space.base_notes[0]


@pytest.mark.parametrize("base,needle", [
    ("missing.py", "base: .*missing.py not found; a relative path is read from the space"),
    ("[1, 2]", "base must be the path of a config file"),
    ("bad.py", "bad.py:1: only `name = literal` assignments are read"),
])
def test_bad_bases_get_one_clear_error(tmp_path: Path, base: str, needle: str) -> None:
    write(tmp_path, "import os\n", "bad.py")
    path = write(tmp_path, SPACE.format(base=base), "space.yaml")
    with pytest.raises(UserError, match=needle):
        load_space(path, profile="cpu")


# ----------------------------------------------------------------------------- the CLI

def test_tune_gpt_train_reads_a_nanogpt_config_and_shows_the_notes(
        shakespeare_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = tmp_path / "out"
    config = write(tmp_path / "config", "# a nanoGPT-style config\n"
                   "import time\n"
                   f"out_dir = {str(out_dir)!r}\n"
                   "eval_interval = 1\n"
                   "wandb_log = True\n"
                   "wandb_run_name = 'run-' + str(time.time())\n"
                   "init_from = 'gpt2'\n"
                   "gradient_accumulation_steps = 1 * 2\n", "train_tiny.py")
    code = main(["train", str(config), "--data", str(shakespeare_path), "--threads", "1",
                 "--max_iters=2", *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "trained 2 iterations (1,024 tokens) on cpu" in captured.out  # 8 x 32 x 2 x 2
    assert (out_dir / "ckpt.pt").is_file()
    assert f"{config}: note: init_from = 'gpt2': ignored; tune-gpt trains from scratch" \
        in captured.err
    assert "wandb_log = True" in captured.err and "(code, not run)" in captured.err


def test_tune_gpt_train_refuses_code_in_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    config = write(tmp_path, "batch_size = 8\nn_layer = int('4')\n")
    assert main(["train", str(config), "--max_iters=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{config}:2: only `name = literal`" in err
