"""conftest.py's rule for input from outside the project (../shared): missing, it fails the
test in CI and skips it elsewhere, naming the path and the variable that points elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import in_ci, required


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception),
                                         ("1", pytest.fail.Exception),
                                         ("false", pytest.skip.Exception),
                                         ("", pytest.skip.Exception)])
def test_a_missing_input_fails_in_ci_and_is_skipped_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type) -> None:
    monkeypatch.setenv("CI", ci)
    missing = tmp_path / "nowhere" / "input.txt"
    with pytest.raises(outcome) as e:
        required(missing, "tinyshakespeare's input.txt", "set TUNE_GPT_TEST_DATA to a copy")
    assert str(missing) in str(e.value) and "TUNE_GPT_TEST_DATA" in str(e.value)
    assert ("CI must have it" in str(e.value)) == in_ci()


def test_a_present_input_is_handed_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert required(tmp_path, "a folder", "set X") == tmp_path


def test_every_input_from_shared_is_found_through_the_rule() -> None:
    """No test reaches ../shared but through conftest.py's fixtures (which apply `required`)."""
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*.py")):
        if path.name in ("conftest.py", Path(__file__).name):
            continue
        text = path.read_text(encoding="utf-8")
        assert '"shared"' not in text and "'shared'" not in text, path.name
