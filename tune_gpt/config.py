"""Training configuration: one typed dataclass with nanoGPT's knob names.

A config comes from defaults, then an optional YAML file (keys map 1:1 onto the fields),
then `--key=value` overrides in nanoGPT's style. A nanoGPT config/*.py file works too: it is
parsed, never run (tune_gpt.nanogpt_config). Every value is type-checked and every
rule is checked in `validate`, whose messages name the key the user wrote.

    cfg = load_train_config("my.yaml", ["--batch_size=16", "--max_iters=1000"])
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from tune_gpt.errors import UserError, closest

DTYPES = ("float32", "bfloat16", "float16")
PARAMETRIZATIONS = ("sp", "mup")
DEVICES = ("auto", "cpu", "cuda")
TOKENIZERS = ("auto", "char", "gpt2")   # the `tokenizer` knob
SCHEDULES = ("cosine", "wsd")           # the `lr_schedule` knob (tune_gpt.schedule draws them)


def knob(default: Any, doc: str) -> Any:
    """A config field with its documentation in the field's metadata (shown by --help)."""
    return field(default=default, metadata={"doc": doc})


# µP's tunable multipliers: model keys, they transfer across width, 1 = none
MUP_MULTS = ("mup_input_mult", "mup_output_mult", "mup_init_mult", "mup_attn_mult")

def tokens_per_iter(knobs: Mapping[str, Any]) -> int:
    """Tokens one optimizer step consumes, for a config or a plain mapping of its knobs (a
    trials-table row, a plan's config): batch_size x block_size x accumulation."""
    return int(knobs.get("batch_size", 1)) * int(knobs.get("block_size", 1)) * \
        int(knobs.get("gradient_accumulation_steps", 1))


