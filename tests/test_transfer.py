"""`tune-gpt transfer`: a proxy search's best config written for a wider model under µP."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.cli import main
from tune_gpt.config import load_train_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "reports" / "beginner-cpu"


def _proxy(tmp_path: Path, data: Path, **knobs) -> Path:
    folder = tmp_path / "report"
    folder.mkdir()
    values = {"dataset": str(data), "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32,
              "batch_size": 8, "learning_rate": 4e-3, "min_lr": 4e-4, "max_iters": 20,
              "warmup_iters": 2, "lr_decay_iters": 20, "eval_interval": 10, "eval_iters": 2,
              "device": "cpu", **knobs}
    (folder / "best_config.yaml").write_text(
        "# Best trial of search 'proxy'\n" + "".join(f"{k}: {v}\n" for k, v in values.items()))
    return folder


def test_transfer_of_the_committed_example_search(tmp_path: Path, capsys) -> None:
    proxy = load_train_config(EXAMPLE / "best_config.yaml")
    out = tmp_path / "big.yaml"
    assert main(["transfer", str(EXAMPLE), "--n_embd=768", "--n_layer=12", "--n_head=12",
                 "--max_iters=5000", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    big = load_train_config(out)
    # An SP proxy is µP at its own width: the base width is the proxy's n_embd.
    assert (big.parametrization, big.mup_base_width) == ("mup", proxy.n_embd)
    assert (big.n_embd, big.n_layer, big.n_head) == (768, 12, 12)
    assert big.learning_rate == proxy.learning_rate and big.min_lr == proxy.min_lr
    assert big.batch_size == proxy.batch_size and big.block_size == proxy.block_size
    assert (big.max_iters, big.lr_decay_iters) == (5000, 5000)  # the decay follows the length
    assert big.dropout == proxy.dropout and big.weight_decay == proxy.weight_decay
    for words in ("transfer only empirically", f"n_layer {proxy.n_layer} -> 12",
                  "Does not transfer: dropout and weight_decay",
                  f"mup_base_width: {proxy.n_embd}", "-> target 85.00M parameters"):
        assert words in said
    assert "Does not transfer" in out.read_text()  # the statement travels with the file


def test_transfer_from_a_mup_proxy_keeps_its_base_width_and_trains(tmp_path: Path,
                                                                   shakespeare_path: Path
                                                                   ) -> None:
    folder = _proxy(tmp_path, shakespeare_path, parametrization="mup", mup_base_width=16)
    assert main(["transfer", str(folder), "--n_embd=64", "--max_iters=4"]) == 0
    written = folder / "transfer-2x64.yaml"
    big = load_train_config(written, [f"--out_dir={tmp_path / 'out'}"])
    assert (big.parametrization, big.mup_base_width, big.n_embd) == ("mup", 16, 64)
    assert big.learning_rate == 4e-3
    from tune_gpt.train import train

    result = train(big)
    assert result.iters == 4 and not result.diverged


@pytest.mark.parametrize("args, words", [
    (["missing-folder", "--n_embd=64"], "no such report folder"),
    (["{empty}", "--n_embd=64"], "no best_config.yaml in this folder"),
    (["{proxy}"], "say what the large model is"),
    (["{proxy}", "--parametrization=sp"], "--parametrization is set by transfer itself"),
    (["{proxy}", "--n_embd=66", "--n_head=4"], "'n_embd' (66) must be divisible by 'n_head'"),
    (["{proxy}", "--n_embdd=64"], "unknown key 'n_embdd'"),
])
def test_bad_transfers_say_one_line_and_write_nothing(tmp_path: Path, shakespeare_path: Path,
                                                      capsys, args, words) -> None:
    proxy = _proxy(tmp_path, shakespeare_path)
    (tmp_path / "empty").mkdir()
    args = [a.format(proxy=proxy, empty=tmp_path / "empty") for a in args]
    before = sorted(p.name for p in proxy.iterdir())
    assert main(["transfer", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert sorted(p.name for p in proxy.iterdir()) == before



@pytest.mark.parametrize("param, lang, words", [
    ("mup", "en", ["**Meant for transfer.** This search ran under µP (base width 128)",
                   "tune-gpt transfer reports/{name} --n_embd=2304 --n_head=12"]),
    ("mup", "zh", ["**本次结果用于迁移。**", "--n_embd=2304 --n_head=12"]),
    ("sp", "en", ["To train a wider model: `tune-gpt transfer reports/{name} --n_embd=2304",
                  "base width 576 (at width 576 that is exactly this model)"]),
])
def test_the_report_says_how_to_transfer_and_a_mup_search_that_it_is_meant_for_it(
        param, lang, words) -> None:
    from test_report_data import planted_search

    from tune_gpt.report import build_report

    trials, curves, meta = planted_search()
    trials["parametrization"], trials["mup_base_width"] = param, 128
    report = build_report(trials, curves, meta, lang=lang)
    md = report.markdown
    nxt = md[md.rindex("\n## "):]  # the last section: the next step
    for w in words:
        assert w.format(name=report.name) in nxt, nxt
    nano = report.files["best_config_nanogpt.py"]
    assert ("nanoGPT's model.py does not have" in nano) == (param == "mup")


def test_the_transferred_attention_keeps_the_base_models_head_size(tmp_path: Path) -> None:
    """µP scales attention logits by sqrt(base head size) / head size. A 4-head 192-wide
    proxy (head size 48) transferred to 12 x 768 with 12 heads (head size 64) must use the
    proxy's 48, not 768's base width divided by the target's 12 heads (16): that gave logits
    sqrt(16/48) = 0.58x of what µP intends. At the base width µP is SP, whose scale is
    1/sqrt(head size)."""
    import math

    from tune_gpt.model import GPT, GPTConfig

    folder = _proxy(tmp_path, tmp_path / "unused.txt", n_embd=192, n_head=4)
    out = tmp_path / "big.yaml"
    assert main(["transfer", str(folder), "--n_embd=768", "--n_layer=2", "--n_head=12",
                 "--out", str(out)]) == 0
    big = load_train_config(out)
    assert (big.mup_base_width, big.mup_base_head_size) == (192, 48)

    def attention_scale(**shape) -> float:
        model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, **shape))
        attn = model.transformer.h[0].attn
        return attn.scale if attn.scale is not None else 1 / math.sqrt(attn.n_embd // attn.n_head)

    target = attention_scale(n_embd=768, n_head=12, parametrization="mup", mup_base_width=192,
                             mup_base_head_size=big.mup_base_head_size)
    assert target == pytest.approx(math.sqrt(48) / 64)
    # the proxy itself under µP at its base width: exactly SP's attention
    base = attention_scale(n_embd=192, n_head=4, parametrization="mup", mup_base_width=192,
                           mup_base_head_size=48)
    assert base == pytest.approx(attention_scale(n_embd=192, n_head=4)) == 1 / math.sqrt(48)
    # logits on the same unit-size q.k per head dimension: target / base = sqrt(48)/64 x 64
    # coordinates / (1/sqrt(48) x 48) = 1, the base model's size (0.58 under the old rule)
    assert (target * 64) / (base * 48) == pytest.approx(1.0)


def test_a_fractional_base_head_size_is_refused_and_the_init_factor_is_stated() -> None:
    """A µP proxy whose base width its heads do not divide (128 / 6) trained with a base
    head size of 21.33: the transfer cannot write that as an integer, so it refuses in one
    line rather than hand over logits 0.8% off. And the statement gives the init's factor
    (std x 1/sqrt(m)) apart from the learning rate's (x 1/m)."""
    from tune_gpt.config import TrainConfig
    from tune_gpt.errors import UserError
    from tune_gpt.transfer import to_target

    odd = TrainConfig(n_embd=192, n_head=6, parametrization="mup", mup_base_width=128)
    with pytest.raises(UserError, match="mup_base_width 128 is not a multiple of its n_head 6"):
        to_target(odd.to_dict(), {"n_embd": 768, "n_head": 24})
    kept = to_target({**odd.to_dict(), "mup_base_head_size": 21}, {"n_embd": 768,
                                                                     "n_head": 24})[0]
    assert kept.mup_base_head_size == 21
    _, _, said = to_target(TrainConfig(n_embd=128, n_head=4).to_dict(), {"n_embd": 512,
                                                                          "n_head": 16})
    assert "init (std x0.5) and learning rate (x0.25)" in said[0]


def test_a_transfer_writes_no_fixed_benchmark_figures(tmp_path: Path) -> None:
    """Every transferred file used to carry the same 64->512 benchmark figures (lr moved
    1.9x / 6.2x, val_loss 2.48 / 2.20), whatever the transfer. A transfer says what carries
    over by µP's theory, and claims no measurement it did not make."""
    folder = _proxy(tmp_path, tmp_path / "unused.txt", n_embd=64, n_head=2)
    texts = []
    for width in (256, 1024):
        out = tmp_path / f"w{width}.yaml"
        assert main(["transfer", str(folder), f"--n_embd={width}", "--out", str(out)]) == 0
        texts.append(out.read_text())
    for text in texts:
        assert "not measured for this transfer" in text
        for figure in ("1.9x", "6.2x", "2.48", "2.20"):
            assert figure not in text, figure
