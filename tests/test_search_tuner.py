"""tune_gpt.search.tuner: the Tuner a search builds, inspected without fit()."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.search.tuner import build_tuner, make_scheduler, trial_settings
from tune_gpt.space import load_space

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def test_make_scheduler_reads_the_space() -> None:
    from ray.tune.schedulers import ASHAScheduler

    space = load_space(SMOKE, profile="cpu")
    asha = make_scheduler(space, max_iters=100, vocab_size=65)
    assert isinstance(asha, ASHAScheduler)
    assert asha._time_attr == "tokens" and asha._max_t == 60_000
    assert asha._reduction_factor == 2
    milestones = sorted(m for m, _ in asha._brackets[0]._rungs)  # (milestone, recorded)
    assert milestones == [10_000, 20_000, 40_000]
    space.scheduler.type = "none"
    assert make_scheduler(space, 100, 65) is None
    space.scheduler.type, space.scheduler.time_attr, space.scheduler.grace_period = \
        "asha", "iter", 0
    assert make_scheduler(space, 500, 65)._max_t == 500  # grace = a tenth of max_t


def test_trial_settings_carry_what_the_trainable_needs(tmp_path: Path) -> None:
    space = load_space(SMOKE, profile="cpu", sets=["memory.limit=1G"])
    s = trial_settings(space, tmp_path)
    assert s.metric == "val_loss" and s.memory_limit_bytes == 2**30
    assert s.checkpoint_dir == str(tmp_path / "checkpoints")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def test_build_tuner_without_fit(local_ray, tmp_path: Path, shakespeare) -> None:
    space = load_space(SMOKE, profile="cpu", sets=["budget.total_tokens=200k"])
    folder = tmp_path / "runs" / "t1"
    folder.mkdir(parents=True)
    tuner = build_tuner(space, folder, str(shakespeare.source), shakespeare,
                        f"sqlite:///{tmp_path / 'mlflow.db'}", "0" * 32, seed=3,
                        max_iters_cap=200)
    inner = tuner._local_tuner
    tc, rc = inner._tune_config, inner._run_config
    assert (tc.metric, tc.mode, tc.num_samples) == ("val_loss", "min", 6)
    assert type(tc.search_alg).__name__ == "MultiFidelityOptunaSearch"
    # ASHA whose rungs survive a resume, kept beside the search
    assert type(tc.scheduler).__name__ == "PersistentASHA"
    assert tc.scheduler.state_path == str(folder / "asha.json")
    assert tc.search_alg.recipe_bar == tc.scheduler._brackets[0]._rungs[-1][0]  # first rung
    assert tc.reuse_actors is True
    assert rc.storage_path == str(folder) and rc.name == "tune"
    assert type(rc.stop).__name__ == "TokenBudget" and rc.stop.total_tokens == 200_000
    assert {type(c).__name__ for c in rc.callbacks} >= {"MLflowTrialCallback", "LiveView"}
    assert rc.failure_config.max_failures == 2
    # the searcher's first config: knobs capped, seeded, with the trial plan and no side keys
    config = tc.search_alg.suggest("x")
    assert config["max_iters"] <= 200 and config["seed"] == 3
    assert not [k for k in config if k.startswith("_")]


def test_trial_slots_for_the_search_and_its_confirm_runs(local_ray) -> None:
    from tune_gpt.search.tuner import trial_slots

    space = load_space(SMOKE, profile="cpu", sets=["budget.max_concurrent_trials=3"])
    assert trial_slots(space) == 3
    space = load_space(SMOKE, profile="cpu", sets=["resources.cpu=0.5"])
    space.budget.max_concurrent_trials = None  # not set: as many as the CPUs hold
    assert trial_slots(space) == 2  # the fixture's one CPU at half a CPU a trial


def test_build_tuner_resume_needs_an_experiment(local_ray, tmp_path: Path, shakespeare) -> None:
    from tune_gpt.errors import UserError

    space = load_space(SMOKE, profile="cpu")
    with pytest.raises(UserError, match="holds no Ray Tune experiment"):
        build_tuner(space, tmp_path, "d", shakespeare, "sqlite:///x.db", "0" * 32, resume=True)


def test_the_space_names_the_trainable_and_the_tuner_imports_it(tmp_path: Path) -> None:
    """tune_gpt never imports trainables/: a space's `trainable: module:function` (default
    trainables.gpt:gpt_trainable) is imported by name when the Tuner is built."""
    from trainables.gpt import gpt_trainable
    from tune_gpt.errors import UserError
    from tune_gpt.search.tuner import load_trainable

    space = load_space(SMOKE, profile="cpu")
    assert space.trainable == "trainables.gpt:gpt_trainable"
    assert load_trainable(space) is gpt_trainable
    other = load_space(SMOKE, profile="cpu", sets=["trainable=json:dumps"])
    import json

    assert load_trainable(other) is json.dumps
    for bad, said in (("trainables.gpt", "module:function"),
                      ("no_such_pkg.mod:fn", "no module 'no_such_pkg.mod'")):
        with pytest.raises(UserError, match=said):
            load_space(SMOKE, profile="cpu", sets=[f"trainable={bad}"])
    other.trainable = "json:no_such_function"
    with pytest.raises(UserError, match="has no function 'no_such_function'"):
        load_trainable(other)


def test_the_scheduler_meta_records_is_in_its_own_units() -> None:
    """meta.json records max_t and the first rung as ASHA ran them: with time_attr iter, in
    iterations (it used to write budget.tokens_per_trial there, a token count)."""
    from tune_gpt.search.tuner import resolved_scheduler

    space = load_space(SMOKE, profile="cpu", sets=["scheduler.time_attr=iter",
                                                   "scheduler.grace_period=0"])
    s = resolved_scheduler(space, 400, 65)
    assert (s.time_attr, s.max_t, s.grace_period) == ("iter", 400, 40)
    tokens = resolved_scheduler(load_space(SMOKE, profile="cpu"), 400, 65)
    assert (tokens.max_t, tokens.grace_period) == (60_000, 10_000)
    assert tokens.rungs() == [10_000, 20_000, 40_000]  # reduction_factor 2, up to max_t
