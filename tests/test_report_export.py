"""The files a report exports: they must load in the tools they are meant for."""

from __future__ import annotations

import ast
import itertools
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from test_report_data import planted_search, report_of, trial, assemble

from tune_gpt.config import load_train_config
from tune_gpt.report.export import NANOGPT_KEYS, narrow, next_space
from tune_gpt.report.results import prepare
from tune_gpt.settings import RESOURCES
from tune_gpt.space import load_space
from tune_gpt.space.schema import Budget, SchedulerSettings

NANOGPT_TRAIN_KEYS = {  # the globals nanoGPT's train.py lets a config file set
    "out_dir", "eval_interval", "log_interval", "eval_iters", "eval_only", "always_save_checkpoint",
    "init_from", "wandb_log", "wandb_project", "wandb_run_name", "dataset",
    "gradient_accumulation_steps", "batch_size", "block_size", "n_layer", "n_head", "n_embd",
    "dropout", "bias", "learning_rate", "max_iters", "weight_decay", "beta1", "beta2", "grad_clip",
    "decay_lr", "warmup_iters", "lr_decay_iters", "min_lr", "backend", "device", "dtype", "compile"}


def test_nanogpt_config_is_plain_assignments_of_known_keys():
    text = report_of("planted").files["best_config_nanogpt.py"]
    tree = ast.parse(text)
    names = []
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1
        assert isinstance(node.targets[0], ast.Name)
        ast.literal_eval(node.value)  # a literal, nothing to execute
        names.append(node.targets[0].id)
    assert set(names) <= NANOGPT_TRAIN_KEYS and set(NANOGPT_KEYS) == NANOGPT_TRAIN_KEYS
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body}
    best = report_of("planted").findings.summary.best_config
    for k in ("batch_size", "block_size", "n_layer", "n_head", "n_embd", "learning_rate", "max_iters"):
        assert values[k] == best[k]
    assert "DDP" in text  # gradient_accumulation_steps is the total over ranks


def test_best_config_yaml_loads_as_a_train_config(tmp_path):
    path = tmp_path / "best_config.yaml"
    path.write_text(report_of("planted").files["best_config.yaml"])
    cfg = load_train_config(path)
    best = report_of("planted").findings.summary.best_config
    got = cfg.to_dict()
    for k, v in best.items():
        if k != "out_dir":
            assert got[k] == (pytest.approx(v, rel=1e-9) if isinstance(v, float) else v), k


def test_next_space_loads_and_narrows_within_the_original_ranges(tmp_path):
    text = report_of("planted").files["next_space.yaml"]
    data = yaml.safe_load(text)
    assert text.startswith("# Next search")
    meta = planted_search()[2]
    lr = data["params"]["learning_rate"]["loguniform"]
    assert meta["params"]["learning_rate"]["loguniform"][0] <= lr[0] < lr[1] <= 1e-1
    assert lr[1] / lr[0] < 1e3  # narrower than the three decades searched
    embd = data["params"]["n_embd"]
    heads = data["params"]["n_head"]
    heads = heads["choice"] if isinstance(heads, dict) else [heads]
    if "int" in embd:
        lo, hi = embd["int"]
        values = range(lo, hi + 1, embd.get("step", 1))
        assert (hi - lo) % embd.get("step", 1) == 0 and 192 <= lo and hi <= 768
    else:
        values = embd["choice"]
    assert all(v % h == 0 for v in values for h in heads)
    path = tmp_path / "next_space.yaml"
    path.write_text(text)
    space = load_space(path, profile="gpu")
    assert set(space.params) <= set(meta["params"])


def test_narrowing_rules():
    assert narrow({"choice": [16, 32, 64]}, [32, 64, 32]) == ({"choice": [32, 64]}, "was {choice: [16, 32, 64]}")
    assert narrow({"choice": [16, 32, 64]}, [32, 32])[0] == 32  # one value left: fixed
    spec, _ = narrow({"loguniform": [1e-4, 1e-2]}, [1e-3, 2e-3])
    lo, hi = spec["loguniform"]
    assert 1e-4 <= lo < 1e-3 and 2e-3 < hi <= 1e-2
    spec, _ = narrow({"int": [128, 512], "step": 64}, [256, 320])
    assert spec["step"] == 64 and (spec["int"][1] - spec["int"][0]) % 64 == 0
    assert 128 <= spec["int"][0] <= 256 and 320 <= spec["int"][1] <= 512
    spec, _ = narrow({"uniform": [0.0, 0.3]}, [0.3, 0.3])
    assert spec["uniform"][1] == 0.3 and spec["uniform"][0] < 0.3  # clipped at the bound


