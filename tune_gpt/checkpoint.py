"""The checkpoint format: everything needed to continue a run exactly where it stopped.

    ckpt = read_checkpoint("out/ckpt.pt")      # a UserError if missing or not one
    check_resumable(ckpt, cfg, data)          # same model shape, same vocabulary

A checkpoint holds only tensors and plain dicts/lists/strings/numbers, so it loads with
torch.load(weights_only=True): nothing in the file runs. The training loop (train.py)
writes it through a Checkpointer; sampling and the Ray trainable only read it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tune_gpt.errors import UserError

if TYPE_CHECKING:
    import torch

    from tune_gpt.config import TrainConfig
    from tune_gpt.data import PreparedData
    from tune_gpt.model import GPT

CHECKPOINT_NAME = "ckpt.pt"
# What must match between a checkpoint and the config that resumes it.
MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "parametrization",
              "mup_base_width")


class Checkpointer:
    """Everything needed to continue a run exactly where it stopped, handed to on_eval.

    The batch generator's state and torch's RNG state are part of it, so a resumed run
    draws the same batches (and dropout masks) as an uninterrupted one. Only tensors and
    plain dicts/lists/strings/numbers are stored, so torch.load(weights_only=True) reads it."""

    def __init__(self, model: GPT, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, cfg: TrainConfig, meta: dict,
                 generator: torch.Generator):
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.cfg, self.meta, self.generator = cfg, meta, generator
        self.iter = 0
        self.best_val_loss = math.inf
        self.last_path: Path | None = None

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iter": self.iter,
            "best_val_loss": self.best_val_loss,
            "config": self.cfg.to_dict(),
            "meta": self.meta,
            "rng": {"batch": self.generator.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized()
                    else []},
        }

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint to `path` (a temporary file renamed into place)."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        self.last_path = path
        return path

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        import torch

        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.iter = int(ckpt["iter"])
        self.best_val_loss = float(ckpt.get("best_val_loss", math.inf))
        rng = ckpt.get("rng") or {}
        if "batch" in rng:
            self.generator.set_state(rng["batch"])
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by Checkpointer.save; a UserError if it is missing or not one."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; `tune-gpt train` writes "
                        f"OUT_DIR/{CHECKPOINT_NAME} (out_dir defaults to ./out)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — a truncated file, a text file, a foreign pickle...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path}: not a readable tune-gpt checkpoint ({reason[:200]})") from None
    missing = [k for k in ("model", "config", "meta", "iter") if not isinstance(ckpt, dict)
               or k not in ckpt]
    if missing:
        raise UserError(f"{path}: not a tune-gpt checkpoint (missing {', '.join(missing)})")
    return ckpt


def resume_state(resume: bool | str | Path | dict, cfg: TrainConfig) -> dict | None:
    if resume is False or resume is None:
        return None
    if isinstance(resume, dict):
        return resume
    return read_checkpoint(Path(cfg.out_dir) / CHECKPOINT_NAME if resume is True else resume)


def saved_model_keys(ckpt: dict) -> dict[str, Any]:
    """The model-shape knobs (MODEL_KEYS) a checkpoint was trained with; one written before a
    knob existed (µP's) had that knob's default."""
    from tune_gpt.config import TrainConfig

    defaults = TrainConfig().to_dict()
    return {k: ckpt["config"].get(k, defaults[k]) for k in MODEL_KEYS}


def check_resumable(ckpt: dict, cfg: TrainConfig, data: PreparedData) -> None:
    saved = saved_model_keys(ckpt)
    for key in MODEL_KEYS:
        had = saved[key]
        if had != getattr(cfg, key):
            raise UserError(f"cannot resume: the checkpoint has {key}={had} "
                            f"but the config says {key}={getattr(cfg, key)}; resume with the "
                            f"same model shape")
    if ckpt["meta"].get("tokenizer", "char") != data.tokenizer or \
            ckpt["meta"].get("vocab_size", data.vocab_size) != data.vocab_size or \
            list(ckpt["meta"].get("itos", [])) != data.itos():
        raise UserError(f"cannot resume: the checkpoint's vocabulary differs from "
                        f"{data.name}'s; resume on the dataset it was trained on")
