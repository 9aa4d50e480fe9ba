"""The training loop, as one function that `tune-gpt train`, the Ray trainable, the tests
and the benchmarks all call.

    from tune_gpt.config import TrainConfig
    from tune_gpt.train import train
    result = train(TrainConfig(dataset="input.txt", max_iters=200), log=print, save=True)
    print(result.summary())     # out/ckpt.pt: the best model; out/last.pt: to resume from

    # stop early, checkpoint, resume: what a search trainable does
    def on_eval(record, checkpointer):
        checkpointer.save("trial.pt")
        return record.val_loss > 3.0        # True stops the run
    train(cfg, on_eval=on_eval, resume="trial.pt", threads=1)

The loop reads as nanoGPT's train.py does: set_up (data, model, optimizer), then per
iteration get_lr (tune_gpt.schedule's lr_at: cosine or WSD), optimization_step (gradient
accumulation, clipping) and a log line; every eval_interval steps, measure (estimate_loss,
timings) and the checkpoint step (Checkpointer.after_eval: the best model, and the state to
resume from). Nothing here knows about Ray or MLflow; torch is imported inside the
functions, so the records (EvalRecord, TrainResult) import without it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tune_gpt.checkpoint import BEST_NAME, Checkpointer, check_resumable, resume_state
from tune_gpt.estimate import peak_memory_bytes
from tune_gpt.evaluate import estimate_loss
from tune_gpt.retime import Follow
from tune_gpt.schedule import lr_at as get_lr

if TYPE_CHECKING:
    import torch

    from tune_gpt.config import TrainConfig
    from tune_gpt.data import PreparedData
    from tune_gpt.model import GPT
    from tune_gpt.rung_read import RungReads


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
    stable_val_loss: float | None = None  # read after a cool-down branch: the plateau's val
    read_after: int = 0    # ... and that branch's steps (tune_gpt.rung_read); 0: a plain read
    read_tokens: int = 0   # tokens trained in such branches so far (spent, their model dropped)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def model_val_loss(self) -> float:  # the held weights' (a rung read's branch is dropped)
        return self.stable_val_loss if self.read_after else self.val_loss


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
    checkpoint_path: str | None   # the model to use: OUT_DIR/ckpt.pt (save), else on_eval's
    stopped_early: bool = False   # on_eval returned True
    last_checkpoint_path: str | None = None  # the state to resume from (OUT_DIR/last.pt)

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
            if self.last_checkpoint_path and self.last_checkpoint_path != self.checkpoint_path:
                text += f" (lowest val loss); to resume: {self.last_checkpoint_path}"
        return text


# ----------------------------------------------------------------------------- set-up

@dataclass
class Run:
    """What set_up builds: the data, the model and everything that trains it."""

    cfg: TrainConfig
    device: str                       # cuda | cpu (auto resolved)
    data: PreparedData
    model: GPT                        # the module whose weights are saved
    net: Any                          # what runs forward: model, or torch.compile(model)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler      # float16 loss scaling; a pass-through otherwise
    generator: torch.Generator        # draws the training batches, and nothing else
    ckpt: Checkpointer                # iteration, best val loss; saves and restores the run
    autocast: contextlib.AbstractContextManager
    peak_flops: float                 # the device's peak, for MFU

    def micro_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from tune_gpt.data import get_batch

        for _ in range(self.cfg.gradient_accumulation_steps):
            yield get_batch(self.data, "train", self.cfg.batch_size, self.cfg.block_size,
                            self.generator, self.device)

    def mfu(self, s_per_iter: float) -> float:
        sequences = self.cfg.batch_size * self.cfg.gradient_accumulation_steps
        return self.model.estimate_mfu(sequences, s_per_iter, self.peak_flops) \
            if s_per_iter else 0.0

    def describe(self) -> str:
        """The first log line: what is trained on what."""
        import torch

        d = self.data
        return (f"{self.model.get_num_params() / 1e6:.2f}M parameters; {d.name}: vocab "
                f"{d.vocab_size}, {d.n_train:,} train / {d.n_val:,} val tokens; tokens per "
                f"iteration {self.cfg.tokens_per_iter():,}; device {self.device}"
                + (f" ({torch.get_num_threads()} threads)" if self.device == "cpu" else "")
                + f", dtype {self.cfg.dtype}"
                + (f"; resuming at iter {self.ckpt.iter}" if self.ckpt.iter else ""))


def set_up(cfg: TrainConfig, *, resume: bool | str | Path | dict = False,
           threads: int | None = None, data: PreparedData | None = None) -> Run:
    """Check the config, prepare the data, build the model and optimizer, and restore them
    (with the RNG states) when resuming. Every check runs before anything is trained."""
    import torch

    from tune_gpt.config import check_block_size, resolve_device, validate, validate_for_device
    from tune_gpt.data import prepare
    from tune_gpt.estimate import cpu_peak_flops, gpu_peak_flops
    from tune_gpt.model import GPT, GPTConfig

    if threads:
        torch.set_num_threads(threads)
    validate(cfg)
    device = resolve_device(cfg.device)
    validate_for_device(cfg, device)
    state = resume_state(resume, cfg)  # a missing state is said before any data is fetched
    data = data or prepare(cfg.dataset, tokenizer=cfg.tokenizer)
    check_block_size(cfg, data.n_val)
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
                          mup_base_width=cfg.mup_base_width,
                          mup_base_head_size=cfg.mup_base_head_size,
                          mup_input_mult=cfg.mup_input_mult,
                          mup_output_mult=cfg.mup_output_mult,
                          mup_init_mult=cfg.mup_init_mult,
                          mup_attn_mult=cfg.mup_attn_mult)).to(device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                           (cfg.beta1, cfg.beta2), device)
    scaler = torch.amp.GradScaler(device, enabled=cfg.dtype == "float16")
    generator = torch.Generator().manual_seed(cfg.seed)
    ckpt = Checkpointer(model, optimizer, scaler, cfg, data.meta(), generator)
    if state is not None:
        ckpt.load_state_dict(state)
    return Run(
        cfg=cfg, device=device, data=data, model=model,
        net=torch.compile(model) if cfg.compile else model, optimizer=optimizer,
        scaler=scaler, generator=generator, ckpt=ckpt,
        autocast=contextlib.nullcontext() if cfg.dtype == "float32" else
        torch.autocast(device, dtype=getattr(torch, cfg.dtype)),
        peak_flops=gpu_peak_flops(torch.cuda.get_device_name())[0] if device == "cuda"
        else cpu_peak_flops(torch.get_num_threads()))


# ----------------------------------------------------------------------------- steps

def optimization_step(run: Run, lr: float) -> torch.Tensor:
    """One optimizer step at learning rate `lr`: gradients of gradient_accumulation_steps
    micro-batches, clipped to grad_clip, applied, then freed. Returns the mean training
    loss, still on the device (reading it would wait for the GPU)."""
    import torch

    cfg, optimizer, scaler = run.cfg, run.optimizer, run.scaler
    run.model.set_learning_rate(optimizer, lr)  # µP: hidden matrices get lr / m
    loss = accumulate_gradients(run.net, run.micro_batches(), cfg.gradient_accumulation_steps,
                                run.autocast, scaler)
    if cfg.grad_clip > 0:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)  # frees .grad instead of zero-filling it
    return loss


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


class _Clock:
    """Where the time goes: throughput and MFU count training steps only; elapsed_s all."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.eval_s = 0.0                  # spent evaluating so far
        self.span_s, self.span_n = 0.0, 0  # training time and steps since the last evaluation
        self.log_s, self.log_n = 0.0, 0    # ... since the last log line

    def step_done(self) -> None:
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        self.span_s, self.span_n = self.span_s + dt, self.span_n + 1
        self.log_s, self.log_n = self.log_s + dt, self.log_n + 1

    def take_log_span(self) -> float:
        """Mean seconds per step since the last log line; starts the next one."""
        dt = self.log_s / self.log_n
        self.log_s, self.log_n = 0.0, 0
        return dt

    def new_span(self) -> None:
        """Steps are timed from now: what came before (set-up, evaluation) is not training."""
        self.span_s, self.span_n = 0.0, 0
        self.last = time.perf_counter()


