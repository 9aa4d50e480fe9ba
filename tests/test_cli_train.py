"""`tune-gpt train / estimate / sample` through tune_gpt.cli.main."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tune_gpt.cli import main

TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8",
        "--eval_iters=2", "--warmup_iters=2", "--lr_decay_iters=20", "--learning_rate=3e-3",
        "--min_lr=3e-4", "--log_interval=5", "--device=cpu"]


def test_train_then_sample(shakespeare_path: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    out_dir = tmp_path / "out"
    code = main(["train", "--data", str(shakespeare_path), "--threads", "1", "--max_iters=20",
                 "--eval_interval=10", f"--out_dir={out_dir}", *TINY])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"^iter 5: loss \d\.\d{4}, time [\d.]+ms, mfu [\d.]+%$", out, re.MULTILINE)
    assert re.search(r"^step 10: train loss \d\.\d{4}, val loss \d\.\d{4}$", out, re.MULTILINE)
    assert re.search(r"^step 20: ", out, re.MULTILINE)
    assert "trained 20 iterations (5,120 tokens) on cpu" in out
    ckpt, last = out_dir / "ckpt.pt", out_dir / "last.pt"
    assert ckpt.is_file() and last.is_file()
    assert f"Checkpoint: {ckpt} (lowest val loss); to resume: {last}" in out

    code = main(["train", "--data", str(shakespeare_path), "--threads", "1", "--resume",
                 "--max_iters=30", "--eval_interval=10", f"--out_dir={out_dir}", *TINY])
    out = capsys.readouterr().out
    assert code == 0 and "resuming at iter 20" in out and "trained 30 iterations" in out

    code = main(["sample", str(ckpt), "--start", "ROMEO:", "--num-samples", "2",
                 "--max-new-tokens", "40", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    samples = out.split("-" * 40 + "\n")
    assert len(samples) == 2
    assert all(s.startswith("ROMEO:") and len(s.rstrip("\n")) >= 6 + 30 for s in samples)
    # Same seed, same text.
    main(["sample", str(ckpt), "--start", "ROMEO:", "--num-samples", "2",
          "--max-new-tokens", "40", "--device", "cpu"])
    assert capsys.readouterr().out == out


def test_estimate_prints_the_guides_numbers(capsys: pytest.CaptureFixture) -> None:
    code = main(["estimate", "--batch_size=64", "--block_size=256", "--n_layer=6", "--n_head=6",
                 "--n_embd=384"])
    out = capsys.readouterr().out
    assert code == 0
    assert "tokens_per_iter  16,384" in out
    for row in ("weights", "gradients", "optimizer", "activations", "logits", "total"):
        assert re.search(rf"^  {row} +[\d.]+ [KMG]iB", out, re.MULTILINE), row
    assert "guide's rule of thumb" in out


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "/nonexistent/input.txt", "--max_iters=1"], "text file not found"),
    (["train", "--batch_size=0"], "'batch_size' must be a positive integer"),
    (["train", "--learnin_rate=1"], "did you mean 'learning_rate'"),
    (["sample", "/nonexistent/ckpt.pt"], "checkpoint not found"),
    (["estimate", "--n_embd=100", "--n_head=3"], "must be divisible"),
])
def test_user_errors_are_one_line_and_exit_2(argv: list[str], match: str,
                                             capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert re.search(match, captured.err)
    assert captured.err.startswith(f"tune-gpt {argv[0]}: error: ")


def test_sample_rejects_a_file_that_is_not_a_checkpoint(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["sample", str(bad)]) == 2
    assert "not a readable tune-gpt checkpoint" in capsys.readouterr().err
