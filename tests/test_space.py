"""Search-space YAML: every shipped space loads, every rule rejects bad input clearly,
the translation to Optuna distributions and the n_embd/n_head rule hold."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from tune_gpt.errors import UserError
from tune_gpt.space.resolve import resolve, snap_n_embd, suggest
from tune_gpt.space import load_space

SPACES = sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_shipped_space_loads(path: Path, profile: str) -> None:
    space = load_space(path, profile=profile)
    assert space.params
    assert space.budget.num_samples >= 1
    # every corner resolves to a legal config (load_space already checks; re-check one)
    sampled = {k: (d.candidates() or [d.low])[0] for k, d in space.params.items()}
    from tune_gpt.space import label
    knobs = resolve(space, {k: label(v) for k, v in sampled.items()})
    assert knobs["n_embd"] % knobs["n_head"] == 0


def test_shipped_spaces_include_the_issue_list() -> None:
    names = {p.stem for p in SPACES}
    assert {"beginner", "smoke", "experiment_batch_size", "experiment_learning_rate",
            "experiment_model_size"} <= names


def test_beginner_cpu_profile_is_picked_without_gpu_and_is_cpu_sized() -> None:
    space = load_space(SPACES[[p.stem for p in SPACES].index("beginner")], profile="cpu")
    assert space.profile == "cpu"
    # the guide's 128-256, its low end on a CPU (nanoGPT's CPU recipe has 64)
    assert space.fixed["block_size"] == 128 and space.fixed["compile"] is False
    assert space.budget.time_budget_s and space.budget.time_budget_s <= 900
    gpu = load_space(SPACES[[p.stem for p in SPACES].index("beginner")], profile="gpu")
    assert gpu.profile == "base" and gpu.params["batch_size"].values == [16, 32, 64]
    assert gpu.params["block_size"].values == [128, 256]


GOOD = """
name: t
params:
  learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
budget: {num_samples: 2}
"""

BAD = [
    ("params: [1, 2\n", "malformed YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("parms: {}\n", "did you mean 'params'"),
    ("params: {learning_rat: {uniform: [0.1, 0.2]}}\n", "did you mean 'learning_rate'"),
    ("params: {batch_size: {int: [64, 16]}}\n", "empty or inverted"),
    ("params: {learning_rate: {uniform: [0.1, 0.1]}}\n", "empty or inverted"),
    ("params: {learning_rate: {loguniform: [0, 0.1]}}\n", "loguniform range must be > 0"),
    ("params: {batch_size: {uniform: [8, 16]}}\n", "whole number"),
    ("params: {batch_size: {choice: []}}\n", "non-empty list"),
    ("params: {batch_size: {choice: [8, 'big']}}\n", "must be an integer"),
    ("params: {dropout: {uniform: [0.1, 1.5]}}\n", "not allowed"),
    ("params: {n_embd: {int: [256, 384], step: 50}}\n", "multiple of step"),
    ("params: {n_head: {choice: [5, 7]}}\nfixed: {n_embd: 128}\n", "divisible by n_head=5"),
    ("params: {batch_size: 8}\n", "params is empty"),
    ("params: {batch_size: {choice: [8]}}\nsampler: {type: bayes}\n", "sampler.type"),
    ("params: {batch_size: {choice: [8]}}\nbudget: {num_samples: 0}\n", "num_samples"),
    ("params: {batch_size: {choice: [8]}}\nbudget: {num_sample: 3}\n", "did you mean 'num_samples'"),
    ("params: {batch_size: {choice: [8]}}\nscheduler: {type: asha, time_attr: tokens}\n",
     "needs scheduler.max_t or budget.tokens_per_trial"),
    ("params: {batch_size: {choice: [8]}}\n"
     "scheduler: {type: asha, grace_period: 2M, max_t: 1M}\n", "must be below max_t"),
    ("params: {batch_size: {choice: [8]}}\nscheduler: {type: asha, max_t: 1M, "
     "grace_period: lots}\n", "like 200000 or 200k"),
    ("params: {batch_size: {choice: [8]}}\nfixed: {warmup_iters: 500, lr_decay_iters: 100}\n",
     "lr_decay_iters"),
    ("params: {batch_size: {choice: [8]}}\nresources: {cpu: 0}\n", "resources.cpu"),
    ("params: {batch_size: {choice: [8]}}\nbudget: {total_tokens: 0}\n",
     "budget.total_tokens must be > 0"),
    ("params: {batch_size: {choice: [8]}}\nbudget: {total_tokens: plenty}\n", "like 200000"),
    ("params: {model: {choice: [{n_layer: 2, n_embed: 64}]}}\n", "did you mean 'n_embd'"),
    ("params: {batch_size: {choice: [8]}}\nprofiles: {tpu: {}}\n", "profiles: unknown key 'tpu'"),
    ("params: {batch_size: {choice: [8]}}\nmemory: {limit: 8}\n", "size with a unit"),
    ("params: {batch_size: {choice: [8]}}\nmemory: {limit: 1k}\n", "below 16M"),
    ("params: {batch_size: {choice: [8]}}\nmemory: {rescue: 2}\n", "needs memory.limit"),
    ("params: {batch_size: {choice: [8]}}\nmemory: {limit: 8G, rescue: -1}\n", "memory.rescue"),
    ("params: {batch_size: {choice: [8]}}\nmemory: {limt: 8G}\n", "did you mean 'limit'"),
]


@pytest.mark.parametrize("text,needle", BAD, ids=[b[1] for b in BAD])
def test_bad_spaces_get_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_space(path, profile="cpu")
    message = str(err.value)
    assert needle in message
    assert "\n" not in message
    assert str(path) in message or "--set" in message or "YAML" in message


def test_yaml_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"params: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_space(path)
    assert not marker.exists()


def test_set_overrides_and_sections(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    space = load_space(path, sets=["budget.num_samples=7", "batch_size=24",
                                   "params.dropout={uniform: [0.0, 0.2]}"])
    assert space.budget.num_samples == 7
    assert space.fixed["batch_size"] == 24
    assert space.params["dropout"].kind == "uniform"
    with pytest.raises(UserError, match="KEY=VALUE"):
        load_space(path, sets=["budget.num_samples"])
    with pytest.raises(UserError, match="must be an integer"):
        load_space(path, sets=["batch_size=lots"])


def test_optuna_distributions_match_the_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, """
params:
  learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
  dropout: {uniform: [0.0, 0.2]}
  n_layer: {int: [2, 6], step: 2}
  batch_size: {choice: [8, 16]}
  model: {choice: [{n_layer: 1, n_embd: 32}, {n_layer: 2, n_embd: 64}]}
