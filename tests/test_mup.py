"""µP (parametrization: mup): the coordinate check, SP at the base width, the optimizer's
groups, and a µP run that trains, checkpoints, resumes only as µP and samples."""

from __future__ import annotations

import math

import pytest
import torch

from tune_gpt.config import TrainConfig, validate
from tune_gpt.errors import UserError
from tune_gpt.model import GPT, GPTConfig
from tune_gpt.mup import coord_check, growth

WIDTHS = (32, 64, 128, 256)


@pytest.fixture(scope="module")
def coords() -> dict[str, dict]:
    return {p: coord_check(WIDTHS, p) for p in ("sp", "mup")}


def test_coordinate_check_mup_activations_stay_flat_across_width(coords) -> None:
    # After 4 Adam steps at lr 1e-2, from width 32 to 256 (measured: 0.72-0.87x).
    for layer in ("embed", "block0", "block1", "logits"):
        assert 0.6 < growth(coords["mup"], layer) < 1.5, (layer, coords["mup"])


def test_coordinate_check_sp_activations_grow_with_width(coords) -> None:
    # The same steps under SP: block outputs grow ~40x, logits ~4x (measured) from 32 to 256.
    assert growth(coords["sp"], "block0") > 10
    assert growth(coords["sp"], "block1") > 10
    assert growth(coords["sp"], "logits") > 2.5
    assert growth(coords["sp"], "logits") > 2 * growth(coords["mup"], "logits")


def _pair(width: int, base: int) -> tuple[GPT, GPT]:
    shape = dict(block_size=16, vocab_size=65, n_layer=2, n_head=4, n_embd=width)
    torch.manual_seed(0)
    sp = GPT(GPTConfig(**shape))
    torch.manual_seed(0)
    mup = GPT(GPTConfig(**shape, parametrization="mup", mup_base_width=base))
    return sp, mup


def test_mup_at_its_base_width_is_exactly_sp() -> None:
    sp, mup = _pair(64, 64)
    x = torch.randint(65, (4, 16), generator=torch.Generator().manual_seed(1))
    for model in (sp, mup):
        opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99), "cpu")
        assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 1.0]
        for _ in range(3):
            _, loss = model(x, x)
            loss.backward()
            opt.step()
            opt.zero_grad()
    for (name, a), (_, b) in zip(sp.named_parameters(), mup.named_parameters()):
        assert torch.equal(a, b), name


def test_mup_scales_hidden_init_and_learning_rate_not_embeddings() -> None:
    sp, mup = _pair(256, 64)  # width multiplier 4
    opt = mup.configure_optimizers(0.1, 1e-2, (0.9, 0.99), "cpu")
    hidden = [g for g in opt.param_groups if g["lr_scale"] != 1.0]
    assert len(hidden) == 1 and hidden[0]["lr_scale"] == pytest.approx(0.25)
    hidden_ids = {id(p) for p in hidden[0]["params"]}
    names = {n for n, p in mup.named_parameters() if id(p) in hidden_ids}
    assert names == {n for n, p in mup.named_parameters()
                     if n.startswith("transformer.h.") and p.dim() == 2}
    std = dict((n, p.std().item()) for n, p in mup.named_parameters())
    std_sp = dict((n, p.std().item()) for n, p in sp.named_parameters())
    fc = "transformer.h.0.mlp.c_fc.weight"
    assert std[fc] == pytest.approx(std_sp[fc] / 2, rel=0.05)  # 1/sqrt(4)
    assert std["transformer.wte.weight"] == pytest.approx(std_sp["transformer.wte.weight"],
                                                          rel=0.05)
    assert mup.transformer.h[0].attn.scale == pytest.approx((64 / 4) ** 0.5 / 64)


def test_mup_scales_adam_eps_and_hidden_weight_decay_as_the_reference() -> None:
    # EleutherAI's nanoGPT-mup: eps / m in every group; completeP: the hidden matrices'
    # weight decay x m, so that lr x wd (AdamW's decoupled decay) is the same at any width
    from tune_gpt.model import ADAM_EPS

    _, mup = _pair(256, 64)  # m = 4
    opt = mup.configure_optimizers(0.1, 1e-2, (0.9, 0.99), "cpu")
    assert all(g["eps"] == pytest.approx(ADAM_EPS / 4) for g in opt.param_groups)
    hidden = next(g for g in opt.param_groups if g["lr_scale"] != 1.0)
    assert hidden["weight_decay"] == pytest.approx(0.4)
    assert hidden["weight_decay"] * hidden["lr_scale"] == pytest.approx(0.1)
    sp, _ = _pair(256, 64)
    assert {g["eps"] for g in sp.configure_optimizers(0.1, 1e-2, (0.9, 0.99),
                                                      "cpu").param_groups} == {ADAM_EPS}


def test_mup_input_and_output_multipliers() -> None:
    x = torch.randint(65, (2, 16), generator=torch.Generator().manual_seed(3))
    cfg = dict(block_size=16, vocab_size=65, n_layer=2, n_head=2, n_embd=128,
               parametrization="mup", mup_base_width=64)

    def logits(**mults: float) -> torch.Tensor:
        torch.manual_seed(0)
        return GPT(GPTConfig(**cfg, **mults))(x, x)[0]

    plain = logits()
    # the readout: logits exactly times the multiplier (on top of µP's 1/m)
    assert torch.allclose(logits(mup_output_mult=2.0), 2 * plain, atol=1e-6)
    # the input: a different model, not a rescaled one (LayerNorm follows it)
    assert not torch.allclose(logits(mup_input_mult=3.0), plain, atol=1e-4)
    # ignored under SP, which has neither
    torch.manual_seed(0)
    sp = GPT(GPTConfig(**{**cfg, "parametrization": "sp"}, mup_output_mult=2.0))(x, x)[0]
    torch.manual_seed(0)
    assert torch.equal(sp, GPT(GPTConfig(**{**cfg, "parametrization": "sp"}))(x, x)[0])
    with pytest.raises(UserError, match="'mup_output_mult' must be > 0"):
        validate(TrainConfig(mup_output_mult=0.0))