@dataclass
class TrainConfig:
    """Every knob of one GPT training run. Defaults: nanoGPT's CPU recipe for shakespeare_char."""

    # --- data ---
    dataset: str = knob(
        "shakespeare_char", "shakespeare_char, a UTF-8 text file, or a nanoGPT data folder "
        "(train.bin, val.bin, optional meta.pkl).")
    tokenizer: str = knob(
        "auto", "auto | char | gpt2: how a text file becomes tokens (auto = char); a nanoGPT "
        "folder brings its own (meta.pkl = char, none = GPT-2 BPE).")
    out_dir: str = knob("out", "Where `tune-gpt train` writes its checkpoints: ckpt.pt (the "
                               "lowest val loss) and last.pt (to resume).")

    # --- batch ---
    batch_size: int = knob(12, "Sequences per micro-batch. Memory grows linearly with it.")
    block_size: int = knob(64, "Context length in tokens. Attention cost grows with its square.")
    gradient_accumulation_steps: int = knob(
        1, "Micro-batches summed before each optimizer step: same tokens/iter, less memory.")

    # --- model ---
    n_layer: int = knob(4, "Transformer blocks.")
    n_head: int = knob(4, "Attention heads per block; n_embd must be divisible by it.")
    n_embd: int = knob(128, "Embedding width (the model's hidden size).")
    dropout: float = knob(
        0.0, "Dropout probability in attention, MLP and embeddings (0 for pretraining speed).")
    bias: bool = knob(
        False, "Biases in Linear and LayerNorm layers (False is slightly better and faster).")
    parametrization: str = knob(
        "sp", "sp | mup: sp is nanoGPT's; mup (µP) keeps the best learning rate fixed as "
        "n_embd grows, so a search on a narrow proxy transfers (`tune-gpt transfer`).")
    mup_base_width: int = knob(
        128, "µP only: the width at which µP equals sp; hidden learning rates scale by "
        "mup_base_width / n_embd.")
    mup_base_head_size: int = knob(
        0, "µP only: the head size of the base model; attention logits are scaled by "
        "sqrt(mup_base_head_size) / head size. 0: mup_base_width / n_head (the base model "
        "had this model's n_head). `tune-gpt transfer` writes the proxy's head size here.")
    mup_input_mult: float = knob(
        1.0, "µP only: multiplies the input embeddings (token + position); tunable on the "
        "proxy, and it transfers across width.")
    mup_output_mult: float = knob(
        1.0, "µP only: multiplies the readout (logits = lm_head(x) * mup_output_mult * "
        "mup_base_width / n_embd); tunable on the proxy, and it transfers across width.")
    mup_init_mult: float = knob(
        1.0, "µP only: multiplies the hidden matrices' init std (0.02 / sqrt(n_embd / "
        "mup_base_width)); tunable on the proxy, and it transfers across width.")
    mup_attn_mult: float = knob(
        1.0, "µP only: multiplies the attention logits (on top of sqrt(mup_base_head_size) / "
        "head size); tunable on the proxy, and it transfers across width.")

    # --- optimizer (AdamW) ---
    learning_rate: float = knob(1e-3, "Peak learning rate, reached after warmup.")
    weight_decay: float = knob(
        0.1, "AdamW weight decay, applied to 2-D weights only (not biases, norms).")
    beta1: float = knob(0.9, "AdamW beta1.")
    beta2: float = knob(0.99, "AdamW beta2 (0.99 suits small token counts per iteration).")
    grad_clip: float = knob(
        1.0, "Clip the global gradient norm to this value; 0 disables clipping.")

    # --- learning-rate schedule ---
    warmup_iters: int = knob(
        100, "Linear warmup from 0 to learning_rate over this many iterations.")
    decay_lr: bool = knob(
        True, "Decay the learning rate to min_lr after warmup, shaped by lr_schedule; false "
              "keeps learning_rate from the first step (no warmup), as nanoGPT.")
    lr_schedule: str = knob(
        "cosine", "cosine | wsd: the decay's shape. cosine: nanoGPT's, from learning_rate "
                  "down to min_lr at lr_decay_iters. wsd: warmup-stable-decay (Hägele et al. "
                  "2024): learning_rate held, then cooled down to min_lr at lr_decay_iters "
                  "over its last cooldown_frac; nanoGPT has no wsd.")
    cooldown_frac: float = knob(
        0.2, "wsd only: the share of lr_decay_iters spent cooling down, in (0, 1]; 0.2 as "
             "Hägele et al. 2024 (arXiv:2405.18392) recommend. Shape 1 - sqrt(progress), "
             "which beat linear there. Never starts before warmup ends.")
    lr_decay_iters: int = knob(
        2000, "Iteration where the learning rate reaches min_lr (usually = max_iters).")
    min_lr: float = knob(1e-4, "Floor of the learning rate (usually learning_rate / 10).")

    # --- run length and evaluation ---
    max_iters: int = knob(2000, "Optimizer steps to train.")
    eval_interval: int = knob(
        250, "Evaluate train/val loss every this many iterations (and at the end).")
    eval_iters: int = knob(20, "Batches averaged per loss estimate at each evaluation.")
    log_interval: int = knob(10, "Print a training-loss line every this many iterations.")

    # --- system ---
    dtype: str = knob(
        "float32", "float32 | bfloat16 | float16 (float16 uses a gradient scaler). Autocast on GPU.")
    compile: bool = knob(
        False, "torch.compile the model (faster on GPU; costs ~20 s of compile time first).")
    device: str = knob("auto", "auto | cpu | cuda (auto picks CUDA when present).")
    seed: int = knob(1337, "Seed for model init and batch sampling.")

    def tokens_per_iter(self) -> int:
        """Tokens consumed by one optimizer step."""
        return tokens_per_iter(vars(self))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types() -> dict[str, type]:
    # Annotations are strings under `from __future__ import annotations`; map them once.
    names = {"int": int, "float": float, "bool": bool, "str": str}
    return {f.name: names[str(f.type)] for f in fields(TrainConfig)}


FIELD_TYPES = _field_types()
_DOCS = {f.name: f.metadata.get("doc", "") for f in fields(TrainConfig)}
KNOBS = tuple(FIELD_TYPES)


def field_doc(name: str) -> str:
    """A knob's one-line documentation (its field metadata; --help and the README use it)."""
    return _DOCS.get(name, "")


