"""`tune-gpt eval` (tune_gpt.evaluate): a checkpoint's loss on the whole validation split,
checked against a second computation here; its data; and the errors a user can cause."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tune_gpt.cli import main
from tune_gpt.config import TrainConfig
from tune_gpt.data import PreparedData, prepare
from tune_gpt.evaluate import evaluate_checkpoint
from tune_gpt.model import GPT, GPTConfig
from tune_gpt.train import train

BLOCK = 32
TINY = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": BLOCK, "batch_size": 8,
        "eval_iters": 2, "warmup_iters": 5, "lr_decay_iters": 30, "learning_rate": 3e-3,
        "min_lr": 3e-4, "device": "cpu"}


def trained(folder: Path, dataset: Path, max_iters: int) -> Path:
    """A tiny model trained on `dataset`; returns its best checkpoint (ckpt.pt)."""
    result = train(TrainConfig(dataset=str(dataset), out_dir=str(folder), max_iters=max_iters,
                               eval_interval=max_iters, **TINY), threads=1, save=True)
    return Path(result.checkpoint_path)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, shakespeare_path: Path
          ) -> tuple[Path, Path, PreparedData]:
    """(text, checkpoint, data): 30,000 characters of tinyshakespeare, so that its 3,000
    validation tokens can be scored again here one window at a time, and a model on them."""
    folder = tmp_path_factory.mktemp("eval-small")
    text = folder / "small.txt"
    text.write_text(shakespeare_path.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    return text, trained(folder / "out", text, max_iters=30), prepare(str(text))


def reference_loss(checkpoint: Path, data: PreparedData, window: int = BLOCK
                   ) -> tuple[float, int]:
    """The whole-split loss computed another way: the model rebuilt by hand, one window of
    `window` tokens at a time (the last one shorter), per-token losses summed in float64."""
    state = torch.load(checkpoint, weights_only=True)
    model = GPT(GPTConfig(block_size=BLOCK, vocab_size=data.vocab_size, n_layer=2, n_head=2,
                          n_embd=32))
    model.load_state_dict(state["model"])
    model.eval()
    ids = torch.from_numpy(np.fromfile(data.val_path, dtype=np.uint16).astype(np.int64))
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            y = ids[start + 1:start + 1 + window]
            x = ids[start:start + len(y)]
            logits, _ = model(x[None], y[None])
            total += F.cross_entropy(logits[0].double(), y, reduction="sum").item()
            count += len(y)
    return total / count, count


def test_eval_scores_every_validation_token_once(small) -> None:
    text, checkpoint, data = small
    assert (data.n_val - 1) % BLOCK  # the last window is a short one: it must be scored too
    expected, count = reference_loss(checkpoint, data)
    result = evaluate_checkpoint(checkpoint, device="cpu")
    assert result.tokens == count == data.n_val - 1
    assert result.val_loss == pytest.approx(expected, rel=1e-6)
    assert result.iter == 30 and result.data == "small.txt"
    # The same file named with --data: the same tokens, the same loss.
    assert evaluate_checkpoint(checkpoint, data=text, device="cpu") == result


def test_a_shorter_context_scores_the_same_tokens_with_less_history(small, capsys) -> None:
    """--context N: windows of N tokens, to compare models trained with other block sizes;
    every token still scored once, with less context (so a trained model does worse)."""
    _, checkpoint, data = small
    expected, count = reference_loss(checkpoint, data, window=8)
    result = evaluate_checkpoint(checkpoint, device="cpu", context=8)
    assert (result.tokens, result.context) == (count, 8) and count == data.n_val - 1
    assert result.val_loss == pytest.approx(expected, rel=1e-6)
    assert result.val_loss > evaluate_checkpoint(checkpoint, device="cpu").val_loss
    assert evaluate_checkpoint(checkpoint, device="cpu", context=BLOCK) == \
        evaluate_checkpoint(checkpoint, device="cpu")
    for bad in (1, BLOCK + 1):  # longer than the model's positions, or no context at all
        assert main(["eval", str(checkpoint), "--context", str(bad), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--context {bad}: " in err
        assert f"trained with block_size {BLOCK}; give a context from 2 to {BLOCK}" in err


def test_cli_prints_json_or_a_sentence(small, capsys: pytest.CaptureFixture) -> None:
    _, checkpoint, data = small
    expected = evaluate_checkpoint(checkpoint, device="cpu")
    assert main(["eval", str(checkpoint), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"val_loss": pytest.approx(expected.val_loss, rel=1e-9),
                   "tokens": data.n_val - 1}
    assert main(["eval", str(checkpoint)]) == 0
    line = capsys.readouterr().out
    assert re.fullmatch(rf"val loss {expected.val_loss:.4f} over the whole validation split "
                        rf"of small\.txt \(2,999 tokens, windows of {BLOCK}\); "
                        rf"{re.escape(str(checkpoint))}, iter 30\n", line), line


def test_data_can_be_a_nanogpt_folder(tmp_path: Path, shakespeare_path: Path,
                                      nanogpt_char: Path) -> None:  # noqa: F811
    """A model trained on input.txt scores the same on nanoGPT's prepared folder of it:
    its prepare.py splits the same characters at the same 90%."""
    checkpoint = trained(tmp_path / "out", shakespeare_path, max_iters=5)
    own = evaluate_checkpoint(checkpoint, device="cpu")
    folder = evaluate_checkpoint(checkpoint, data=nanogpt_char, device="cpu")
    assert own.tokens == folder.tokens == 111_539
    assert folder.val_loss == pytest.approx(own.val_loss, rel=1e-9)


def _changed_data(tmp_path: Path, checkpoint: Path, text: Path) -> list[str]:
    """The checkpoint's own data file, edited since it was trained on."""
    state = torch.load(checkpoint, weights_only=True)
    changed = tmp_path / "small.txt"
    changed.write_text(text.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    state["config"]["dataset"] = str(changed)
    moved = tmp_path / "ckpt.pt"
    torch.save(state, moved)
    return [str(moved)]


@pytest.mark.parametrize("case, match", [
    ("missing", r"nope\.pt: checkpoint not found; `tune-gpt train` writes OUT_DIR/ckpt\.pt"),
    ("corrupt", r"junk\.pt: not a readable tune-gpt checkpoint .*; pass a ckpt\.pt or last\.pt"),
    ("vocabulary", (r"other\.txt: its vocabulary \(char, \d+ tokens\) is not the one "
                    r".*ckpt\.pt was trained with \(char, \d+ tokens\); pass --data")),
    ("changed", (r"small\.txt: not the data .*ckpt\.pt was trained on \(it changed since\); "
                 r"pass --data")),
])
def test_bad_input_is_one_line_and_exit_2(case: str, match: str, small, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    text, checkpoint, _ = small
    if case == "missing":
        argv = [str(tmp_path / "nope.pt")]
    elif case == "corrupt":
        (tmp_path / "junk.pt").write_bytes(b"\x00 not a checkpoint")
        argv = [str(tmp_path / "junk.pt")]
    elif case == "vocabulary":
        (tmp_path / "other.txt").write_text("hello world\n" * 300, encoding="utf-8")
        argv = [str(checkpoint), "--data", str(tmp_path / "other.txt")]
    else:
        argv = _changed_data(tmp_path, checkpoint, text)
    assert main(["eval", *argv, "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("tune-gpt eval: error: ") and "Traceback" not in captured.err
    assert re.search(match, captured.err), captured.err
