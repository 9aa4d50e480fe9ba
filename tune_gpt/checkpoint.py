"""The checkpoint format: the best model a user keeps, and the last state a run resumes from.

    ckpt = read_checkpoint("out/ckpt.pt")      # a UserError if missing or not one
    model = model_from_checkpoint(ckpt, "out/ckpt.pt")
    check_resumable(ckpt, cfg, data)          # same model shape, same vocabulary

`tune-gpt train` writes two files into out_dir, because on a small corpus the end of a run
is often not its best (it overfits) and the best must not be lost:

- `ckpt.pt` (BEST_NAME): the model of the lowest validation loss so far, with its config,
  vocabulary and iteration. What `tune-gpt sample` and `tune-gpt eval` take. Written when
  the validation loss improves (nanoGPT's always_save_checkpoint = False).
- `last.pt` (LAST_NAME): the whole state at the latest evaluation (model, optimizer,
  loss scaler, iteration, best loss so far, RNG states). What `--resume` continues from.

Both hold only tensors and plain dicts/lists/strings/numbers, so they load with
torch.load(weights_only=True): nothing in the file runs. The training loop (train.py) writes
them through a Checkpointer; sampling, evaluation and the Ray trainable only read them.
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

BEST_NAME = "ckpt.pt"    # the best-validation model: what a user samples and evaluates
LAST_NAME = "last.pt"    # the latest full state: what a resume continues from
CHECKPOINT_NAME = BEST_NAME  # the name users and older callers know
# What must match between a checkpoint and the config that resumes it.
MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "parametrization",
              "mup_base_width", "mup_base_head_size", "mup_input_mult", "mup_output_mult",
              "mup_init_mult", "mup_attn_mult")
_WRITTEN_BY = (f"`tune-gpt train` writes OUT_DIR/{BEST_NAME} (the best model) and "
               f"OUT_DIR/{LAST_NAME} (to resume from); out_dir defaults to ./out")


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
        self.last_path: Path | None = None   # the last full state written (save)
        self.best_path: Path | None = None   # the last model written (save_model)

    def model_dict(self) -> dict[str, Any]:
        """The model and what it takes to use it (shape, vocabulary): sample and eval read
        this much, whichever file they are given."""
        return {"model": self.model.state_dict(), "iter": self.iter,
                "best_val_loss": self.best_val_loss, "config": self.cfg.to_dict(),
                "meta": self.meta}

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {
            **self.model_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {"batch": self.generator.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized()
                    else []},
        }

    def save(self, path: str | Path) -> Path:
        """Write the whole state (a resumable checkpoint) to `path`."""
        self.last_path = _write(self.state_dict(), path)
        return self.last_path

    def save_model(self, path: str | Path) -> Path:
        """Write the model alone (no optimizer: a third of the size under AdamW) to `path`:
        the best model's file, which nothing resumes from."""
        self.best_path = _write(self.model_dict(), path)
        return self.best_path

    def after_eval(self, val_loss: float, *, diverged: bool,
                   out_dir: str | Path | None) -> Path | None:
        """The checkpoint step of the loop, after each evaluation: note the best val loss;
        with an out_dir, write the model to ckpt.pt when it improved (nanoGPT's
        always_save_checkpoint = False: the end of a run that overfits does not replace its
        best) and the whole state to last.pt (a resume continues from there, so an
        interrupted run loses at most one eval_interval). A diverged model's weights are
        NaN: neither file is written, and last.pt keeps the state before.
        Returns the best model's file when it was written."""
        improved = val_loss < self.best_val_loss  # False for NaN
        if improved:
            self.best_val_loss = val_loss
        if out_dir is None or diverged:
            return None
        best = self.save_model(Path(out_dir) / BEST_NAME) if improved else None
        self.save(Path(out_dir) / LAST_NAME)
        return best

    def save_trial(self, path: str | Path, val_loss: float) -> None:
        """A search trial's files after one evaluation: the whole state at `path` (what a
        retried or resumed trial continues from) and, when this evaluation is the trial's
        best so far, the model alone at best_model_path(path) (what the search hands back)."""
        self.save(path)
        if math.isfinite(val_loss) and val_loss <= self.best_val_loss:
            self.save_model(best_model_path(path))

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


def best_model_path(path: str | Path) -> Path:
    """Where a search trial whose state is at `path` (<trial>.pt) keeps its best model."""
    p = Path(path)
    return p.with_name(p.stem + ".best" + p.suffix)


def evals_log(ckpt_path: str | Path) -> Path:
    """A search trial's evaluation log, beside its checkpoint: every report, one JSON line
    each. Ray restarts a trial with no checkpoint of its own (this one keeps its own) from an
    empty progress.csv, so the reports before a resume survive only here."""
    return Path(ckpt_path).with_suffix(".evals.jsonl")