# ----------------------------------------------------------------------------- parsing

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(key: str, value: Any, where: str = "") -> Any:
    """Type-check one knob's value, converting the obvious cases (an int for a float,
    '1e-3' from the command line). Raises UserError naming the key."""
    if key not in FIELD_TYPES:
        raise UserError(f"{where}unknown key '{key}'{closest(key, KNOBS)}; valid keys: "
                        f"see `tune-gpt train --help`")
    want = FIELD_TYPES[key]
    bad = UserError(f"{where}'{key}' must be {_type_name(want)}, got {value!r}")
    if isinstance(value, str) and want is not str:
        text = value.strip().lower()
        if want is bool:
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise bad
        try:
            number = float(text.replace("_", ""))
        except ValueError:
            raise bad from None
        value = number
    if want is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if want is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise bad
    if want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if not isinstance(value, str):
        raise bad
    return value


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[t]


def parse_overrides(args: Iterable[str]) -> dict[str, Any]:
    """['--batch_size=16', '--compile=false'] -> {'batch_size': 16, 'compile': False}.

    Values are parsed as literals of the field's type; nothing is evaluated."""
    out: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise UserError(f"override '{arg}' must look like --key=value (e.g. --batch_size=16)")
        key, _, value = arg[2:].partition("=")
        out[key] = coerce(key, value, where="command line: ")
    return out


