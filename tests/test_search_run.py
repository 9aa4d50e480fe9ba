"""search/run.py's Ray session: the local Ray's session folder is removed however the
search ends. Fast: connect_ray is replaced by a stand-in that writes into the folder as
Ray does; tests/test_search_e2e.py checks the same with a real Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_gpt.errors import SearchInterrupted, UserError
from tune_gpt.search import run as run_mod


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The session folders ray_session made, each with a log in it as Ray leaves one."""
    made: list[Path] = []

    def connect(address: str | None, temp_dir: str) -> None:
        made.append(Path(temp_dir))
        (made[-1] / "session_latest" / "logs").mkdir(parents=True)
        (made[-1] / "session_latest" / "logs" / "raylet.out").write_text("...")

    monkeypatch.setattr(run_mod, "connect_ray", connect)
    return made


def test_the_session_folder_goes_when_the_search_ends(sessions: list[Path]) -> None:
    with run_mod.ray_session(None):
        assert sessions[0].name.startswith("tgray-") and sessions[0].is_dir()
    assert not sessions[0].exists()


@pytest.mark.parametrize("error", [UserError("bad data"), SearchInterrupted("x", 2),
                                   KeyboardInterrupt()])
def test_and_when_it_fails_or_is_interrupted(sessions: list[Path],
                                             error: BaseException) -> None:
    with pytest.raises(type(error)):
        with run_mod.ray_session(None):
            raise error
    assert len(sessions) == 1 and not sessions[0].exists()


def test_and_when_ray_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def refuse(address: str | None, temp_dir: str) -> None:
        made.append(temp_dir)
        raise UserError("cannot connect to the Ray cluster")

    monkeypatch.setattr(run_mod, "connect_ray", refuse)
    with pytest.raises(UserError):
        with run_mod.ray_session("ray://nowhere:10001"):
            pytest.fail("the body runs only once Ray is connected")
    assert len(made) == 1 and not Path(made[0]).exists()
