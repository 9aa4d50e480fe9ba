"""The checkpoint format (tune_gpt.checkpoint): exact resume, the best model kept apart from
the last state, and errors a user can cause."""

from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path

import pytest

from tune_gpt.checkpoint import model_from_checkpoint, read_checkpoint
from tune_gpt.data import prepare
from tune_gpt.errors import UserError
from tune_gpt.evaluate import estimate_loss
from tune_gpt.train import train


def test_resume_gives_the_identical_next_losses(tiny_config, tmp_path: Path) -> None:
    # Dropout on, so the restored torch RNG matters as much as the batch generator.
    straight = train(tiny_config(max_iters=7, eval_interval=5, dropout=0.1), threads=1)

    ckpt_path = tmp_path / "mid" / "ckpt.pt"
    first = train(tiny_config(max_iters=5, eval_interval=5, dropout=0.1), threads=1,
                  on_eval=lambda record, ckpt: ckpt.save(ckpt_path) and None)
    assert first.checkpoint_path == str(ckpt_path)
    state = read_checkpoint(ckpt_path)  # weights_only=True inside
    assert state["iter"] == 5 and state["meta"]["vocab_size"] == 65
    assert state["config"]["max_iters"] == 5 and isinstance(state["config"], dict)

    resumed = train(tiny_config(max_iters=7, eval_interval=5, dropout=0.1), threads=1,
                    resume=ckpt_path)
    assert [r.iter for r in resumed.records] == [7]
    a, b = straight.records[-1], resumed.records[-1]
    assert (b.train_loss, b.val_loss) == pytest.approx((a.train_loss, a.val_loss), abs=1e-6)
    assert resumed.best_val_loss == pytest.approx(straight.best_val_loss, abs=1e-6)
    # The same from an already loaded dict.
    again = train(tiny_config(max_iters=7, eval_interval=5, dropout=0.1), threads=1, resume=state)
    assert again.records[-1].val_loss == pytest.approx(a.val_loss, abs=1e-6)


def test_save_writes_out_dir_ckpt_and_resume_true_reads_it(tiny_config) -> None:
    cfg = tiny_config(max_iters=10, eval_interval=5)
    lines: list[str] = []
    result = train(cfg, threads=1, save=True, log=lines.append)
    best, last = Path(cfg.out_dir) / "ckpt.pt", Path(cfg.out_dir) / "last.pt"
    assert result.checkpoint_path == str(best) and best.is_file()
    assert result.last_checkpoint_path == str(last) and last.is_file()
    assert any(ln == f"saving checkpoint to {best}" for ln in lines)
    assert read_checkpoint(last)["iter"] == 10
    more = train(tiny_config(max_iters=15, eval_interval=5), threads=1, resume=True)
    assert [r.iter for r in more.records] == [15]



def test_resume_on_another_vocabulary_is_refused(tiny_config, tmp_path: Path) -> None:
    """Token ids mean other characters in another data set: resuming there would train the
    model on scrambled text. Even with the same number of characters, it is one clear error."""
    train(tiny_config(max_iters=5, eval_interval=5), threads=1, save=True)
    shake = prepare(tiny_config().dataset)
    # the same vocabulary size, other characters: each of shakespeare's 65 shifted by one
    other = tmp_path / "other.txt"
    other.write_text("".join(chr(ord(c) + 200) for c in shake.itos()) * 400)
    assert prepare(str(other)).vocab_size == shake.vocab_size
    with pytest.raises(UserError, match="vocabulary differs from .*resume on the dataset"):
        train(tiny_config(max_iters=10, eval_interval=5, dataset=str(other)), threads=1,
              resume=True)

# ----------------------------------------------------------------------------- best and last

def hump_text(folder: Path) -> Path:
    """A text on which the validation loss falls, then rises. Its training part (the first
    90%) repeats "aab": a model first learns that a is twice as common as b, which holds for
    the validation part too, then that b is always followed by a, which the validation part
    (the same two letters drawn independently, 2:1) contradicts every third time."""
    rng = random.Random(0)
    path = folder / "hump.txt"
    path.write_text("aab" * 3000 + "".join(rng.choices("ab", weights=[2, 1], k=1000)))
    return path


def hump_config(tiny_config, folder: Path, **overrides):
    return tiny_config(dataset=str(hump_text(folder)), eval_interval=5, learning_rate=1e-2,
                       warmup_iters=0, decay_lr=False, **overrides)


