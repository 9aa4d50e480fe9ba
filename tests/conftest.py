"""Shared fixtures: the tinyshakespeare file, a per-session cache dir, tiny configs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


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
    path = Path(os.environ.get("TUNE_GPT_TEST_DATA")
                or REPO.parent / "shared" / "data" / "shakespeare_char" / "input.txt")
    if not path.is_file():
        pytest.fail(f"test data not found at {path}: set TUNE_GPT_TEST_DATA to a copy of "
                    f"tinyshakespeare's input.txt")
    return path


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
