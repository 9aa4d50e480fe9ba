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
    lines = resolve(space, train_tokens=1_000_000, device="cpu")
    p = {k: d.prior for k, d in space.params.items()}
    assert p["learning_rate"] == pytest.approx(GUIDE_LR * (2e6 / GUIDE_TOKENS) ** -0.32)
    assert p["learning_rate"] == pytest.approx(3.28e-3, rel=0.01)
    # a trial sees the split twice; 6 x 384 (10.6M parameters, 0.094 tokens each) would
    # start to overfit after ~60 x 0.094 = 5.7 epochs: it lasts the trial, so the guide's
    # width stays; with so few tokens a parameter, dropout 0.2
    assert (p["n_layer"], p["n_embd"]) == (6, 384)
    assert p["dropout"] == 0.2
    assert p["batch_size"] == 12        # a CPU: nanoGPT's CPU recipe
    assert len(lines) == 5 and any("Bjorck" in x for x in lines)
    assert all(":" in x for x in lines)
    assert any(x.startswith("n_embd 384: the guide's 384 brought into the range; a trial "
                            "sees the training split 2 times; 6x384") for x in lines)
    # trials of 20M tokens see it 20 times: 6x384 would overfit after 5.7, 6x192 (D/N
    # 0.38) after 23: the widest that lasts the trial
    long = _space("20M")
    lines = resolve(long, train_tokens=1_000_000, device="cpu")
    assert (long.params["n_embd"].prior, long.params["dropout"].prior) == (192, 0.1)
    assert any("6x192" in x and "the widest that lasts the trial" in x for x in lines)
    # a corpus 15 times larger: the guide's 6 x 384 (1.4 tokens a parameter), no dropout
    big = _space()
    resolve(big, train_tokens=15_000_000, device="cpu")
    assert (big.params["n_embd"].prior, big.params["dropout"].prior) == (384, 0.0)


def test_the_cpu_profile_keeps_its_recipe_on_shakespeare_and_narrows_on_a_small_corpus(
        ) -> None:
    """beginner.yaml's CPU profile on the two development corpora's training splits: the
    4x192 that trained 13 epochs of tinyshakespeare without overfitting, and on licenses
    (226k tokens) the 4x128 that beat it by 0.09 nats, with dropout."""
    got = {}
    for name, tokens in (("shakespeare", 1_115_394 * 0.9), ("licenses", 251_458 * 0.9)):
        space = load_space(str(ROOT / "search_spaces" / "beginner.yaml"), profile="cpu")
        resolve(space, train_tokens=tokens, device="cpu")
        got[name] = (space.params["n_embd"].prior, space.params["dropout"].prior)
    assert got == {"shakespeare": (192, 0.0), "licenses": (128, 0.1)}


def test_a_small_corpus_gets_dropout_and_the_smallest_model_and_a_gpu_its_batch() -> None:
    space = _space()
    resolve(space, train_tokens=20_000, device="cuda")  # 100 epochs; 6x64 lasts ~4
    p = {k: d.prior for k, d in space.params.items()}
    assert p["dropout"] == pytest.approx(0.2)
    assert p["n_embd"] == 64
    assert p["batch_size"] == 64
    # 13 epochs a trial: 6x128 would overfit after 7.6, 6x64 (D/N 0.51) after 30: it lasts,
    # and with 0.51 tokens a parameter it needs no dropout
    small = _space()
    resolve(small, train_tokens=150_000, device="cpu")
    assert (small.params["n_embd"].prior, small.params["dropout"].prior) == (64, 0.0)


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
    # its priors are the rules' for the tokens the table's trials trained (2M: full table),
    # not the space's hand-picked ones
    from tune_gpt.space.auto_priors import GUIDE_LR, GUIDE_TOKENS

    priors = searcher._sampler._priors
    assert priors["learning_rate"][0] == pytest.approx(
        GUIDE_LR * (2_000_000 / GUIDE_TOKENS) ** -0.32)
    assert priors["n_layer"][0] == 6 and priors["n_embd"][0] == 192  # the guide's 6 x 384,
    assert priors["batch_size"][0] == 12                              # in the CPU ranges
    assert scheduler._time_attr == "tokens" and scheduler._reduction_factor == 3
    assert reasons(_space()) and all("computed when" in x for x in reasons(_space()))
