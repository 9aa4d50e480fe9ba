"""A rung that reads a finished run (tune_gpt/rung_read.py): a WSD trial scored at a rung
after a throwaway cool-down branch, then carried on from its stable state as if the read
never happened; the space option that asks for it, and the compute it is charged."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tune_gpt.rung_read import RungReads

ROOT = Path(__file__).resolve().parents[1]


def _cfg(**kw):
    from tune_gpt.config import TrainConfig

    base = dict(max_iters=1000, lr_decay_iters=1000, batch_size=4, block_size=8,
                eval_interval=50, warmup_iters=10, lr_schedule="wsd", cooldown_frac=0.2)
    return TrainConfig(**{**base, **kw})


def test_a_rung_is_read_at_the_first_evaluation_past_it_and_only_in_the_stable_phase() -> None:
    cfg = _cfg()  # 32 tokens a step; evaluations every 50 steps; cool-down from step 800
    reads = RungReads.for_trial(cfg, [100 * 32, 330 * 32, 810 * 32, 1000 * 32], frac=0.1)
    assert reads is not None and reads.iters == {100, 350}  # 810 and the end: cooling already
    assert reads.steps(350) == 35
    assert reads.spent(99, cfg) == 0
    assert reads.spent(360, cfg) == (10 + 35) * 32  # worked out again after a resume
    # nothing to read: no cool-down to branch into, reads off, or no rung on the plateau
    assert RungReads.for_trial(_cfg(lr_schedule="cosine"), [3200], 0.1) is None
    assert RungReads.for_trial(_cfg(decay_lr=False), [3200], 0.1) is None
    assert RungReads.for_trial(cfg, [3200], 0.0) is None
    assert RungReads.for_trial(cfg, [900 * 32], 0.1) is None


def _run_cfg(data, tmp_path, **kw):
    from tune_gpt.config import TrainConfig

    return TrainConfig(**{**dict(
        dataset=str(data), out_dir=str(tmp_path / "out"), n_layer=2, n_head=2, n_embd=32,
        block_size=32, batch_size=8, max_iters=240, lr_decay_iters=240, eval_interval=40,
        eval_iters=10, log_interval=1000, warmup_iters=10, learning_rate=1e-2, min_lr=1e-3,
        lr_schedule="wsd", cooldown_frac=0.2, dropout=0.1, device="cpu", seed=0), **kw})


def test_a_read_scores_a_cooled_branch_and_the_run_goes_on_as_if_it_never_happened(
        shakespeare_path, tmp_path) -> None:
    """Two real runs of one config, one read at steps 40 and 120: every evaluation but the
    reads is the same to the last bit (the branch's model, optimizer state and random
    draws, dropout's included, are all dropped), the reads score lower than the plateau
    they branch from, and the branches' tokens are counted."""
    from tune_gpt.train import train

    data = tmp_path / "small.txt"
    data.write_text(shakespeare_path.read_text()[:60_000])
    cfg = _run_cfg(data, tmp_path)
    plain = train(cfg, threads=1)
    reads = RungReads.for_trial(cfg, [40 * 256, 100 * 256], frac=0.25)
    assert reads is not None and reads.iters == {40, 120}
    lines: list[str] = []
    read = train(cfg, threads=1, reads=reads, log=lines.append)

    by_iter = {r.iter: r for r in read.records}
    gains: list[float] = []
    for p in plain.records:
        r = by_iter[p.iter]
        if p.iter in reads.iters:
            assert r.read_after == math.ceil(0.25 * p.iter)
            assert r.stable_val_loss == p.val_loss           # the plateau, as without reads
            assert r.train_loss == p.train_loss              # ... and its train loss
            assert r.val_loss < p.val_loss                   # the cooled branch scores lower
            gains.append(p.val_loss - r.val_loss)
        else:
            assert r.read_after == 0 and r.stable_val_loss is None
            assert (r.train_loss, r.val_loss) == (p.train_loss, p.val_loss)
    # at step 40 the loss is still near uniform guessing (~0.01 to gain, CPU-dependent); by
    # step 120 the branch's cool-down is worth more than the evaluation's noise
    assert len(gains) == 2 and gains[1] > 0.02, gains
    assert read.records[-1].read_tokens == (10 + 30) * cfg.tokens_per_iter()
    assert by_iter[80].read_tokens == 10 * cfg.tokens_per_iter()
    assert any("after a 10-step cool-down branch (stable phase" in line for line in lines)
    # the weights kept are the plateau's, so the best model is labelled and kept by its own
    # loss, not by the dropped branch's lower one (which would block every later best)
    assert read.best_val_loss == plain.best_val_loss == min(r.model_val_loss
                                                            for r in read.records)


def test_a_space_asks_for_reads_only_where_they_can_happen(tmp_path) -> None:
    from tune_gpt.errors import UserError
    from tune_gpt.space import load_space

    def space(fixed: str, scheduler: str) -> str:
        path = tmp_path / "s.yaml"
        path.write_text(f"""
name: reads
data: shakespeare_char
params:
  learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}
fixed: {{{fixed}}}
scheduler: {{{scheduler}}}
budget: {{num_samples: 4, tokens_per_trial: 2M}}
""")
        return str(path)

    ok = load_space(space("lr_schedule: wsd", "type: asha, grace_period: 250k, "
                                              "rung_cooldown: 0.1"))
    assert ok.scheduler.rung_cooldown == 0.1
    with pytest.raises(UserError, match="no trial here is WSD: add lr_schedule: wsd"):
        load_space(space("n_layer: 2", "type: asha, rung_cooldown: 0.1"))
    with pytest.raises(UserError, match="rung_cooldown reads ASHA's rungs in tokens"):
        load_space(space("lr_schedule: wsd", "type: asha, time_attr: iter, max_t: 500, "
                                             "rung_cooldown: 0.1"))
    with pytest.raises(UserError, match="rung_cooldown"):
        load_space(space("lr_schedule: wsd", "type: asha, rung_cooldown: 0.9"))


def test_the_trials_settings_carry_the_rungs_and_the_search_charges_the_branches(
        tmp_path) -> None:
    from tune_gpt.search.final import _left
    from tune_gpt.search.tuner import trial_settings
    from tune_gpt.space import load_space

    path = tmp_path / "s.yaml"
    path.write_text("""
name: reads
data: shakespeare_char
params:
  learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
fixed: {lr_schedule: wsd}
scheduler: {type: asha, grace_period: 250k, reduction_factor: 3, rung_cooldown: 0.1}
budget: {num_samples: 4, tokens_per_trial: 2M, total_tokens: 10M}
""")
    sp = load_space(str(path))
    s = trial_settings(sp, tmp_path)
    assert s.rung_cooldown == 0.1 and s.rungs == (250_000.0, 750_000.0)
    rows = [{"trial_id": "a", "tokens": 1_000_000, "read_tokens": 50_000},
            {"trial_id": "b", "tokens": 500_000, "read_tokens": float("nan")}]
    left = _left(sp, rows, {}, 65, 0.0)
    assert left["explore"]["tokens"] == 1_550_000
    assert left["tokens"] == 10_000_000 - 1_550_000
    # the stopper that ends exploring counts the branches too, as the final phase does
    from tune_gpt.search.budget import TokenBudget

    stop = TokenBudget(1_600_000, str(tmp_path / "none"))
    assert not stop("a", {"tokens": 1_000_000, "read_tokens": 50_000})
    assert stop.used() == 1_050_000
    assert stop("b", {"tokens": 500_000, "read_tokens": 50_000})   # 1.6M with the branches
    # ... and the confirm runs (re-runs of a config, full length) come out of it as well
    from tune_gpt.config import TrainConfig

    knobs = {"a": TrainConfig(n_layer=2, n_embd=64).to_dict()}
    reruns = [{"trial_id": "c1", "confirm_of": "a", "tokens": 2_000_000},
              {"trial_id": "c2", "confirm_of": "a", "tokens": 2_000_000}]
    left = _left(sp, rows, knobs, 65, 0.0, reruns)
    assert left["tokens"] == 10_000_000 - 1_550_000 - 4_000_000
    assert left["confirm"]["runs"] == 2 and left["confirm"]["tokens"] == 4_000_000
    assert left["confirm"]["flops"] > 0


@pytest.mark.e2e
def test_a_search_reads_its_wsd_trials_after_cool_down_branches(tmp_path,
                                                                shakespeare_path) -> None:
    """smoke.yaml with WSD trials and rung_cooldown, on the real stack (Ray, ASHA, Optuna,
    MLflow): the trials report their rung reads (the branch's val_loss, the plateau's
    stable_val_loss), their FLOPs count the branches' tokens, and MLflow keeps both losses."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from tune_gpt.search import SearchOptions, run_search
    from tune_gpt.tracking import TrialRunLogger

    result = run_search(SearchOptions(
        space=str(ROOT / "search_spaces" / "smoke.yaml"), data=str(shakespeare_path),
        name="reads", storage_path=str(tmp_path / "runs"), report=False, quiet=True,
        sets=["fixed.lr_schedule=wsd", "scheduler.rung_cooldown=0.2",
              "budget.num_samples=3"]))
    folder = tmp_path / "runs" / "reads"
    reports = pd.concat([pd.read_csv(f, dtype={"trial_id": str})
                         for f in (folder / "tune").glob("*/progress.csv")])
    read = reports[reports["read_after"] > 0]
    assert len(read) and read["stable_val_loss"].notna().all()
    assert (read["read_after"] == (0.2 * read["iter"]).apply(math.ceil)).all()
    assert (reports["flops"] == (reports["tokens"] + reports["read_tokens"])
            * reports["flops_per_token"]).all()
    assert reports["read_tokens"].max() > 0
    assert sum(result.counts.values()) == 3
    # the curves table draws the run itself (its plateau); the trials table ranks by the reads
    curves = pd.read_csv(folder / "results" / "curves.csv", dtype={"trial_id": str})
    both = curves.merge(read, on=["trial_id", "iter"], suffixes=("", "_reported"))
    assert len(both) == len(read)
    assert ((both["val_loss"] - both["stable_val_loss"]).abs() < 1e-9).all()
    assert (both["val_loss"] > both["val_loss_reported"]).any()
    trials = pd.read_csv(folder / "results" / "trials.csv", dtype={"trial_id": str}).set_index(
        "trial_id")
    for tid, rows in read.groupby("trial_id"):
        assert trials.loc[tid, "best_val_loss"] <= rows["val_loss"].min() + 1e-9
        assert trials.loc[tid, "read_tokens"] > 0
    tid = str(read["trial_id"].iloc[0])
    run_id = TrialRunLogger(result.tracking_uri, None, result.parent_run_id).find(tid)
    stable = MlflowClient(result.tracking_uri).get_metric_history(run_id, "stable_val_loss")
    assert {int(m.step) for m in stable} == set(read[read["trial_id"] == tid]["iter"])


def test_a_branch_cools_down_from_its_first_step_to_min_lr_at_its_last() -> None:
    """The branch's learning rates: 1 - sqrt(progress) from learning_rate, its last step at
    min_lr, its first already below learning_rate (a one-step branch is no plain step)."""
    cfg = _cfg(learning_rate=1e-3, min_lr=1e-4)
    reads = RungReads(frozenset({100, 350}), 0.1)
    for it, steps in ((100, 10), (350, 35)):
        lrs = reads.branch_lrs(it, cfg)
        assert len(lrs) == steps == reads.steps(it)
        assert lrs[-1] == pytest.approx(1e-4) and lrs == sorted(lrs, reverse=True)
        assert lrs[0] == pytest.approx(1e-4 + (1 - math.sqrt(1 / steps)) * 9e-4)
    assert RungReads(frozenset({50}), 0.01).branch_lrs(50, cfg) == [pytest.approx(1e-4)]
