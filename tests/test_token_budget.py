"""budget.total_tokens: the Ray Tune stopper that ends a search at a compute budget."""

from __future__ import annotations

import pickle
from pathlib import Path

from tune_gpt.search.budget import TokenBudget


def test_stops_when_the_trials_together_reach_the_budget(tmp_path: Path) -> None:
    stop = TokenBudget(1000, str(tmp_path))
    assert not stop.stop_all()                      # nothing reported yet
    assert not stop("a", {"tokens": 300})
    assert not stop("b", {"tokens": 400})
    assert not stop("a", {"tokens": 500})          # a's count is cumulative: 500 + 400
    assert stop.used() == 900 and not stop.stop_all()
    assert stop("b", {"tokens": 600})              # 500 + 600 >= 1000
    assert stop.stop_all()


def test_a_restored_search_keeps_counting_from_the_progress_files(tmp_path: Path) -> None:
    # What Ray's CSV logger leaves per trial; trial "a" finished before the driver died.
    (tmp_path / "trial_a").mkdir()
    (tmp_path / "trial_a" / "progress.csv").write_text(
        "tokens,val_loss,trial_id\n250,2.5,a\n700,2.1,a\n")
    (tmp_path / "trial_b").mkdir()
    (tmp_path / "trial_b" / "progress.csv").write_text("tokens,val_loss,trial_id\n100,2.9,b\n")
    stop = TokenBudget(1000, str(tmp_path))
    stop("b", {"tokens": 150})
    assert stop.used() == 850                      # 700 (a, from disk) + 150 (b, live)
    stop.spent = {"x": 5.0}
    restored = pickle.loads(pickle.dumps(stop))    # how Tuner.restore brings it back
    assert restored.spent is None and restored.total_tokens == 1000
    assert restored("b", {"tokens": 300})          # 700 + 300


def test_the_live_view_shows_the_compute_spent_and_what_is_left() -> None:
    import io
    from types import SimpleNamespace

    from tune_gpt.search.live import LiveView

    out = io.StringIO()
    view = LiveView(20, ["learning_rate"], "val_loss", 2, None, every_s=0.0, stream=out,
                    total_tokens=4_000_000)
    view.setup()
    view._start -= 100.0  # 100 s in
    a = SimpleNamespace(trial_id="a", status="RUNNING", config={"learning_rate": 1e-3})
    b = SimpleNamespace(trial_id="b", status="RUNNING", config={"learning_rate": 2e-3})
    view.on_trial_result(0, [a, b], a, {"tokens": 500_000, "val_loss": 2.5,
                                        "outcome": "running"})
    view.on_trial_result(0, [a, b], b, {"tokens": 500_000, "val_loss": 2.4,
                                        "outcome": "running"})
    line = out.getvalue().strip().splitlines()[-1]
    assert "tokens 1.00M of 4.00M" in line
    assert "~5m00s left" in line      # 3M tokens to go at 10k tokens/s


def test_a_trial_cut_by_a_budget_before_its_first_report_is_stopped_early_not_failed() -> None:
    from tune_gpt import trial as outcomes
    from tune_gpt.trial import outcome_of

    assert outcome_of({}) == outcomes.STOPPED_EARLY     # ended without error, never reported
    assert outcome_of(None) == outcomes.STOPPED_EARLY
    assert outcome_of({}, errored=True) == outcomes.FAILED
    assert outcome_of({"outcome": "running"}) == outcomes.STOPPED_EARLY
    assert outcome_of({"outcome": outcomes.OOM}) == outcomes.OOM
