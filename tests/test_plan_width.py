"""`tune-gpt plan --n_embd W --n_layer L`: the search's config brought to N tokens and, by µP
(tune_gpt.transfer), to a wider or deeper model; no loss predicted for a size the search did
not measure; sizes that do not fit refused in one line (a results folder written here)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_plan import _results

from tune_gpt.cli import main
from tune_gpt.config import load_train_config
from tune_gpt.horizon import lr_for_tokens

SEARCHED_TOKENS = 2604 * 768  # trial a's schedule in test_plan._results: 4 x 192, 4 heads


def _plan(tmp_path: Path, capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["plan", "s", "--tokens", "16M", "--storage-path", str(tmp_path / "runs"),
               "--out", str(tmp_path / "plans"), *args])
    got = capsys.readouterr()
    return rc, got.out, got.err


def test_a_wider_plan_is_the_searched_config_by_mup_at_the_horizons_lr(tmp_path: Path,
                                                                      capsys) -> None:
    _results(tmp_path)
    rc, out, err = _plan(tmp_path, capsys, "--n_embd", "384", "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert got["trial_id"] == "a" and got["searched"] == {"n_layer": 4, "n_embd": 192,
                                                          "n_head": 4}
    written = tmp_path / "plans" / "plan-16M-4x384.yaml"
    assert got["files"] == [str(written), str(written.with_name("plan-16M-4x384_nanogpt.py"))]
    knobs = yaml.safe_load(written.read_text())
    # the width asked for, n_head scaled so the head size stays the searched 48
    assert (knobs["n_embd"], knobs["n_head"], knobs["n_layer"]) == (384, 8, 4)
    # an SP search is µP at its own width: that width is the base width
    assert (knobs["parametrization"], knobs["mup_base_width"], knobs["mup_base_head_size"]) \
        == ("mup", 192, 48)
    # µP keeps the searched lr; the horizon rule moves it to the planned tokens
    tokens = knobs["max_iters"] * 768
    assert got["tokens"] == tokens and abs(tokens - 16e6) < 768
    assert knobs["learning_rate"] == pytest.approx(lr_for_tokens(1e-3, SEARCHED_TOKENS, tokens))
    assert knobs["min_lr"] == pytest.approx(knobs["learning_rate"] / 10)
    load_train_config(written)  # `tune-gpt train` takes it as it is
    # no loss claimed for a size the search never trained, and the reason says so
    assert got["predicted"] is None and got["interval"] is None
    assert got["prediction_note"].startswith("no prediction: the search measured widths 128, "
                                             "192 and one depth (4)")
    said = "\n".join(got["evidence"] + got["transfer"])
    assert "the search trained SP; this plan assumes µP-parametrized training" in said
    assert "mup_base_width 192" in said and "Does not transfer: dropout" in said
    assert "warning: " in err and "nanoGPT's model.py has no µP" in err  # JSON stays clean


def test_the_text_shows_the_size_and_why_nothing_is_predicted(tmp_path: Path, capsys) -> None:
    _results(tmp_path)
    rc, out, _ = _plan(tmp_path, capsys, "--n_embd", "384", "--n_layer", "6")
    assert rc == 0
    lines = out.splitlines()
    assert lines[1] == ("  model: 6 layers x 384 wide, 8 heads: brought by µP from the searched "
                        "4 x 192, 4 heads (mup_base_width 192, head size 48 kept)")
    assert any(x.startswith("  no prediction: the search measured") for x in lines)
    assert not any(x.startswith("  predicted val_loss") for x in lines)
    assert "n_layer 4 -> 6" in out  # depth: carried over only empirically, and said so
    knobs = yaml.safe_load((tmp_path / "plans" / "plan-16M-6x384.yaml").read_text())
    assert (knobs["n_layer"], knobs["n_embd"]) == (6, 384)


def test_the_searched_size_keeps_its_plan_and_prediction(tmp_path: Path, capsys) -> None:
    _results(tmp_path)
    rc, out, _ = _plan(tmp_path, capsys, "--n_embd", "192", "--json")
    got = json.loads(out)
    assert rc == 0 and math.isfinite(got["predicted"]) and got["transfer"] == []
    assert got["files"][0].endswith("plan-16M.yaml")
    assert yaml.safe_load(Path(got["files"][0]).read_text())["n_embd"] == 192


def test_a_mup_search_keeps_its_own_base_width(tmp_path: Path, capsys) -> None:
    res = _results(tmp_path)
    trials = pd.read_csv(res / "trials.csv")
    trials["parametrization"], trials["mup_base_width"] = "mup", 128
    trials.to_csv(res / "trials.csv", index=False)
    rc, out, _ = _plan(tmp_path, capsys, "--n_embd", "384", "--json")
    assert rc == 0
    knobs = yaml.safe_load(Path(json.loads(out)["files"][0]).read_text())
    assert (knobs["mup_base_width"], knobs["n_head"], knobs["n_embd"]) == (128, 8, 384)
    assert not any("trained SP" in x for x in json.loads(out)["transfer"])


@pytest.mark.parametrize("args, words", [
    (["--n_embd", "200"], "--n_embd 200 is not a multiple of the searched head size 48"),
    (["--n_embd", "96"], "--n_embd 96 is narrower than the searched model (192)"),
    (["--n_layer", "0"], "--n_layer 0: a model needs at least one layer"),
    (["--n_layer", "2"], "--n_layer 2 is shallower than the searched model (4 layers)"),
])
def test_a_size_that_does_not_fit_is_one_line_and_exit_2(tmp_path: Path, capsys, args,
                                                         words) -> None:
    _results(tmp_path)
    rc, out, err = _plan(tmp_path, capsys, *args)
    lines = err.strip().splitlines()
    assert rc == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("tune-gpt plan: error: "), lines
    assert words in lines[0] and "pass --n_" in lines[0]  # the key, and the fix
    assert not (tmp_path / "plans").exists()


def test_the_nanogpt_file_of_a_mup_plan_warns_first(tmp_path: Path, capsys) -> None:
    """nanoGPT has no µP: it would train the file as SP at the new width, with an lr chosen
    for µP. The file says so at its top, and the console says so too."""
    _results(tmp_path)
    rc, out, _ = _plan(tmp_path, capsys, "--n_embd", "384")
    assert rc == 0 and "  warning: the nanoGPT file is for reference only" in out
    text = (tmp_path / "plans" / "plan-16M-4x384_nanogpt.py").read_text()
    assert text.startswith("# WARNING: the nanoGPT file is for reference only: nanoGPT's "
                           "model.py has no µP")
    assert "n_embd = 384" in text and "n_head = 8" in text
    assert "This config is µP (base width 192)" in text  # the export's own warning, and
    assert "This trial trained under µP" not in text     # not claiming the trial was µP
    # the searched size: µP at its base width is SP, so its nanoGPT file needs no warning
    rc, out, _ = _plan(tmp_path, capsys)
    assert rc == 0 and "warning" not in out.lower()
    assert "WARNING" not in (tmp_path / "plans" / "plan-16M_nanogpt.py").read_text()


def _attention_logits(config: dict[str, Any], idx: Any) -> Any:
    """Block 0's attention logits, q.k times the model's own scale: (B, nh, T, T)."""
    import dataclasses

    import torch

    from tune_gpt.model import GPT, GPTConfig

    names = {f.name for f in dataclasses.fields(GPTConfig)} - {"vocab_size", "block_size"}
    model = GPT(GPTConfig(vocab_size=65, block_size=idx.shape[1],
                          **{k: v for k, v in config.items() if k in names}))
    attn = model.transformer.h[0].attn
    B, T = idx.shape
    hs = attn.n_embd // attn.n_head
    x = model.transformer.h[0].ln_1(model.transformer.wte(idx) +
                                    model.transformer.wpe(torch.arange(T)))
    q, k, _ = attn.c_attn(x).split(attn.n_embd, dim=2)
    q = q.view(B, T, attn.n_head, hs).transpose(1, 2)
    k = k.view(B, T, attn.n_head, hs).transpose(1, 2)
    scale = attn.scale if attn.scale is not None else 1 / math.sqrt(hs)
    return (q @ k.transpose(-2, -1)) * scale


def test_the_planned_wider_model_has_the_searched_models_attention_logits(tmp_path: Path,
                                                                         capsys) -> None:
    """µP scales attention logits by sqrt(base head size) / head size. The plan's 4 x 768
    (16 heads of 48) from the searched 4 x 192 (4 heads of 48) must start with attention
    logits the size of the searched model's on the same tokens; a base head size taken from
    the wider model (768 / 16 heads = 48 wide, base 192 / 16 = 12) starts at half of them
    (measured here: 0.50x; the old rule's 0.58x is for aligned q and k). test_transfer.py checks
    the scale for `tune-gpt transfer`'s own --n_head; this checks the logits of the model
    the plan writes."""
    import torch

    _results(tmp_path)
    rc, out, _ = _plan(tmp_path, capsys, "--n_embd", "768", "--json")
    assert rc == 0
    wide = yaml.safe_load(Path(json.loads(out)["files"][0]).read_text())
    assert (wide["n_embd"], wide["n_head"]) == (768, 16)
    base = {"n_layer": 4, "n_embd": 192, "n_head": 4}  # the searched model, SP
    idx = torch.randint(65, (4, 32), generator=torch.Generator().manual_seed(0))
    sizes = {}
    with torch.no_grad():
        for name, cfg in (("base", base), ("wide", wide)):
            stds = []
            for seed in range(3):
                torch.manual_seed(seed)
                stds.append(_attention_logits(cfg, idx).std().item())
            sizes[name] = sum(stds) / len(stds)
    assert sizes["wide"] / sizes["base"] == pytest.approx(1.0, abs=0.1), sizes
    # SP at 768 (no µP) would start with logits about 4x the searched model's: the check bites
    with torch.no_grad():
        torch.manual_seed(0)
        sp = _attention_logits({**wide, "parametrization": "sp"}, idx).std().item()
    assert sp / sizes["base"] > 3
