"""TrainConfig: every validation rule, --key=value parsing, YAML loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.config import (
    TrainConfig,
    check_block_size,
    coerce,
    from_mapping,
    load_train_config,
    parse_overrides,
    validate,
    validate_for_device,
)
from tune_gpt.errors import UserError


def _fails(match: str, **values) -> None:
    with pytest.raises(UserError, match=match):
        validate(TrainConfig(**values))


def test_defaults_are_valid_and_are_nanogpts_cpu_recipe() -> None:
    cfg = TrainConfig()
    validate(cfg)
    shape = (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.batch_size)
    assert shape == (4, 4, 128, 64, 12)
    assert cfg.tokens_per_iter() == 12 * 64


@pytest.mark.parametrize("key", ["batch_size", "block_size", "gradient_accumulation_steps",
                                 "n_layer", "n_head", "n_embd", "max_iters", "eval_interval",
                                 "eval_iters", "log_interval"])
@pytest.mark.parametrize("bad", [0, -3])
def test_counts_must_be_positive(key: str, bad: int) -> None:
    _fails(f"'{key}' must be a positive integer", **{key: bad})


@pytest.mark.parametrize("key", ["warmup_iters", "lr_decay_iters"])
def test_schedule_lengths_must_not_be_negative(key: str) -> None:
    _fails(f"'{key}' must be >= 0", **{key: -1})


def test_n_embd_divisible_by_n_head_suggests_a_value() -> None:
    _fails(r"'n_embd' \(130\) must be divisible by 'n_head' \(4\); e.g. n_embd=128",
           n_embd=130, n_head=4)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_dropout_range(bad: float) -> None:
    _fails("'dropout' must be in", dropout=bad)


@pytest.mark.parametrize("key", ["learning_rate", "min_lr", "weight_decay", "grad_clip"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_rates_finite_and_non_negative(key: str, bad: float) -> None:
    values = {key: bad}
    if key == "min_lr":
        values["learning_rate"] = 1.0
    _fails(f"'{key}' must be a finite number >= 0", **values)


def test_learning_rate_positive() -> None:
    _fails("'learning_rate' must be > 0", learning_rate=0.0, min_lr=0.0)


def test_min_lr_not_above_learning_rate() -> None:
    _fails("'min_lr' .* must not exceed 'learning_rate'", learning_rate=1e-3, min_lr=1e-2)


@pytest.mark.parametrize("key", ["beta1", "beta2"])
@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_betas_range(key: str, bad: float) -> None:
    _fails(f"'{key}' must be in", **{key: bad})


def test_decay_must_end_after_warmup_only_when_decaying() -> None:
    _fails("'lr_decay_iters' .* must be >= 'warmup_iters'", warmup_iters=100, lr_decay_iters=50)
    validate(TrainConfig(warmup_iters=100, lr_decay_iters=50, decay_lr=False))


def test_lr_schedule_is_cosine_or_wsd() -> None:
    _fails("'lr_schedule' must be one of cosine, wsd, got 'linear'", lr_schedule="linear")
    validate(TrainConfig(lr_schedule="wsd"))


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.01, float("nan"), float("inf")])
def test_cooldown_frac_in_zero_one(bad: float) -> None:
    _fails(r"'cooldown_frac' must be in \(0, 1\]", cooldown_frac=bad)
    _fails(r"'cooldown_frac' must be in \(0, 1\]", cooldown_frac=bad, lr_schedule="wsd")


def test_cooldown_frac_bounds_are_allowed() -> None:
    validate(TrainConfig(lr_schedule="wsd", cooldown_frac=1.0))
    validate(TrainConfig(lr_schedule="wsd", cooldown_frac=1e-3))


def test_schedule_knobs_load_from_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "wsd.yaml"
    path.write_text("lr_schedule: wsd\ncooldown_frac: 0.3\n")
    cfg = load_train_config(path, ["--cooldown_frac=0.25"])
    assert (cfg.lr_schedule, cfg.cooldown_frac) == ("wsd", 0.25)
    with pytest.raises(UserError, match="^command line: 'cooldown_frac' must be a number"):
        parse_overrides(["--cooldown_frac=fifth"])
    path.write_text("lr_schedule: WSD\n")  # choices are exact, as dtype's are
    with pytest.raises(UserError, match="wsd.yaml: 'lr_schedule' must be one of"):
        load_train_config(path)


def test_schedule_knobs_are_tunable_like_every_knob() -> None:
    """A search space picks new knobs up from the dataclass (FIELD_TYPES): a choice of
    schedules and a cooldown_frac range parse, and a bound outside (0, 1] is refused at
    load, naming the key."""
    from tune_gpt.space.dists import parse_dist

    assert parse_dist("lr_schedule", {"choice": ["cosine", "wsd"]}, "s.yaml: params").values \
        == ["cosine", "wsd"]
    frac = parse_dist("cooldown_frac", {"uniform": [0.1, 0.5]}, "s.yaml: params")
    assert (frac.kind, frac.low, frac.high) == ("uniform", 0.1, 0.5)
    with pytest.raises(UserError, match=r"s.yaml: params.cooldown_frac: 1.5 is not allowed"):
        parse_dist("cooldown_frac", {"uniform": [0.1, 1.5]}, "s.yaml: params")
    with pytest.raises(UserError, match=r"params.lr_schedule: 'step' is not allowed"):
        parse_dist("lr_schedule", {"choice": ["cosine", "step"]}, "s.yaml: params")


def test_dtype_device_dataset_choices() -> None:
    _fails("'dtype' must be one of float32, bfloat16, float16", dtype="fp8")
    _fails("'device' must be one of auto, cpu, cuda", device="tpu")
    _fails("'dataset' must name a dataset", dataset="")


def test_where_prefix_names_the_file() -> None:
    with pytest.raises(UserError, match="^my.yaml: 'batch_size'"):
        validate(TrainConfig(batch_size=0), "my.yaml: ")


def test_rules_that_depend_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    with pytest.raises(UserError, match="float16 is not supported for CPU"):
        validate_for_device(TrainConfig(dtype="float16"), "cpu")
    validate_for_device(TrainConfig(dtype="bfloat16"), "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        validate_for_device(TrainConfig(), "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(UserError, match="bfloat16 is not supported by this GPU"):
        validate_for_device(TrainConfig(dtype="bfloat16"), "cuda")


def test_block_size_must_fit_the_validation_split() -> None:
    check_block_size(TrainConfig(block_size=64), 65)
    with pytest.raises(UserError, match="'block_size' \\(64\\) must be shorter"):
        check_block_size(TrainConfig(block_size=64), 64)


# ----------------------------------------------------------------------------- parsing

def test_overrides_parse_each_type() -> None:
    got = parse_overrides(["--learning_rate=1", "--batch_size=16", "--compile=false",
                           "--bias=True", "--dtype=bfloat16", "--min_lr=1e-4",
                           "--max_iters=5_000", "--n_layer=6.0"])
    assert got == {"learning_rate": 1.0, "batch_size": 16, "compile": False, "bias": True,
                   "dtype": "bfloat16", "min_lr": 1e-4, "max_iters": 5000, "n_layer": 6}
    assert type(got["learning_rate"]) is float and type(got["batch_size"]) is int


@pytest.mark.parametrize("text", ["yes", "on", "1", "TRUE"])
def test_bool_spellings(text: str) -> None:
    assert coerce("compile", text) is True


@pytest.mark.parametrize("arg, match", [
    ("--batch_size=1.5", "'batch_size' must be an integer"),
    ("--batch_size=lots", "'batch_size' must be an integer"),
    ("--compile=maybe", "'compile' must be true or false"),
    ("--learning_rate=fast", "'learning_rate' must be a number"),
    ("--batch_size", "must look like --key=value"),
    ("batch_size=3", "must look like --key=value"),
])
def test_bad_overrides(arg: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        parse_overrides([arg])


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(UserError,
                       match="unknown key 'learning_rat' \\(did you mean 'learning_rate'\\?\\)"):
        parse_overrides(["--learning_rat=1e-3"])


def test_typed_values_are_checked_without_conversion_surprises() -> None:
    assert coerce("learning_rate", 1) == 1.0
    with pytest.raises(UserError):
        coerce("batch_size", True)
    with pytest.raises(UserError):
        coerce("compile", 1)
    with pytest.raises(UserError):
        coerce("dataset", 3)


def test_yaml_then_values_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("batch_size: 16\nn_layer: 2\nlearning_rate: 3.0e-4\n")
    cfg = load_train_config(path, ["--n_layer=3"], n_layer=5, batch_size=8)
    assert (cfg.batch_size, cfg.n_layer, cfg.learning_rate) == (8, 3, 3e-4)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_train_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: [1,\n")
    with pytest.raises(UserError, match="bad.yaml:.*malformed YAML"):
        load_train_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="top level must be a mapping"):
        load_train_config(listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("n_layers: 4\n")
    with pytest.raises(UserError,
                       match="unknown.yaml: unknown key 'n_layers' \\(did you mean 'n_layer'"):
        load_train_config(unknown)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("n_head: 3\n")
    with pytest.raises(UserError, match="invalid.yaml: 'n_embd' \\(128\\) must be divisible"):
        load_train_config(invalid)


def test_from_mapping_validates() -> None:
    with pytest.raises(UserError, match="'eval_iters' must be a positive integer"):
        from_mapping({"eval_iters": 0})


def test_the_device_is_resolved_in_one_place() -> None:
    """'auto' is decided by config.resolve_device alone (the loop, the trainable, sample and
    eval call it): no other module picks CUDA-or-CPU itself."""
    from pathlib import Path

    from tune_gpt.config import resolve_device

    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"  # no GPU here
    with pytest.raises(UserError, match="--device is cuda but no CUDA GPU is visible"):
        resolve_device("cuda", "--device")
    with pytest.raises(UserError, match="'device' must be one of auto, cpu, cuda, got 'tpu'"):
        resolve_device("tpu")
    root = Path(__file__).resolve().parents[1]
    deciding = [str(f.relative_to(root)) for pkg in ("tune_gpt", "trainables")
                for f in (root / pkg).rglob("*.py")
                if 'is_available() else "cpu"' in f.read_text()]
    assert deciding == ["tune_gpt/config.py"]
