"""The training loop, as one function that `tune-gpt train`, the Ray trainable, the tests
and the benchmarks all call.

    from tune_gpt.config import TrainConfig
    from tune_gpt.train import train
    result = train(TrainConfig(dataset="input.txt", max_iters=200), log=print)
    print(result.summary())

    # stop early, checkpoint, resume: what a search trainable does
    def on_eval(record, checkpointer):
        checkpointer.save("ckpt.pt")
        return record.val_loss > 3.0        # True stops the run
    train(cfg, on_eval=on_eval, resume="ckpt.pt", threads=1)

Nothing here knows about Ray or MLflow. torch is imported inside the functions, so the
records (EvalRecord, TrainResult) can be imported without it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tune_gpt.checkpoint import CHECKPOINT_NAME, Checkpointer, check_resumable, resume_state

if TYPE_CHECKING:
    import torch

    from tune_gpt.config import TrainConfig
    from tune_gpt.data import PreparedData
    from tune_gpt.model import GPT

@dataclass
class EvalRecord:
    """One evaluation: what on_eval receives and what a search reports."""

    iter: int              # optimizer steps done
    tokens: int            # tokens trained on so far: iter * tokens_per_iter
    train_loss: float      # mean loss over eval_iters train batches (the same batches each time)
    val_loss: float        # same on the validation split
    lr: float              # learning rate of the last step
    tokens_per_s: float    # training throughput since the previous evaluation
    ms_per_iter: float     # mean time per step since the previous evaluation, eval excluded
    mfu: float             # model FLOPs utilisation, 0..1 (CPU: relative to a measured GEMM rate)
    peak_mem_bytes: int    # CUDA: torch.cuda.max_memory_allocated; CPU: the process's peak RSS
    elapsed_s: float       # wall time since train() was called
    eval_s: float          # seconds spent evaluating so far (included in elapsed_s)
    diverged: bool = False  # a training loss was NaN/inf; this is the run's last record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    iters: int
    tokens: int
    best_val_loss: float
    final: EvalRecord | None      # the last evaluation (None only if nothing was evaluated)
    records: list[EvalRecord]
    diverged: bool
    wall_s: float
    device: str
    n_params: int                 # without the position table, like nanoGPT
    checkpoint_path: str | None   # the last checkpoint written, if any
    stopped_early: bool = False   # on_eval returned True

    def summary(self) -> str:
        """One paragraph for the CLI."""
        how = "diverged (loss became NaN/inf) after" if self.diverged else \
            "stopped early after" if self.stopped_early else "trained"
        text = (f"{how} {self.iters} iterations ({self.tokens:,} tokens) on {self.device} "
                f"in {self.wall_s:.1f} s; {self.n_params / 1e6:.2f}M parameters.")
        if self.final is not None:
            f = self.final
            text += (f" Final train loss {f.train_loss:.4f}, val loss {f.val_loss:.4f} "
                     f"(best {self.best_val_loss:.4f}); {f.ms_per_iter:.1f} ms/iter, "
                     f"{f.tokens_per_s:,.0f} tokens/s, MFU {f.mfu:.1%}.")
        if self.checkpoint_path:
            text += f" Checkpoint: {self.checkpoint_path}"
        return text


def get_lr(it: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `it` (0-based): linear warmup over warmup_iters,
    then cosine decay to min_lr at lr_decay_iters, then min_lr. Constant if not decay_lr."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it >= cfg.lr_decay_iters:
        return cfg.min_lr
    progress = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


# ----------------------------------------------------------------------------- steps

def accumulate_gradients(model: GPT, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                         n_micro: int, autocast: contextlib.AbstractContextManager,
                         scaler: torch.amp.GradScaler) -> torch.Tensor:
    """Forward and backward `n_micro` micro-batches, leaving in .grad the gradient of their
    mean loss: each loss is divided by n_micro before backward, and backward adds into
    .grad, so k micro-batches of b sequences give the gradient of one batch of k*b.
    Returns the mean loss, detached, still on the device (reading it would sync)."""
    total = None
    for x, y in batches:
        with autocast:
            _, loss = model(x, y)
        scaler.scale(loss / n_micro).backward()
        total = loss.detach() if total is None else total + loss.detach()
    return total / n_micro


def evaluate(model: GPT, data: PreparedData, cfg: TrainConfig, device: str,
             autocast: contextlib.AbstractContextManager) -> tuple[float, float]:
    """(train, val) mean loss over eval_iters batches each. The batches come from a
    generator seeded afresh every time, so successive evaluations (and runs with the same
    seed and shape) are scored on the same text and differ only by the model."""
    import torch

    from tune_gpt.data import get_batch

    model.eval()
    losses = []
    with torch.no_grad():
        for split in ("train", "val"):
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            total = torch.zeros((), device=device)
            for _ in range(cfg.eval_iters):
                x, y = get_batch(data, split, cfg.batch_size, cfg.block_size, gen, device)
                with autocast:
                    _, loss = model(x, y)
                total += loss.float()
            losses.append(total.item() / cfg.eval_iters)
    model.train()
    return losses[0], losses[1]


def peak_memory_bytes(device: str) -> int:
    """CUDA: the allocator's peak since the run started. CPU: the peak resident set size of
    the whole process (Python, libraries and data included) over its lifetime, from
    getrusage; in a process that runs several trials it is the largest so far."""
    import torch

    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


# ----------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, *,
          on_eval: Callable[[EvalRecord, Checkpointer], bool | None] | None = None,
          resume: bool | str | Path | dict = False, threads: int | None = None,
          log: Callable[[str], None] | None = None, save: bool = False,
          data: PreparedData | None = None) -> TrainResult:
    """Train one GPT as `cfg` says and return what happened.

    on_eval   called after every evaluation (every eval_interval steps and at the last);
              returning True stops the run normally. Its Checkpointer can save the run.
    resume    True: OUT_DIR/ckpt.pt; a path; or an already loaded checkpoint dict.
    threads   torch CPU threads (torch.set_num_threads); None leaves torch's default.
    log       receives nanoGPT-style progress lines; None is silent.
    save      write OUT_DIR/ckpt.pt when val loss improves and at the end (the CLI).
    data      an already prepared dataset (else cfg.dataset is prepared).

    A NaN/inf training loss stops the run with diverged=True (no exception).
    torch.OutOfMemoryError propagates, after the failed run's tensors are released."""
    import torch

    try:
        return _train(cfg, on_eval=on_eval, resume=resume, threads=threads, log=log,
                      save=save, data=data)
    except torch.OutOfMemoryError as e:
        # The traceback keeps every frame of the failed run alive, and with them the model,
        # optimizer state and activations. Clearing the frames' locals frees them now,
        # before the caller (a trial, the next config) needs the memory.
        traceback.clear_frames(e.__traceback__)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise


def _train(cfg: TrainConfig, *, on_eval, resume, threads, log, save, data) -> TrainResult:
    import torch

    from tune_gpt.config import check_block_size, validate, validate_for_device
    from tune_gpt.data import get_batch, prepare
    from tune_gpt.estimate import cpu_peak_flops, gpu_peak_flops
    from tune_gpt.model import GPT, GPTConfig

    t_start = time.perf_counter()
    say = log or (lambda line: None)
    if threads:
        torch.set_num_threads(threads)
    validate(cfg)
    device = cfg.device if cfg.device != "auto" else \
        "cuda" if torch.cuda.is_available() else "cpu"
    validate_for_device(cfg, device)
    data = data or prepare(cfg.dataset, tokenizer=cfg.tokenizer)
    check_block_size(cfg, data.n_val)
    state = resume_state(resume, cfg)
    if state is not None:
        check_resumable(state, cfg, data)

    torch.manual_seed(cfg.seed)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls on tensor cores
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    model = GPT(GPTConfig(block_size=cfg.block_size, vocab_size=data.vocab_size,
                          n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                          dropout=cfg.dropout, bias=cfg.bias,
                          parametrization=cfg.parametrization,
                          mup_base_width=cfg.mup_base_width)).to(device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                           (cfg.beta1, cfg.beta2), device)
    # Only float16 needs loss scaling; a disabled scaler is a pass-through.
    scaler = torch.amp.GradScaler(device, enabled=cfg.dtype == "float16")
    generator = torch.Generator().manual_seed(cfg.seed)  # training batches only
    ckpt = Checkpointer(model, optimizer, scaler, cfg, data.meta(), generator)
    if state is not None:
        ckpt.load_state_dict(state)
        del state
    net = torch.compile(model) if cfg.compile else model
    autocast = contextlib.nullcontext() if cfg.dtype == "float32" else \
        torch.autocast(device, dtype=getattr(torch, cfg.dtype))

    n_params = model.get_num_params()
    tokens_per_iter = cfg.tokens_per_iter()
    sequences_per_iter = cfg.batch_size * cfg.gradient_accumulation_steps
    peak = gpu_peak_flops(torch.cuda.get_device_name())[0] if device == "cuda" else \
        cpu_peak_flops(torch.get_num_threads())
    say(f"{n_params / 1e6:.2f}M parameters; {data.name}: vocab {data.vocab_size}, "
        f"{data.n_train:,} train / {data.n_val:,} val tokens; tokens per iteration "
        f"{tokens_per_iter:,}; device {device}"
        + (f" ({torch.get_num_threads()} threads)" if device == "cpu" else "")
        + f", dtype {cfg.dtype}" + (f"; resuming at iter {ckpt.iter}" if ckpt.iter else ""))

    def micro_batches():
        for _ in range(cfg.gradient_accumulation_steps):
            yield get_batch(data, "train", cfg.batch_size, cfg.block_size, generator, device)

    records: list[EvalRecord] = []
    it, lr = ckpt.iter, get_lr(max(ckpt.iter - 1, 0), cfg)  # lr: that of the last step taken
    diverged = stopped = False
    eval_s = 0.0
    span_s, span_n = 0.0, 0  # training time and steps since the last evaluation
    log_s, log_n = 0.0, 0    # ... since the last log line
    save_path = Path(cfg.out_dir) / CHECKPOINT_NAME
    saved_iter = -1

    def measure() -> EvalRecord:
        nonlocal eval_s
        t0 = time.perf_counter()
        train_loss, val_loss = evaluate(net, data, cfg, device, autocast)
        eval_s += time.perf_counter() - t0
        s_per_iter = span_s / span_n if span_n else 0.0
        return EvalRecord(
            iter=it, tokens=it * tokens_per_iter, train_loss=train_loss, val_loss=val_loss,
            lr=lr, tokens_per_s=tokens_per_iter / s_per_iter if s_per_iter else 0.0,
            ms_per_iter=s_per_iter * 1e3,
            mfu=model.estimate_mfu(sequences_per_iter, s_per_iter, peak) if s_per_iter else 0.0,
            peak_mem_bytes=peak_memory_bytes(device),
            elapsed_s=time.perf_counter() - t_start, eval_s=eval_s, diverged=diverged)

    last = time.perf_counter()
    while it < cfg.max_iters:
        lr = get_lr(it, cfg)
        model.set_learning_rate(optimizer, lr)  # µP: hidden matrices get lr / m
        loss = accumulate_gradients(net, micro_batches(), cfg.gradient_accumulation_steps,
                                    autocast, scaler)
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)  # frees .grad instead of zero-filling it
        it += 1

        is_log = it % cfg.log_interval == 0
        is_eval = it % cfg.eval_interval == 0 or it == cfg.max_iters
        # Reading the loss waits for the GPU, so on CUDA it is read only when it is
        # printed or evaluated; on CPU there is nothing to wait for and every step is checked.
        if device == "cpu" or is_log or is_eval:
            lossf = loss.item()
            diverged = not math.isfinite(lossf)
        now = time.perf_counter()
        step_s, last = now - last, now
        span_s, span_n = span_s + step_s, span_n + 1
        log_s, log_n = log_s + step_s, log_n + 1
        if is_log or diverged:
            dt = log_s / log_n
            say(f"iter {it}: loss {lossf:.4f}, time {dt * 1e3:.1f}ms, "
                f"mfu {model.estimate_mfu(sequences_per_iter, dt, peak) * 100:.2f}%")
            log_s, log_n = 0.0, 0
        if not (is_eval or diverged):
            continue

        record = measure()
        records.append(record)
        ckpt.iter = it
        say(f"step {it}: train loss {record.train_loss:.4f}, val loss {record.val_loss:.4f}"
            + (" (diverged: the training loss is not finite)" if diverged else ""))
        if record.val_loss < ckpt.best_val_loss:
            ckpt.best_val_loss = record.val_loss
            if save and not diverged:
                say(f"saving checkpoint to {ckpt.save(save_path)}")
                saved_iter = it
        if on_eval is not None and on_eval(record, ckpt):
            stopped = True
        if diverged or stopped:
            break
        span_s, span_n = 0.0, 0
        last = time.perf_counter()  # evaluation time is not training time

    if not records:  # resumed from a finished run: still measure the model once
        records.append(measure())
        if on_eval is not None:  # a caller that reports every evaluation reports this one
            on_eval(records[-1], ckpt)
    if save and not diverged and saved_iter != it:
        say(f"saving checkpoint to {ckpt.save(save_path)}")
    return TrainResult(
        iters=it, tokens=it * tokens_per_iter, best_val_loss=ckpt.best_val_loss,
        final=records[-1], records=records, diverged=diverged,
        wall_s=time.perf_counter() - t_start, device=device, n_params=n_params,
        checkpoint_path=str(ckpt.last_path) if ckpt.last_path else None,
        stopped_early=stopped)