def measure(run: Run, clock: _Clock, it: int, lr: float, diverged: bool) -> EvalRecord:
    """Evaluate the model and time the steps since the last evaluation: one EvalRecord."""
    t0 = time.perf_counter()
    train_loss, val_loss = estimate_loss(run.net, run.data, run.cfg, run.device, run.autocast)
    clock.eval_s += time.perf_counter() - t0
    s_per_iter = clock.span_s / clock.span_n if clock.span_n else 0.0
    tokens_per_iter = run.cfg.tokens_per_iter()
    return EvalRecord(
        iter=it, tokens=it * tokens_per_iter, train_loss=train_loss, val_loss=val_loss, lr=lr,
        tokens_per_s=tokens_per_iter / s_per_iter if s_per_iter else 0.0,
        ms_per_iter=s_per_iter * 1e3, mfu=run.mfu(s_per_iter),
        peak_mem_bytes=peak_memory_bytes(run.device),
        elapsed_s=time.perf_counter() - clock.start, eval_s=clock.eval_s, diverged=diverged)


# ----------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, *,
          on_eval: Callable[[EvalRecord, Checkpointer], bool | None] | None = None,
          resume: bool | str | Path | dict = False, threads: int | None = None,
          log: Callable[[str], None] | None = None, save: bool = False,
          data: PreparedData | None = None,
          retime: Callable[[int, TrainConfig, float], TrainConfig | None] | None = None,
          reads: RungReads | None = None) -> TrainResult:
    """Train one GPT as `cfg` says and return what happened.

    on_eval   called after every evaluation (every eval_interval steps and at the last);
              returning True stops the run normally. Its Checkpointer can save the run.
    resume    True: OUT_DIR/last.pt; a path to a full state; or an already loaded one.
    threads   torch CPU threads (torch.set_num_threads); None leaves torch's default.
    log       receives nanoGPT-style progress lines; None is silent.
    save      write OUT_DIR/ckpt.pt (the model) when val loss improves and OUT_DIR/last.pt
              (the state to resume from) at every evaluation (the CLI).
    data      an already prepared dataset (else cfg.dataset is prepared).
    retime    called after every evaluation with (iteration, config, val loss); a config
              it returns is the run's (and its checkpoints') from the next step on: the
              search's final run refits its length (tune_gpt.retime.Retimer).
    reads     the evaluations a search's rungs read after a throwaway cool-down branch
              (a WSD trial's tune_gpt.rung_read.RungReads).

    A NaN/inf training loss stops the run with diverged=True (no exception).
    torch.OutOfMemoryError propagates, after the failed run's tensors are released."""
    import torch

    try:
        return _train(cfg, on_eval=on_eval, resume=resume, threads=threads, log=log,
                      save=save, data=data, retime=retime, reads=reads)
    except torch.OutOfMemoryError as e:
        # The traceback keeps every frame of the failed run alive, and with them the model,
        # optimizer state and activations. Clearing the frames' locals frees them now,
        # before the caller (a trial, the next config) needs the memory.
        traceback.clear_frames(e.__traceback__)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise


