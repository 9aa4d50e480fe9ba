"""tune_gpt.search.optuna on real Optuna objects: the define-by-run space, the samplers,
the searcher and its study (no Ray cluster: OptunaSearch is only constructed)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tune_gpt.errors import UserError
from tune_gpt.search.optuna import RESCUE_ATTR, DefineByRun, make_sampler, make_searcher
from tune_gpt.settings import SamplerSettings
from tune_gpt.space import load_space
from tune_gpt.trial import TRIAL_PLAN_KEY, TrialPlan

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))


def test_define_by_run_returns_every_knob_and_the_plan() -> None:
    space = load_space(SMOKE, profile="cpu")
    t = _study().ask()
    config = DefineByRun(space, "data.txt", max_iters_cap=150, seed=5)(t)
    assert set(t.params) == {"learning_rate", "n_embd", "batch_size"}
    assert config["max_iters"] == 150 and config["seed"] == 5 and config["dataset"] == "data.txt"
    assert config["n_layer"] == 2  # fixed knobs come along as constants
    plan = TrialPlan.of(config)
    assert plan.sampled == t.params and not plan.rescue_of
    assert not [k for k in config if k.startswith("_")], "no side keys in a trial config"
    assert [k for k in config if k == TRIAL_PLAN_KEY] == [TRIAL_PLAN_KEY]


def test_define_by_run_applies_an_enqueued_oom_rescue() -> None:
    space = load_space(SMOKE, profile="cpu")
    study = _study()
    study.enqueue_trial({"learning_rate": 1e-3, "n_embd": 64, "batch_size": 16},
                        user_attrs={RESCUE_ATTR: {"of": "t0", "batch_size": 8,
                                                  "gradient_accumulation_steps": 2,
                                                  "depth": 1}})
    config = DefineByRun(space, "data.txt")(study.ask())
    assert (config["batch_size"], config["gradient_accumulation_steps"]) == (8, 2)
    assert TrialPlan.of(config).rescue_of == "t0" and TrialPlan.of(config).rescue_depth == 1


def test_make_sampler_types_options_and_errors() -> None:
    space = load_space(SMOKE, profile="cpu")
    tpe = make_sampler(space)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._n_startup_trials == 4  # smoke.yaml's n_startup_trials reaches Optuna
    space.sampler = SamplerSettings(type="random", seed=1)
    assert isinstance(make_sampler(space), optuna.samplers.RandomSampler)
    space.sampler = SamplerSettings(type="tpe", options={"no_such_option": 1})
    with pytest.raises(UserError, match="sampler"):
        make_sampler(space)


def test_grid_sampler_gets_the_whole_grid() -> None:
    space = load_space(ROOT / "search_spaces" / "experiment_model_size.yaml", profile="cpu")
    grid = make_sampler(space)
    assert isinstance(grid, optuna.samplers.GridSampler)
    assert len(grid._all_grids) == 3


def test_make_searcher_keeps_its_study_in_the_search_folder(tmp_path: Path) -> None:
    from ray.tune.search.optuna import OptunaSearch

    space = load_space(SMOKE, profile="cpu")
    folder = tmp_path / "my-search"
    folder.mkdir()
    searcher = make_searcher(space, folder, "data.txt", seed=0)
    assert isinstance(searcher, OptunaSearch)  # MultiFidelityOptunaSearch is one
    assert type(searcher).__name__ == "MultiFidelityOptunaSearch"
    assert searcher.metric == "val_loss" and searcher.mode == "min"
    config = searcher.suggest("t1")
    assert "learning_rate" in config and TRIAL_PLAN_KEY in config
    study = optuna.load_study(study_name="my-search", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(study.trials) == 1


def _with_priors(extra_sampler: dict | None = None):
    import yaml

    data = yaml.safe_load(SMOKE.read_text())
    data["params"]["learning_rate"].update(prior=1.0e-3, confidence="high")
    data["params"]["batch_size"]["prior"] = 16
    data["sampler"].update(extra_sampler or {})
    return load_space("priors.yaml", data=data, profile="cpu")


def test_priors_wrap_the_sampler_and_the_recipe_comes_first() -> None:
    from tune_gpt.search.priors import PriorSampler

    space = _with_priors()
    sampler = make_sampler(space, seed=0)
    assert isinstance(sampler, PriorSampler)
    study = optuna.create_study(sampler=sampler)
    first = DefineByRun(space, "d.txt")(study.ask())
    assert (first["learning_rate"], first["batch_size"]) == (1e-3, 16)
    assert not isinstance(make_sampler(_with_priors({"priors": False})), PriorSampler)


@pytest.mark.parametrize("spec, message", [
    ({"loguniform": [1e-4, 1e-2], "prior": 1.0}, "outside the range"),
    ({"loguniform": [1e-4, 1e-2], "prior": 1e-3, "confidence": "total"}, "confidence must"),
    ({"loguniform": [1e-4, 1e-2], "confidence": "high"}, "confidence needs a prior"),
    ({"choice": [1e-4, 1e-3], "prior": 5e-4}, "not one of the choices"),
])
def test_bad_priors_are_one_line_errors(spec: dict, message: str) -> None:
    import yaml

    data = yaml.safe_load(SMOKE.read_text())
    data["params"]["learning_rate"] = spec
    with pytest.raises(UserError, match=message):
        load_space("bad.yaml", data=data, profile="cpu")
