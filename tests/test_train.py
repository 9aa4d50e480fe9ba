"""The training loop: schedule, accumulation, checkpoints, divergence, records, a real run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from tune_gpt.config import TrainConfig
from tune_gpt.data import get_batch
from tune_gpt.errors import UserError
from tune_gpt.model import GPT, GPTConfig
from tune_gpt.schedule import lr_at
from tune_gpt.train import (
    EvalRecord,
    accumulate_gradients,
    get_lr,
    optimization_step,
    set_up,
    train,
)

# ----------------------------------------------------------------------------- schedule
# lr_at itself is tested point by point in test_schedule.py; here, that the loop steps with it.

def test_the_loop_applies_the_configured_schedule(tiny_config) -> None:
    """Every step's optimizer learning rate is lr_at's for the config's schedule: WSD holds
    learning_rate, then cools down to min_lr (cosine would already be decaying)."""
    cfg = tiny_config(max_iters=10, lr_decay_iters=10, warmup_iters=2, eval_interval=1,
                      lr_schedule="wsd", cooldown_frac=0.5)
    applied: dict[int, float] = {}

    def on_eval(record: EvalRecord, ckpt) -> None:
        applied[record.iter - 1] = ckpt.optimizer.param_groups[0]["lr"]
        assert record.lr == applied[record.iter - 1]

    train(cfg, threads=1, on_eval=on_eval)
    assert applied == {it: lr_at(it, cfg) for it in range(10)}
    assert [applied[it] for it in (2, 3, 4, 5)] == [cfg.learning_rate] * 4  # the plateau
    assert applied[9] < applied[6] < cfg.learning_rate  # the cool-down
    cosine = TrainConfig(**{**cfg.to_dict(), "lr_schedule": "cosine"})
    assert lr_at(4, cosine) < cfg.learning_rate  # so the test tells the schedules apart


# ----------------------------------------------------------------------------- accumulation

def test_accumulating_4x4_gives_the_gradients_of_one_batch_of_16(shakespeare) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=65, n_layer=2, n_head=2, n_embd=32))
    x, y = get_batch(shakespeare, "train", 16, 32, torch.Generator().manual_seed(3))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    nothing = torch.autocast("cpu", enabled=False)

    loss_16 = accumulate_gradients(model, [(x, y)], 1, nothing, scaler)
    whole = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    micro = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 16, 4)]
    loss_4x4 = accumulate_gradients(model, micro, 4, nothing, scaler)

    assert loss_4x4.item() == pytest.approx(loss_16.item(), abs=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, whole[name], rtol=1e-5, atol=1e-7, msg=name)
    # A plain sum of the micro-batch losses (no 1/4) would be 4x off: the test can tell.
    head = whole["transformer.wte.weight"]  # tied with lm_head.weight
    assert not torch.allclose(head * 4, head)


def test_the_loop_is_set_up_then_one_optimization_step_per_iteration(tiny_config) -> None:
    """train() is its named steps: set_up, then get_lr and optimization_step per iteration
    (evaluations draw no training batches and change no weights)."""
    cfg = tiny_config(max_iters=6, eval_interval=3, gradient_accumulation_steps=2, dropout=0.1)
    ended: dict[str, torch.Tensor] = {}
    train(cfg, threads=1, on_eval=lambda record, ckpt: ended.update(ckpt.model.state_dict()))
    run = set_up(cfg, threads=1)
    for it in range(cfg.max_iters):
        optimization_step(run, get_lr(it, cfg))
    for name, value in run.model.state_dict().items():
        torch.testing.assert_close(value, ended[name], rtol=0, atol=0, msg=name)


def test_tokens_per_iter_counts_accumulation(tiny_config) -> None:
    cfg = tiny_config(max_iters=4, eval_interval=4, gradient_accumulation_steps=3)
    result = train(cfg, threads=1)
    assert result.tokens == 4 * 8 * 32 * 3 == result.final.tokens


# ----------------------------------------------------------------------------- records

def test_records_and_progress_lines(tiny_config) -> None:
    lines: list[str] = []
    seen: list[EvalRecord] = []
    cfg = tiny_config(max_iters=25, eval_interval=10, log_interval=5)
    result = train(cfg, threads=1, log=lines.append,
                   on_eval=lambda record, ckpt: seen.append(record))
    assert [r.iter for r in result.records] == [10, 20, 25]  # every interval and the last
    assert seen == result.records and result.final is result.records[-1]
    for r in result.records:
        assert r.tokens == r.iter * cfg.tokens_per_iter()
        assert r.ms_per_iter > 0 and r.tokens_per_s == pytest.approx(
            cfg.tokens_per_iter() / r.ms_per_iter * 1e3)
        assert 0 < r.mfu < 1 and r.peak_mem_bytes > 10 * 2**20
        assert 0 < r.eval_s < r.elapsed_s and not r.diverged
        assert r.lr == pytest.approx(get_lr(r.iter - 1, cfg))
        assert set(r.to_dict()) == {"iter", "tokens", "train_loss", "val_loss", "lr",
                                    "tokens_per_s", "ms_per_iter", "mfu", "peak_mem_bytes",
                                    "elapsed_s", "eval_s", "diverged", "stable_val_loss",
                                    "read_after", "read_tokens"}
        assert r.stable_val_loss is None and r.read_after == r.read_tokens == 0  # no reads
    assert result.records[-1].eval_s > result.records[0].eval_s  # cumulative
    iters = [ln for ln in lines if ln.startswith("iter ")]
    assert len(iters) == 5
    assert re.fullmatch(r"iter 5: loss \d+\.\d{4}, time \d+\.\dms, mfu \d+\.\d\d%", iters[0])
    step = re.compile(r"step 10: train loss \d\.\d{4}, val loss \d\.\d{4}")
    assert any(step.fullmatch(ln) for ln in lines)
    assert result.best_val_loss == min(r.val_loss for r in result.records)
    assert result.iters == 25 and result.device == "cpu" and not result.diverged
    assert result.checkpoint_path is None and result.n_params > 0
    assert "trained 25 iterations" in result.summary()


def test_silent_without_log(tiny_config, capsys: pytest.CaptureFixture) -> None:
    train(tiny_config(max_iters=5, eval_interval=5), threads=1)
    assert capsys.readouterr().out == ""


def test_on_eval_returning_true_stops_early(tiny_config) -> None:
    result = train(tiny_config(max_iters=50, eval_interval=10), threads=1,
                   on_eval=lambda record, ckpt: record.iter >= 20)
    assert result.iters == 20 and result.stopped_early and not result.diverged
    assert [r.iter for r in result.records] == [10, 20]


# ----------------------------------------------------------------------------- failures

def test_divergence_stops_without_raising(tiny_config) -> None:
    seen: list[EvalRecord] = []
    result = train(tiny_config(max_iters=100, learning_rate=1e20, min_lr=0.0, grad_clip=0.0,
                               warmup_iters=0),
                   threads=1, on_eval=lambda record, ckpt: seen.append(record))
    assert result.diverged and result.iters < 100
    assert seen and seen[-1].diverged and seen[-1] is result.final
    assert not all(math.isfinite(v) for v in (seen[-1].train_loss, seen[-1].val_loss))
    assert "diverged" in result.summary()


def test_out_of_memory_propagates(tiny_config, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self, idx, targets=None):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(GPT, "forward", boom)
    with pytest.raises(torch.OutOfMemoryError, match="simulated"):
        train(tiny_config(), threads=1)


def test_device_and_size_rules_are_checked(tiny_config, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="float16 is not supported for CPU"):
        train(tiny_config(dtype="float16"))
    small = tmp_path / "small.txt"
    small.write_text("tiny text " * 20)  # 200 chars: 20 validation tokens
    with pytest.raises(UserError, match="'block_size' \\(32\\) must be shorter than the valid"):
        train(tiny_config(dataset=str(small)))


def test_bfloat16_autocast_trains_on_cpu(tiny_config) -> None:
    result = train(tiny_config(max_iters=4, eval_interval=4, dtype="bfloat16"), threads=1)
    assert math.isfinite(result.final.val_loss)


# ----------------------------------------------------------------------------- a real run

def test_short_run_on_tinyshakespeare_lowers_the_loss(tiny_config) -> None:
    cfg = tiny_config(max_iters=150, eval_interval=50, n_layer=1, n_embd=64, batch_size=32,
                      learning_rate=6e-3, warmup_iters=10, lr_decay_iters=150, min_lr=6e-4)
    result = train(cfg, threads=1)
    first, last = result.records[0], result.records[-1]
    assert math.log(65) - 0.2 > first.val_loss > last.val_loss  # started near uniform, improved
    assert last.val_loss < 2.6  # past unigram statistics (~3.3): it learned bigrams


def test_a_retime_hook_changes_the_run_length_and_its_checkpoints_keep_it(tiny_config) -> None:
    """train(retime=...): a config the hook returns after an evaluation is the run's from
    the next step on: its length, its schedule, and the config its checkpoints save."""
    cfg = tiny_config(max_iters=6, lr_decay_iters=6, warmup_iters=0, eval_interval=2)
    saved: list[int] = []
    lrs: dict[int, float] = {}

    def on_eval(record: EvalRecord, ckpt) -> None:
        saved.append(ckpt.cfg.max_iters)
        lrs[record.iter] = record.lr

    losses: list[float] = []

    def retime(it: int, c: TrainConfig, val_loss: float):
        losses.append(val_loss)
        if it == 2:
            return TrainConfig(**{**c.to_dict(), "max_iters": 10, "lr_decay_iters": 10})
        return None

    result = train(cfg, threads=1, on_eval=on_eval, retime=retime)
    assert result.iters == 10 and saved == [6, 10, 10, 10, 10]
    assert losses == [r.val_loss for r in result.records]  # each evaluation's val loss
    longer = TrainConfig(**{**cfg.to_dict(), "max_iters": 10, "lr_decay_iters": 10})
    assert lrs[4] == pytest.approx(get_lr(3, longer))  # the new schedule from step 3 on