def _train(cfg: TrainConfig, *, on_eval, resume, threads, log, save, data,
           retime, reads) -> TrainResult:
    clock = _Clock()  # elapsed_s counts the set-up too
    say = log or (lambda line: None)
    run = set_up(cfg, resume=resume, threads=threads, data=data)
    say(run.describe())
    out_dir = Path(cfg.out_dir) if save else None
    records: list[EvalRecord] = []
    follow = Follow(retime) if retime is not None else None  # tune_gpt.retime

    def evaluation(it: int, lr: float, diverged: bool) -> bool:
        """Measure, report, checkpoint; True when on_eval asks to stop."""
        record = measure(run, clock, it, lr, diverged)
        if reads is not None and not diverged and it in reads.iters:
            record = reads.read(run, clock, it, record, optimization_step)  # after a cool-down
        elif reads is not None:  # the tokens its branches have cost so far
            record = replace(record, read_tokens=reads.spent(it, run.cfg))
        records.append(record)
        say(f"step {it}: train loss {record.train_loss:.4f}, val loss {record.val_loss:.4f}"
            + (" (diverged: the training loss is not finite)" if diverged else "")
            + (f" after a {record.read_after}-step cool-down branch (stable phase "
               f"{record.stable_val_loss:.4f})" if record.read_after else ""))
        run.ckpt.iter = it
        best = run.ckpt.after_eval(record.model_val_loss, diverged=diverged, out_dir=out_dir)
        if best is not None:
            say(f"saving checkpoint to {best}")
        stop = bool(on_eval is not None and on_eval(record, run.ckpt))
        if follow is not None and not stop:
            follow(run, it, record.model_val_loss, say)  # a new length; a cut from the best state
        return stop

    it = run.ckpt.iter
    lr = get_lr(max(it - 1, 0), cfg)  # that of the last step taken
    diverged = stopped = False
    clock.new_span()
    while it < run.cfg.max_iters:
        cfg = run.cfg  # a retimed run's from the step after the evaluation that retimed it
        lr = get_lr(it, cfg)
        loss = optimization_step(run, lr)
        it += 1
        clock.step_done()

        is_log = it % cfg.log_interval == 0
        is_eval = it % cfg.eval_interval == 0 or it == cfg.max_iters
        # Reading the loss waits for the GPU, so on CUDA it is read only when it is
        # printed or evaluated; on CPU there is nothing to wait for and every step is checked.
        if run.device == "cpu" or is_log or is_eval:
            lossf = loss.item()
            diverged = not math.isfinite(lossf)
        if is_log or diverged:
            dt = clock.take_log_span()
            say(f"iter {it}: loss {lossf:.4f}, time {dt * 1e3:.1f}ms, "
                f"mfu {run.mfu(dt) * 100:.2f}%")
        if is_eval or diverged:
            stopped = evaluation(it, lr, diverged)
            if diverged or stopped:
                break
            clock.new_span()

    if not records:  # resumed from a finished run: still measure the model once, and a
        evaluation(it, lr, diverged)  # caller that reports every evaluation reports it
    best = run.ckpt.best_path or (out_dir / BEST_NAME if out_dir is not None and
                                  (out_dir / BEST_NAME).is_file() else None)
    last = run.ckpt.last_path
    return TrainResult(
        iters=it, tokens=it * cfg.tokens_per_iter(), best_val_loss=run.ckpt.best_val_loss,
        final=records[-1], records=records, diverged=diverged,
        wall_s=time.perf_counter() - clock.start, device=run.device,
        n_params=run.model.get_num_params(),
        checkpoint_path=str(best or last) if best or last else None,
        stopped_early=stopped, last_checkpoint_path=str(last) if last else None)