def test_n_embd_choices_are_listed_when_a_range_would_break_n_head():
    items = [trial("a", n_head=6, n_embd=384, floor=1.5), trial("b", n_head=4, n_embd=256, floor=1.51),
             trial("c", n_head=6, n_embd=192, floor=1.52), trial("d", n_head=4, n_embd=128, floor=2.0)]
    trials, curves, meta = assemble(items, params={"n_head": {"choice": [4, 6]},
                                                   "n_embd": {"int": [128, 512], "step": 64}})
    res = prepare(trials, curves, meta)
    space, text = next_space(res, ["a", "b", "c"], None)
    embd = space["params"]["n_embd"]
    assert "choice" in embd and all(v % 4 == 0 or v % 6 == 0 for v in embd["choice"])
    assert any(v % 6 == 0 for v in embd["choice"]) and any(v % 4 == 0 for v in embd["choice"])
    assert yaml.safe_load(text)["params"]["n_embd"] == embd


def test_group_parameters_keep_the_groups_the_top_trials_used():
    items = [trial("a", n_layer=2, n_embd=64, n_head=4, floor=1.6), trial("b", n_layer=4, n_embd=128, n_head=4, floor=1.5)]
    groups = [{"n_layer": 2, "n_embd": 64}, {"n_layer": 4, "n_embd": 128}, {"n_layer": 6, "n_embd": 192}]
    trials, curves, meta = assemble(items, params={"model": {"choice": groups}})
    space, _ = next_space(prepare(trials, curves, meta), ["a", "b"], None)
    assert space["params"]["model"] == {"choice": groups[:2]}


def test_budget_and_scheduler_keep_only_keys_the_space_accepts():
    trials, curves, meta = planted_search()
    meta["budget"]["max_tokens"] = 123
    meta["scheduler"]["unknown"] = 1
    meta["resources"]["memory_gb"] = 16
    space, _ = next_space(prepare(trials, curves, meta), ["t01"], None)
    assert "max_tokens" not in space["budget"] and "unknown" not in space["scheduler"]
    assert set(space["resources"]) == set(RESOURCES)
    yaml.safe_dump(space)  # plain Python values only (a numpy scalar would be refused)


def _exported(tmp_path: Path, **meta) -> tuple[str, object]:
    """next_space.yaml of the planted search with `meta` sections, and that file loaded by
    the space loader, as `tune-gpt search next_space.yaml` would."""
    trials, curves, planted = planted_search()
    text = next_space(prepare(trials, curves, {**planted, **meta}), ["t01", "t02"], None)[1]
    path = tmp_path / "next_space.yaml"
    path.write_text(text)
    return text, load_space(path, profile="gpu")


def test_a_flop_budget_is_kept(tmp_path: Path):
    budget = {**planted_search()[2]["budget"], "total_flops": 2e15}
    text, space = _exported(tmp_path, budget=budget)
    assert yaml.safe_load(text)["budget"]["total_flops"] == 2e15
    assert space.budget.total_flops == 2e15


# Every field of the exported sections, each unlike its default, so that a field the export
# dropped would load back as the default and fail below.
EVERY_FIELD = {
    "scheduler": SchedulerSettings(type="none", time_attr="flops", grace_period=1e14,
                                   reduction_factor=4, max_t=9e14, brackets=2,
                                   rung_cooldown=0.1),
    "budget": Budget(num_samples=7, max_concurrent_trials=2, time_budget_s=600.0,
                     tokens_per_trial=2_000_000, tokens_per_eval=100_000, total_tokens=9_000_000,
                     total_flops=2e15),
}