def test_the_multipliers_travel_with_the_checkpoint_and_the_transfer(tmp_path) -> None:
    import yaml

    from tune_gpt.checkpoint import MODEL_KEYS
    from tune_gpt.transfer import transfer

    assert {"mup_input_mult", "mup_output_mult"} <= set(MODEL_KEYS)
    best = tmp_path / "best_config.yaml"
    best.write_text(yaml.safe_dump({**TrainConfig(n_embd=128, n_head=4).to_dict(),
                                    "parametrization": "mup", "mup_base_width": 128,
                                    "mup_output_mult": 2.5, "mup_input_mult": 0.5}))
    t = transfer(best, ["--n_embd=512", "--n_head=8"])
    assert (t.config.mup_output_mult, t.config.mup_input_mult) == (2.5, 0.5)
    assert t.config.mup_base_width == 128 and t.config.n_embd == 512


def test_parametrization_is_validated() -> None:
    with pytest.raises(UserError, match="'parametrization' must be one of sp, mup"):
        validate(TrainConfig(parametrization="mu-p"))
    with pytest.raises(UserError, match="'mup_base_width' must be a positive integer"):
        validate(TrainConfig(parametrization="mup", mup_base_width=0))


def test_a_mup_run_trains_resumes_only_as_mup_and_samples(tiny_config, shakespeare) -> None:
    from tune_gpt.sample import generate
    from tune_gpt.train import train

    cfg = tiny_config(parametrization="mup", mup_base_width=16, max_iters=10)
    result = train(cfg, save=True, data=shakespeare)
    # it learned: below uniform guessing, ln 65 = 4.174, by more than an untrained model's
    # wobble (at lr 1e-12 this config ends at 4.172)
    assert not result.diverged and result.final.val_loss < math.log(65) - 0.15
    with pytest.raises(UserError, match="parametrization=mup.*parametrization=sp"):
        train(tiny_config(max_iters=12), resume=True, data=shakespeare)
    # The sample is drawn from a µP model: it matches the one rebuilt by hand.
    ckpt = torch.load(result.checkpoint_path, weights_only=True)
    model = GPT(GPTConfig(block_size=32, vocab_size=65, n_layer=2, n_head=2, n_embd=32,
                          parametrization="mup", mup_base_width=16))
    model.load_state_dict(ckpt["model"])
    model.eval()
    idx = torch.tensor([[shakespeare.encode("\n")[0]]])
    want = model.generate(idx, 20, temperature=0.8, top_k=200,
                          generator=torch.Generator().manual_seed(7))
    got = generate(result.checkpoint_path, start="\n", max_new_tokens=20, seed=7, device="cpu")
    assert got[0] == shakespeare.decode(want[0].tolist())


def test_the_init_and_attention_multipliers_are_mup_base_hyperparameters(tmp_path) -> None:
    """mup_init_mult scales the hidden matrices' init std, mup_attn_mult the attention
    logits; both 1 by default (µP = SP at the base width), ignored under SP, validated,
    kept by checkpoints and carried by the transfer; the nanoGPT export warns for them."""
    import yaml

    from tune_gpt.checkpoint import MODEL_KEYS
    from tune_gpt.config import MUP_MULTS
    from tune_gpt.transfer import transfer

    cfg = dict(block_size=16, vocab_size=65, n_layer=2, n_head=2, n_embd=128,
               parametrization="mup", mup_base_width=64)

    def model(**kw: float) -> GPT:
        torch.manual_seed(0)
        return GPT(GPTConfig(**{**cfg, **kw}))

    base, wide = model(), model(mup_init_mult=2.0)
    w0 = base.transformer.h[0].mlp.c_fc.weight.std().item()
    assert wide.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(2 * w0, rel=0.05)
    assert model(mup_attn_mult=3.0).transformer.h[0].attn.scale == \
        pytest.approx(3 * base.transformer.h[0].attn.scale)
    sp = dict(parametrization="sp")
    assert model(**sp, mup_init_mult=2.0).transformer.h[0].mlp.c_fc.weight.std().item() == \
        pytest.approx(model(**sp).transformer.h[0].mlp.c_fc.weight.std().item())
    assert model(**sp, mup_attn_mult=3.0).transformer.h[0].attn.scale is None
    assert set(MUP_MULTS) <= set(MODEL_KEYS)
    for key in ("mup_init_mult", "mup_attn_mult"):
        with pytest.raises(UserError, match=f"'{key}' must be > 0"):
            validate(TrainConfig(**{key: 0.0}))
    best = tmp_path / "best_config.yaml"
    best.write_text(yaml.safe_dump({**TrainConfig(n_embd=128, n_head=4).to_dict(),
                                    "parametrization": "mup", "mup_base_width": 128,
                                    "mup_init_mult": 2.83, "mup_attn_mult": 2.0}))
    t = transfer(best, ["--n_embd=512", "--n_head=16"])
    assert (t.config.mup_init_mult, t.config.mup_attn_mult) == (2.83, 2.0)