""")
    # n_layer tuned twice (own + group) is rejected; drop it from the group
    with pytest.raises(UserError, match="tune it in one place"):
        load_space(path)
    path.write_text(path.read_text().replace("n_layer: 1, ", "").replace("n_layer: 2, ", ""))
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    sampled = suggest(trial, space)
    d = trial.distributions
    assert isinstance(d["learning_rate"], optuna.distributions.FloatDistribution)
    assert d["learning_rate"].log and d["learning_rate"].low == 1e-4
    assert not d["dropout"].log
    assert isinstance(d["n_layer"], optuna.distributions.IntDistribution) and d["n_layer"].step == 2
    assert d["batch_size"].choices == (8, 16)
    assert d["model"].choices == ("n_embd=32", "n_embd=64")
    knobs = resolve(space, sampled)
    assert knobs["n_embd"] == int(sampled["model"].split("=")[1])


def test_sampled_configs_always_have_n_embd_divisible_by_n_head() -> None:
    space = load_space(SPACES[[p.stem for p in SPACES].index("beginner")], profile="gpu")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=5))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        knobs = resolve(space, suggest(trial, space))
        assert knobs["n_embd"] % knobs["n_head"] == 0
        assert 256 <= knobs["n_embd"] <= 384
        seen.add((knobs["n_head"], knobs["n_embd"]))
        study.tell(trial, knobs["n_embd"] / 100)
    assert (6, 384) in seen or (8, 256) in seen  # both head counts were really explored


def test_snap_n_embd_picks_the_nearest_legal_value() -> None:
    assert snap_n_embd(320, 6, [256, 320, 384]) == 384
    assert snap_n_embd(320, 8, [256, 320, 384]) == 320
    assert snap_n_embd(300, 4, [256, 320, 384]) == 320


def test_token_budgets_become_iterations_and_eval_interval(tmp_path: Path) -> None:
    path = write(tmp_path, """
params:
  batch_size: {choice: [8, 16]}