def test_every_field_of_the_spaces_sections_round_trips_through_the_export(tmp_path: Path):
    resources = {"cpu": 3.0, "gpu": 0.5}
    assert set(resources) == set(RESOURCES)
    _, space = _exported(tmp_path, resources=resources,
                         **{k: vars(v) for k, v in EVERY_FIELD.items()})
    for section, wrote in EVERY_FIELD.items():
        cls, loaded = type(wrote), getattr(space, section)
        for f in fields(cls):
            assert getattr(wrote, f.name) != getattr(cls(), f.name), f"{section}.{f.name}"
            assert getattr(loaded, f.name) == getattr(wrote, f.name), f"{section}.{f.name}"
    assert space.resources == resources


# ----------------------------------------------------------------------------- WSD

def _wsd_exports(**knobs) -> tuple[str, str, dict]:
    """(best_config_nanogpt.py, best_config.yaml, knobs) of a trial trained with WSD."""
    from tune_gpt.config import TrainConfig
    from tune_gpt.report.export import best_config_yaml, nanogpt_config

    trials, curves, meta = assemble([trial("t01")])
    res = prepare(trials, curves, meta)
    k = {**TrainConfig().to_dict(), "lr_schedule": "wsd", "cooldown_frac": 0.25,
         "max_iters": 3000, "lr_decay_iters": 3000, "warmup_iters": 150, **knobs}
    return nanogpt_config(res, "t01", k), best_config_yaml(res, "t01", k), k


def test_a_wsd_trial_exports_nanogpts_closest_schedule_and_says_so():
    """nanoGPT has no WSD: the file keeps nanoGPT's keys (cosine with the same warmup, peak,
    floor and length) and says, before any value, that it will not reproduce the trial."""
    text, _, k = _wsd_exports()
    tree = ast.parse(text)
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body}
    assert set(values) <= NANOGPT_TRAIN_KEYS  # still only keys nanoGPT's train.py knows
    assert (values["decay_lr"], values["warmup_iters"], values["lr_decay_iters"],
            values["learning_rate"], values["min_lr"]) == (
        True, 150, 3000, k["learning_rate"], k["min_lr"])
    head = text.split("\n\n")[1]  # the block right after the three header lines
    assert head.startswith("# NOTE: nanoGPT has no warmup-stable-decay (WSD)")
    assert "lr_schedule = 'wsd'" in head and "will not reproduce" in head
    assert "cooldown_frac = 0.25" in head and "iteration 2250" in head
    decay = next(line for line in text.splitlines() if line.startswith("decay_lr ="))
    assert "nanoGPT has no WSD" in decay


def test_the_get_lr_given_for_nanogpt_is_lr_at_step_by_step():
    """The commented get_lr a user pastes into nanoGPT's train.py trains the same schedule
    as tune-gpt (run here on our own generated text, in a test only)."""
    import math

    from tune_gpt.config import TrainConfig
    from tune_gpt.schedule import lr_at

    for knobs in ({}, {"cooldown_frac": 1.0}, {"warmup_iters": 0, "cooldown_frac": 0.1}):
        text, _, k = _wsd_exports(**knobs)
        lines = text.splitlines()
        first = lines.index("#     def get_lr(it):")
        code = "\n".join(line[6:] for line in itertools.takewhile(
            lambda line: line.startswith("#     "), lines[first:]))
        cfg = TrainConfig(**k)
        scope = {"math": math, **{n: getattr(cfg, n) for n in (
            "learning_rate", "min_lr", "warmup_iters", "lr_decay_iters")}}
        exec(compile(code, "get_lr", "exec"), scope)  # noqa: S102  (our own output)
        got = [scope["get_lr"](it) for it in range(cfg.lr_decay_iters + 3)]
        assert got == [lr_at(it, cfg) for it in range(cfg.lr_decay_iters + 3)], knobs


def test_wsd_round_trips_through_best_config_yaml(tmp_path):
    _, yaml_text, _ = _wsd_exports()
    path = tmp_path / "best_config.yaml"
    path.write_text(yaml_text)
    cfg = load_train_config(path)
    assert (cfg.lr_schedule, cfg.cooldown_frac) == ("wsd", 0.25)


def test_cosine_and_constant_trials_get_no_wsd_note():
    text = report_of("planted").files["best_config_nanogpt.py"]
    assert "WSD" not in text and "warmup-stable-decay" not in text
    text, _, _ = _wsd_exports(decay_lr=False)  # no decay: the schedule never acts
    assert "WSD" not in text
