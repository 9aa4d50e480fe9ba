"""The checkpoint format (tune_gpt.checkpoint): exact resume, and errors a user can cause."""


from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.errors import UserError
from tune_gpt.checkpoint import read_checkpoint
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
    path = Path(cfg.out_dir) / "ckpt.pt"
    assert result.checkpoint_path == str(path) and path.is_file()
    assert any(ln == f"saving checkpoint to {path}" for ln in lines)
    assert read_checkpoint(path)["iter"] == 10
    more = train(tiny_config(max_iters=15, eval_interval=5), threads=1, resume=True)
    assert [r.iter for r in more.records] == [15]


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