def test_a_run_that_overfits_keeps_its_best_model_and_its_last_state(tiny_config,
                                                                      tmp_path: Path) -> None:
    cfg = hump_config(tiny_config, tmp_path, max_iters=30)
    result = train(cfg, threads=1, save=True)
    val = {r.iter: r.val_loss for r in result.records}
    best_iter = min(val, key=val.get)
    assert best_iter < 30 and val[30] > val[best_iter] + 0.1  # it overfits: val rises at the end

    out = Path(cfg.out_dir)
    best, last = read_checkpoint(out / "ckpt.pt"), read_checkpoint(out / "last.pt")
    assert best["iter"] == best_iter and last["iter"] == 30
    assert best["best_val_loss"] == last["best_val_loss"] == result.best_val_loss == val[best_iter]
    assert "optimizer" not in best and "optimizer" in last and "rng" in last
    # Each file holds the weights of its own iteration: scored again on the same batches,
    # they give the validation loss recorded at that iteration.
    data = prepare(cfg.dataset)
    for ckpt, it in ((best, best_iter), (last, 30)):
        model = model_from_checkpoint(ckpt, f"iter {it}")
        _, val_loss = estimate_loss(model, data, cfg, "cpu", contextlib.nullcontext())
        assert val_loss == pytest.approx(val[it], abs=1e-5), it
    assert result.checkpoint_path == str(out / "ckpt.pt")
    assert result.last_checkpoint_path == str(out / "last.pt")
    assert f"Checkpoint: {out / 'ckpt.pt'} (lowest val loss); to resume: {out / 'last.pt'}" \
        in result.summary()


def test_resume_continues_from_the_last_state_not_the_best(tiny_config,
                                                           tmp_path: Path) -> None:
    straight = train(hump_config(tiny_config, tmp_path, max_iters=40), threads=1)
    first = train(hump_config(tiny_config, tmp_path, max_iters=30), threads=1, save=True)
    out = Path(first.checkpoint_path).parent
    best_iter = read_checkpoint(out / "ckpt.pt")["iter"]
    assert best_iter < 30

    lines: list[str] = []
    resumed = train(hump_config(tiny_config, tmp_path, max_iters=40), threads=1, save=True,
                    resume=True, log=lines.append)
    assert lines[0].endswith("resuming at iter 30")
    assert [r.iter for r in resumed.records] == [35, 40]
    # Exactly the uninterrupted run's losses: weights, optimizer state and RNGs came back.
    for a, b in zip(straight.records[-2:], resumed.records):
        assert (b.train_loss, b.val_loss) == pytest.approx((a.train_loss, a.val_loss), abs=1e-6)
    # Still overfitting: the best model on disk is the one from before the resume.
    assert read_checkpoint(out / "ckpt.pt")["iter"] == best_iter
    assert read_checkpoint(out / "last.pt")["iter"] == 40
    assert resumed.best_val_loss == first.best_val_loss
    # The best model is no place to resume from: it has no optimizer state.
    with pytest.raises(UserError, match=r"ckpt.pt: it holds a model only .* resume from the "
                                        r"last.pt beside it"):
        train(hump_config(tiny_config, tmp_path, max_iters=45), resume=out / "ckpt.pt")


def test_a_diverged_run_writes_no_nan_weights(tiny_config) -> None:
    cfg = tiny_config(max_iters=100, learning_rate=1e20, min_lr=0.0, grad_clip=0.0,
                      warmup_iters=0)
    result = train(cfg, threads=1, save=True)
    assert result.diverged and result.checkpoint_path is None
    assert not list(Path(cfg.out_dir).glob("*.pt"))


def test_resume_errors_are_user_errors(tiny_config, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="checkpoint not found"):
        train(tiny_config(), resume=tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a readable tune-gpt checkpoint"):
        train(tiny_config(), resume=junk)
    path = tmp_path / "small.pt"
    train(tiny_config(max_iters=2, eval_interval=2), threads=1,
          on_eval=lambda record, ckpt: ckpt.save(path) and None)
    with pytest.raises(UserError, match="checkpoint has n_layer=2 but the config says n_layer=3"):
        train(tiny_config(n_layer=3), resume=path)


@pytest.mark.parametrize("content, reason", [
    (b"not a checkpoint\n", r"\(corrupt, or not a file torch\.save wrote: [^)]+\)"),
    (b"", r"\(empty or cut short\)"),
])
def test_an_unreadable_file_is_named_for_what_it_is(content: bytes, reason: str,
                                                    tmp_path: Path) -> None:
    """A text or empty file is not a pickle that torch's safe loader refused: the error must
    not pass on torch's advice to load it with weights_only=False (unsafe, and useless)."""
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(content)
    with pytest.raises(UserError) as info:
        read_checkpoint(bad)
    message = str(info.value)
    assert re.search(reason, message), message
    assert "weights_only" not in message and "\n" not in message
