"""`prior: auto`: priors computed from the data, the budget and the hardware by cited rules
(tune_gpt/space/auto_priors.py), printed with their reasons; an explicit prior wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.errors import UserError
from tune_gpt.space import load_space
from tune_gpt.space.auto_priors import GUIDE_LR, GUIDE_TOKENS, reasons, resolve

ROOT = Path(__file__).resolve().parents[1]


def _space(tokens_per_trial: str = "2M", **params: str) -> object:
    data = {"name": "auto", "data": "shakespeare_char",
            "params": {"learning_rate": {"loguniform": [1e-4, 1e-2], "prior": "auto"},
                       "dropout": {"uniform": [0.0, 0.3], "prior": "auto"},
                       "n_layer": {"int": [2, 8], "prior": "auto"},
                       "n_embd": {"choice": [64, 128, 192, 384], "prior": "auto"},
                       "batch_size": {"choice": [8, 12, 32, 64], "prior": "auto"}},
            "fixed": {"n_head": 2, "block_size": 64},
            "budget": {"num_samples": 4, "tokens_per_trial": tokens_per_trial}}
    for k, v in params.items():
        data["params"][k] = {**data["params"][k], "prior": v}
    return load_space("auto.yaml", data=data, profile="base")


def test_rules_set_every_auto_prior_with_its_reason() -> None:
    space = _space()
    lines = resolve(space, train_tokens=1_000_000, device="cpu")  # 2 epochs a trial
    p = {k: d.prior for k, d in space.params.items()}
    assert p["learning_rate"] == pytest.approx(GUIDE_LR * (2e6 / GUIDE_TOKENS) ** -0.32)
    assert p["learning_rate"] == pytest.approx(3.28e-3, rel=0.01)
    assert p["dropout"] == 0.1          # 2 epochs: from 2 to 10
    assert (p["n_layer"], p["n_embd"]) == (6, 384)  # the guide's values, in range
    assert p["batch_size"] == 12        # a CPU: nanoGPT's CPU recipe
    assert len(lines) == 5 and any("Bjorck" in x for x in lines)
    assert all(":" in x for x in lines)


def test_a_small_corpus_gets_dropout_and_the_smallest_model_and_a_gpu_its_batch() -> None:
    space = _space()
    resolve(space, train_tokens=150_000, device="cuda")  # 13 epochs a trial
    p = {k: d.prior for k, d in space.params.items()}
    assert p["dropout"] == pytest.approx(0.2)
    assert (p["n_layer"], p["n_embd"]) == (2, 64)
    assert p["batch_size"] == 64
    # one trial seeing the corpus under twice: no dropout
    once = _space()
    resolve(once, train_tokens=5_000_000, device="cpu")
    assert once.params["dropout"].prior == 0.0


def test_an_explicit_prior_wins_and_a_rule_without_its_numbers_sets_none() -> None:
    space = _space(learning_rate="3.0e-4")
    lines = resolve(space, train_tokens=None, device="cpu")
    assert space.params["learning_rate"].prior == pytest.approx(3e-4)
    assert "learning_rate 0.0003: set in the space" in lines
    # no training-split size: dropout (and the model's size rule) cannot see the epochs
    assert space.params["dropout"].prior is None
    assert any(x.startswith("dropout auto: needs") for x in lines)


def test_auto_is_refused_where_no_rule_exists_and_kept_in_the_saved_space() -> None:
    data = {"name": "x", "params": {"weight_decay": {"uniform": [0.0, 0.2], "prior": "auto"}},
            "fixed": {"n_head": 2}, "budget": {"num_samples": 2}}
    with pytest.raises(UserError, match="prior: auto has no rule for weight_decay"):
        load_space("x.yaml", data=data, profile="base")
    space = _space()
    assert space.params["learning_rate"].to_yaml()["prior"] == "auto"
    resolve(space, 1_000_000, "cpu")
    assert space.params["learning_rate"].to_yaml()["prior"] == "auto"  # re-resolved on resume


def test_validate_prints_each_prior_with_its_reason(tmp_path: Path,
                                                     shakespeare_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "tune_gpt.cli", "validate", str(ROOT / "search_spaces" / "beginner.yaml"),
         "--profile", "cpu", "--set", f"data={shakespeare_path}",
         "--set", "params.learning_rate={loguniform: [1.0e-3, 6.0e-3], prior: auto}"],
        capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = run.stdout.split("  priors:")[1]
    assert "learning_rate 0.00328" in out and "Bjorck" in out
    assert "n_layer 4: set in the space" in out


def test_the_replay_has_a_rules_method(shakespeare_path: Path) -> None:
    from benchmarks.common.replay.methods import METHODS, _DATA, set_data

    set_data(str(shakespeare_path))
    assert _DATA["train_tokens"] == pytest.approx(1_115_394 * 0.9, rel=0.01)
    searcher, scheduler = METHODS["default_rules"](0)
    assert searcher is not None and scheduler is not None
    assert reasons(_space()) and all("computed when" in x for x in reasons(_space()))
