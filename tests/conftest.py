"""Shared fixtures: the data beside the project (../shared), a per-session cache dir, tiny
configs; and the one rule for a test whose input is missing (`required`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the tests read from outside the project: tinyshakespeare, nanoGPT's own prepared
# folder and config files. CI's checkout has it beside the project (.ci/run).
SHARED = REPO.parent / "shared"


def in_ci() -> bool:
    """CI=true (set by .ci/run, and by most CI services)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def required(path: Path, what: str, how: str) -> Path:
    """`path`, which a test needs. When it is missing, the test fails in CI, where a skip
    would let what CI should check go unchecked, and is skipped elsewhere; either way with
    one line naming the path and `how` to point the tests elsewhere."""
    if not path.exists():
        message = f"{what} not found at {path}: {how}, or put ../shared beside the project"
        if in_ci():
            pytest.fail(f"{message} (CI must have it)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Every test session prepares data into its own cache: tests never touch ~/.cache."""
    cache = tmp_path_factory.mktemp("tune-gpt-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("TUNE_GPT_CACHE_DIR", str(cache))
    yield cache
    patch.undo()


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    """tinyshakespeare's input.txt: $TUNE_GPT_TEST_DATA or ../shared/data/shakespeare_char/."""
    return required(Path(os.environ.get("TUNE_GPT_TEST_DATA")
                         or SHARED / "data" / "shakespeare_char" / "input.txt"),
                    "tinyshakespeare's input.txt", "set TUNE_GPT_TEST_DATA to a copy")


@pytest.fixture(scope="session")
def nanogpt_char() -> Path:
    """nanoGPT's own data/shakespeare_char folder (train.bin, val.bin, meta.pkl):
    $TUNE_GPT_TEST_NANOGPT_DATA or ../shared/data/nanogpt_shakespeare_char."""
    folder = Path(os.environ.get("TUNE_GPT_TEST_NANOGPT_DATA")
                  or SHARED / "data" / "nanogpt_shakespeare_char")
    required(folder / "meta.pkl", "nanoGPT's prepared shakespeare_char folder",
             "set TUNE_GPT_TEST_NANOGPT_DATA to one")
    return folder


@pytest.fixture(scope="session")
def nanogpt_config_file() -> Callable[[str], Path]:
    """NAME -> one of nanoGPT's unchanged config/*.py files: in $TUNE_GPT_NANOGPT_CONFIGS or
    ../shared/data/nanogpt_configs."""
    folder = Path(os.environ.get("TUNE_GPT_NANOGPT_CONFIGS")
                  or SHARED / "data" / "nanogpt_configs")

    def find(name: str) -> Path:
        return required(folder / name, f"nanoGPT's config file {name}",
                        "set TUNE_GPT_NANOGPT_CONFIGS to the folder holding it")

    return find


@pytest.fixture(scope="session")
def shakespeare(shakespeare_path: Path):
    """The prepared tinyshakespeare dataset (prepared once per session)."""
    from tune_gpt.data import prepare

    return prepare(str(shakespeare_path))


@pytest.fixture
def tiny_config(shakespeare_path: Path, tmp_path: Path) -> Callable[..., Any]:
    """TrainConfig factory for a model that trains in milliseconds per step."""
    from tune_gpt.config import TrainConfig

    def make(**overrides: Any) -> TrainConfig:
        values = {"dataset": str(shakespeare_path), "out_dir": str(tmp_path / "out"),
                  "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 8,
                  "max_iters": 20, "eval_interval": 10, "eval_iters": 4, "log_interval": 5,
                  "warmup_iters": 5, "lr_decay_iters": 100, "learning_rate": 3e-3,
                  "min_lr": 3e-4, "device": "cpu"}
        values.update(overrides)
        return TrainConfig(**values)

    return make