fixed: {block_size: 32, learning_rate: 2.0e-3}
budget: {tokens_per_trial: 64k, tokens_per_eval: 8k}
scheduler: {type: asha, time_attr: tokens, grace_period: 16k}
""")
    space = load_space(path)
    small, big = resolve(space, {"batch_size": 8}), resolve(space, {"batch_size": 16})
    assert small["max_iters"] == math.ceil(64_000 / 256) and big["max_iters"] == 125
    assert small["eval_interval"] == 32 and big["eval_interval"] == 16  # ceil(8000 / 256)
    assert small["eval_interval"] * 256 >= 8_000  # evaluations never fall short of a rung
    assert small["lr_decay_iters"] == small["max_iters"]
    assert small["min_lr"] == pytest.approx(2e-4)
    assert space.scheduler.grace_period == 16_000
    capped = resolve(space, {"batch_size": 8}, max_iters_cap=10)
    assert capped["max_iters"] == 10 and capped["warmup_iters"] <= 1


def test_memory_sizes_are_binary_units(tmp_path: Path) -> None:
    path = write(tmp_path, "params: {batch_size: {choice: [8]}}\nmemory: {limit: 8GB, rescue: 2}\n")
    space = load_space(path)
    assert space.memory_limit == 8 * 2**30 and space.rescue == 2
    path.write_text("params: {batch_size: {choice: [8]}}\nmemory: {limit: 512M}\n")
    assert load_space(path).memory_limit == 512 * 2**20 and load_space(path).rescue == 0


def test_total_tokens_is_a_token_amount(tmp_path: Path) -> None:
    from tune_gpt.space import describe

    space = load_space(write(tmp_path, "params: {batch_size: {choice: [8]}}\n"
                                       "budget: {total_tokens: 14.08M}\n"))
    assert space.budget.total_tokens == 14_080_000
    assert "14,080,000 tokens in all" in describe(space)


# ----------------------------------------------------------------------------- final:

SMOKE = Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml"


@pytest.mark.parametrize("sets, says", [
    (["final.explore_share=0.5"], "needs a budget with an end"),
    (["final.explore_share=0.5", "budget.time_budget_s=90"], "the smallest that works is 120"),
    (["final.explore_share=0.75", "budget.time_budget_s=200"], "the smallest that works is 240"),
    # the CPU profile's auto share (13%) of 240 s: 31 s of exploring, no trial would report
    (["final.explore_share=auto", "budget.max_concurrent_trials=2", "budget.time_budget_s=240"],
     "exploring gets 13.0% of it (31 s), under the 60 s a trial needs to start and report its "
     "first evaluation; the smallest that works is 461"),
    (["final.explore_share=0.1", "budget.time_budget_s=500"], "the smallest that works is 600"),
    (["final.explore_share=0.5", "budget.total_tokens=100k"],
     "the smallest that works is 120,000"),
    (["final.explore_share=0", "budget.time_budget_s=600"], "final.explore_share"),
    (["final.explore_share=0.95", "budget.time_budget_s=600"], "final.explore_share"),
    (["final.patience=-1", "budget.time_budget_s=600"], "final.patience"),
    (["final.explore=0.5", "budget.time_budget_s=600"], "final"),
    (["final.continue_trial=maybe", "budget.time_budget_s=600"], "final.continue_trial"),
])
def test_a_final_phase_the_budget_cannot_hold_is_refused(sets: list[str], says: str) -> None:
    with pytest.raises(UserError, match=says.replace("(", r"\(").replace(")", r"\)")) as e:
        load_space(SMOKE, sets=sets)
    assert "\n" not in str(e.value)


def test_a_final_phase_is_described_with_its_rule() -> None:
    from tune_gpt.space.describe import describe

    space = load_space(SMOKE, sets=["final.explore_share=0.5", "budget.time_budget_s=600"])
    assert space.final is not None and space.final.explore_share == 0.5
    text = describe(space)
    assert "exploring takes at most 50% of the budget (300 s)" in text
    assert "continuing that trial's own state" in text
    assert "beaten 4 challengers in a row" in text  # smoke's 4 start-up trials
    assert "Bjorck" in text
    assert load_space(SMOKE).final is None
    cpu = load_space(Path(SMOKE).with_name("beginner.yaml"), profile="cpu")
    assert cpu.final is not None and cpu.budget.time_budget_s == 840


def test_explore_share_auto_is_the_horizon_rule_for_the_space_slots() -> None:
    """`auto` resolves from the space's own trial slots and says why; any other word is
    refused in one line."""
    from tune_gpt.explore import auto_explore_share
    from tune_gpt.space.describe import describe

    two = load_space(SMOKE, sets=["final.explore_share=auto", "budget.time_budget_s=600",
                                  "budget.max_concurrent_trials=2"])
    assert two.final is not None
    assert two.final.explore_share == pytest.approx(auto_explore_share(2)[0])
    assert "explore_share auto = 13.0%" in describe(two)
    fresh = load_space(SMOKE, sets=["final.explore_share=auto", "budget.time_budget_s=1000",
                                    "budget.max_concurrent_trials=2",
                                    "final.continue_trial=false"])
    assert fresh.final.explore_share < two.final.explore_share  # nothing kept: less to spend
    with pytest.raises(UserError, match="number .* or auto") as e:
        load_space(SMOKE, sets=["final.explore_share=sometimes", "budget.time_budget_s=600"])
    assert "\n" not in str(e.value)


def test_beginner_cpu_profile_explores_by_the_auto_rule() -> None:
    space = load_space(SMOKE.with_name("beginner.yaml"), profile="cpu")
    assert space.final is not None and space.final.explore_reason.startswith(
        "explore_share auto")
    assert 0.1 < space.final.explore_share < 0.2  # 2 trial slots