def from_mapping(values: Mapping[str, Any], where: str = "") -> TrainConfig:
    """Build a validated TrainConfig from a mapping of knob -> value."""
    clean = {k: coerce(str(k), v, where) for k, v in values.items()}
    cfg = TrainConfig(**clean)
    validate(cfg, where)
    return cfg


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Safe-load a YAML file that must hold a mapping; errors name the file and line."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found; check the path")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{p}: not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{p}:{line}: malformed YAML ({problem}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: top level must be a mapping of key: value, got {type(data).__name__}")
    return data


def read_config_file(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """The knobs a config file sets (each type-checked; the rules come later, in `validate`)
    and notes on what was not taken as written. A `.py` file is a nanoGPT config, read
    without running it (tune_gpt.nanogpt_config); any other file is YAML, keys 1:1 knobs."""
    if str(path).endswith(".py"):
        from tune_gpt.nanogpt_config import read_nanogpt_config

        nano = read_nanogpt_config(path, TrainConfig().to_dict())
        where = {k: f"{path}:{line}: " for k, line in nano.lines.items()}
        return ({k: coerce(k, v, where.get(k, f"{path}: ")) for k, v in nano.all_knobs().items()},
                list(nano.notes))
    return {k: coerce(str(k), v, f"{path}: ") for k, v in read_yaml_mapping(path).items()}, []


def load_train_config_with_notes(path: str | Path | None = None, overrides: Iterable[str] = (),
                                 **values: Any) -> tuple[TrainConfig, list[str]]:
    """Defaults <- config file (YAML or nanoGPT .py) <- keyword values <- `--key=value`
    overrides, then validate. Also returns the file's notes (nanoGPT keys tune-gpt ignores)."""
    merged: dict[str, Any] = {}
    notes: list[str] = []
    if path is not None:
        knobs, notes = read_config_file(path)
        merged.update(knobs)
    merged.update(values)
    merged.update(parse_overrides(overrides))
    return from_mapping(merged, f"{path}: " if path else ""), notes


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                      **values: Any) -> TrainConfig:
    """Defaults <- config file <- keyword values <- `--key=value` overrides, then validate.

    A nanoGPT .py file's notes (keys tune-gpt ignores, ...) are printed to stderr, one line
    each; load_train_config_with_notes returns them instead."""
    cfg, notes = load_train_config_with_notes(path, overrides, **values)
    for note in notes:
        print(f"{path}: note: {note}", file=sys.stderr)
    return cfg


# ----------------------------------------------------------------------------- validation

def validate(cfg: TrainConfig, where: str = "") -> None:
    """Check every rule; the message names the key and says how to fix it."""

    def fail(msg: str) -> None:
        raise UserError(where + msg)

    for key in ("batch_size", "block_size", "gradient_accumulation_steps", "n_layer", "n_head",
                "n_embd", "max_iters", "eval_interval", "eval_iters", "log_interval",
                "mup_base_width"):
        if getattr(cfg, key) < 1:
            fail(f"'{key}' must be a positive integer, got {getattr(cfg, key)}")
    for key in ("warmup_iters", "lr_decay_iters", "mup_base_head_size"):
        if getattr(cfg, key) < 0:
            fail(f"'{key}' must be >= 0, got {getattr(cfg, key)}")
    for key in MUP_MULTS:
        if not getattr(cfg, key) > 0:
            fail(f"'{key}' must be > 0, got {getattr(cfg, key)}")
    if cfg.n_embd % cfg.n_head:
        fail(f"'n_embd' ({cfg.n_embd}) must be divisible by 'n_head' ({cfg.n_head}); "
             f"e.g. n_embd={cfg.n_head * max(1, round(cfg.n_embd / cfg.n_head))}")
    if not 0.0 <= cfg.dropout < 1.0:
        fail(f"'dropout' must be in [0, 1), got {cfg.dropout}")
    for key in ("learning_rate", "min_lr", "weight_decay", "grad_clip"):
        v = getattr(cfg, key)
        if not math.isfinite(v) or v < 0:
            fail(f"'{key}' must be a finite number >= 0, got {v}")
    if cfg.learning_rate <= 0:
        fail(f"'learning_rate' must be > 0, got {cfg.learning_rate}")
    if cfg.min_lr > cfg.learning_rate:
        fail(f"'min_lr' ({cfg.min_lr}) must not exceed 'learning_rate' ({cfg.learning_rate})")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(cfg, key) < 1.0:
            fail(f"'{key}' must be in [0, 1), got {getattr(cfg, key)}")
    if cfg.decay_lr and cfg.lr_decay_iters < cfg.warmup_iters:
        fail(f"'lr_decay_iters' ({cfg.lr_decay_iters}) must be >= 'warmup_iters' "
             f"({cfg.warmup_iters}); usually lr_decay_iters = max_iters")
    if cfg.lr_schedule not in SCHEDULES:
        fail(f"'lr_schedule' must be one of {', '.join(SCHEDULES)}, got {cfg.lr_schedule!r}")
    if not (math.isfinite(cfg.cooldown_frac) and 0.0 < cfg.cooldown_frac <= 1.0):
        fail(f"'cooldown_frac' must be in (0, 1] (the share of lr_decay_iters spent cooling "
             f"down; 0.2 is usual), got {cfg.cooldown_frac}")
    if cfg.parametrization not in PARAMETRIZATIONS:
        fail(f"'parametrization' must be one of {', '.join(PARAMETRIZATIONS)}, got "
             f"{cfg.parametrization!r}")
    if cfg.dtype not in DTYPES:
        fail(f"'dtype' must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    if cfg.tokenizer not in TOKENIZERS:
        fail(f"'tokenizer' must be one of {', '.join(TOKENIZERS)}, got {cfg.tokenizer!r}")
    if cfg.device not in DEVICES:
        fail(f"'device' must be one of {', '.join(DEVICES)}, got {cfg.device!r}")
    if not cfg.dataset:
        fail("'dataset' must name a dataset (shakespeare_char) or a text file")


def resolve_device(device: str, where: str = "'device'") -> str:
    """The device a run uses: 'auto' is CUDA when a CUDA GPU is visible, else the CPU. The
    one place that decides it (the loop, the trainable, sample and eval). UserError for an
    unknown device, or 'cuda' on a machine without a visible CUDA GPU; `where` names the
    setting in that message ('device', --device)."""
    if device not in DEVICES:
        raise UserError(f"{where} must be one of {', '.join(DEVICES)}, got {device!r}")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{where} is cuda but no CUDA GPU is visible; use auto or cpu")
    return device


def validate_for_device(cfg: TrainConfig, device: str) -> None:
    """Rules that depend on the hardware actually picked (called by the loop)."""
    import torch

    resolve_device(device)  # a GPU asked for must be there
    if device == "cpu" and cfg.dtype == "float16":
        raise UserError("'dtype' float16 is not supported for CPU training; "
                        "use float32 or bfloat16 on CPU, float16 on a GPU")
    if device == "cuda" and cfg.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise UserError("'dtype' bfloat16 is not supported by this GPU; use float16")


def check_block_size(cfg: TrainConfig, n_val_tokens: int) -> None:
    """block_size must fit in the validation split (the smaller one) with room to sample."""
    if cfg.block_size >= n_val_tokens:
        raise UserError(f"'block_size' ({cfg.block_size}) must be shorter than the validation "
                        f"split ({n_val_tokens} tokens); use a smaller block_size or more text")
