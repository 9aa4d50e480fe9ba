"""benchmarks/finished_slope.py: the candidate horizon rule it checks (a fixed-exponent data
term through finished runs, flat where the runs bend like running out of data) and its
summary, read from the cells and the 8x runs beside them, never written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import finished_slope as fs


def test_the_rule_recovers_the_data_term_and_flattens_a_saturating_curve() -> None:
    E, A = 1.25, 60.0
    pts = [(t, E + A * t ** -fs.ALPHA) for t in (250_000, 500_000, 1_000_000)]
    got = fs.rule_predict(pts, 8_000_000)
    assert got["predicted"] == pytest.approx(E + A * 8e6 ** -fs.ALPHA, abs=1e-9)
    assert not got["saturated"] and got["alpha"] == pytest.approx(fs.ALPHA, abs=0.01)
    assert 1 < got["noise_x"] < 3  # 8x past its points, the fit amplifies their noise
    # licenses' plan trial: 0.45 then 0.21 nats a doubling, an exponent of ~1
    lic = [(250_368, 2.3061), (500_736, 1.8608), (1_000_704, 1.6483)]
    flat = fs.rule_predict(lic, 3_907_556)
    assert flat["saturated"] and flat["predicted"] == 1.6483
    with pytest.raises(ValueError):
        fs.rule_predict([(1e6, 1.8)], 8e6)


def _cell(path: Path, **values: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))


def test_the_summary_is_computed_from_the_cells(tmp_path: Path) -> None:
    cells, horizon = tmp_path / "cells" / "c", tmp_path / "h" / "c"
    law = {0: (1.3, 50.0), 1: (1.32, 50.0)}  # two seeds
    for seed, (E, A) in law.items():
        for f, t in zip(fs.RULE_FRACTIONS, (250_000, 500_000, 1_000_000)):
            _cell(cells / f"{fs.arm(f, seed)}.json", tokens=t, val_loss=E + A * t ** -fs.ALPHA)
    _cell(horizon / "plan.json", tokens=8_000_000, evidence=["no onset here"])
    _cell(horizon / "lr_x1.json", tokens=8_000_000, val_loss=1.5)
    _cell(horizon / "winner.json", tokens=8_000_000, val_loss=1.52)
    got = fs.corpus_summary(cells, horizon)
    rule = got["rule"]
    assert rule["at"] == 8_000_000 and rule["measured"] == 1.5
    for seed, (E, A) in law.items():
        want = E + A * 8e6 ** -fs.ALPHA
        assert rule["by_seed"][str(seed)]["predicted"] == pytest.approx(want)
        assert rule["by_seed"][str(seed)]["error"] == pytest.approx(want - 1.5)
    assert set(got["long_runs"]) == {"plan", "winner"}
    # the plan predicted at its overfitting onset: read from its evidence
    _cell(horizon / "plan.json", tokens=8_000_000,
          evidence=["config of trial x: ...; predicted at 3,907,556 tokens, not 8,000,000"])
    assert fs.corpus_summary(cells, horizon)["rule"]["at"] == 3_907_556
    assert "| c |" in fs.markdown({"corpora": {"c": got}})