def keep_evals(ckpt_path: str | Path, up_to_iter: int) -> None:
    """A trial (re)starting: its log keeps the reports its checkpoint holds (iter <=
    up_to_iter), none when it starts afresh (up_to_iter 0)."""
    import json

    log = evals_log(ckpt_path)
    rows = [r for r in read_evals(ckpt_path) if int(r.get("iter") or 0) <= up_to_iter] \
        if up_to_iter > 0 else []
    tmp = log.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, log)


def log_eval(ckpt_path: str | Path, row: dict[str, Any]) -> None:
    import json

    with open(evals_log(ckpt_path), "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def read_evals(ckpt_path: str | Path) -> list[dict[str, Any]]:
    """The logged reports (a torn last line, from a crash mid-write, is left out)."""
    import json

    out = []
    log = evals_log(ckpt_path)
    for line in (log.read_text().splitlines() if log.is_file() else []):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _write(state: dict[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file renamed into place: a reader (a resume after a crash,
    a sample while training runs) never sees half a file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by a Checkpointer (either file); a UserError if it is
    missing or not one."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; {_WRITTEN_BY}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — a truncated file, a text file, a foreign pickle...
        raise UserError(f"{path}: not a readable tune-gpt checkpoint ({_why_unreadable(e)}); "
                        f"pass a {BEST_NAME} or {LAST_NAME} that `tune-gpt train` wrote") \
            from None
    missing = [k for k in ("model", "config", "meta", "iter") if not isinstance(ckpt, dict)
               or k not in ckpt]
    if missing:
        raise UserError(f"{path}: not a tune-gpt checkpoint (missing {', '.join(missing)}); "
                        f"pass a {BEST_NAME} or {LAST_NAME} that `tune-gpt train` wrote")
    return ckpt


def _why_unreadable(e: Exception) -> str:
    """torch.load's failure in a few words. A file that is not a pickle torch wrote (text,
    a truncated or foreign file) fails as "Weights only load failed", with advice to turn
    weights_only off that fits a trusted foreign pickle, not a corrupt file: keep the
    unpickler's own reason instead."""
    text = str(e).strip()
    if isinstance(e, EOFError):
        return "empty or cut short"
    if "Weights only load failed" in text:
        detail = text.partition("WeightsUnpickler error:")[2].strip().split("\n", 1)[0]
        return "corrupt, or not a file torch.save wrote" + (f": {detail[:120]}" if detail else "")
    return (text.splitlines() or [type(e).__name__])[0][:200]


def resume_state(resume: bool | str | Path | dict, cfg: TrainConfig) -> dict | None:
    """The state a run continues from: True means OUT_DIR/last.pt (never the best model,
    which is usually an earlier iteration and has no optimizer state)."""
    if resume is False or resume is None:
        return None
    if isinstance(resume, dict):
        state, where = resume, "the checkpoint"
    else:
        path = Path(cfg.out_dir) / LAST_NAME if resume is True else Path(resume)
        state, where = read_checkpoint(path), str(path)
    if "optimizer" not in state:
        raise UserError(f"cannot resume from {where}: it holds a model only (the best one, "
                        f"no optimizer state); resume from the {LAST_NAME} beside it")
    return state


def saved_model_keys(ckpt: dict) -> dict[str, Any]:
    """The model-shape knobs (MODEL_KEYS) a checkpoint was trained with; one written before a
    knob existed (µP's) had that knob's default."""
    from tune_gpt.config import TrainConfig

    defaults = TrainConfig().to_dict()
    return {k: ckpt["config"].get(k, defaults[k]) for k in MODEL_KEYS}


def model_from_checkpoint(ckpt: dict, path: str | Path) -> GPT:
    """The checkpoint's model on the CPU, dropout off; a UserError (naming `path`) if its
    weights do not fit the shape its config records."""
    from tune_gpt.model import GPT, GPTConfig

    meta = ckpt["meta"]
    vocab_size = int(meta.get("vocab_size") or len(meta["itos"]))
    try:
        model = GPT(GPTConfig(vocab_size=vocab_size, dropout=0.0, **saved_model_keys(ckpt)))
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path}: checkpoint does not match its config ({reason[:200]}); "
                        f"pass a {BEST_NAME} or {LAST_NAME} that `tune-gpt train` wrote") from None
    return model


def same_vocabulary(meta: dict, data: PreparedData) -> bool:
    """Whether a checkpoint (its meta) reads `data`'s token ids as the same tokens."""
    return meta.get("tokenizer", "char") == data.tokenizer and \
        meta.get("vocab_size", data.vocab_size) == data.vocab_size and \
        list(meta.get("itos", [])) == data.itos()


def check_resumable(ckpt: dict, cfg: TrainConfig, data: PreparedData) -> None:
    saved = saved_model_keys(ckpt)
    for key in MODEL_KEYS:
        had = saved[key]
        if had != getattr(cfg, key):
            raise UserError(f"cannot resume: the checkpoint has {key}={had} "
                            f"but the config says {key}={getattr(cfg, key)}; resume with the "
                            f"same model shape")
    if not same_vocabulary(ckpt["meta"], data):
        raise UserError(f"cannot resume: the checkpoint's vocabulary differs from "
                        f"{data.name}'s; resume on the dataset it was trained on")
