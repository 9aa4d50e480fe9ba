"""PersistentASHA's state file (search/asha.py): JSON that round-trips the rungs, and a
file that is not that state (a pickle that would run code, broken JSON, another search's
rungs) refused in one line before anything of it is used. Fast: no Ray cluster, no trials;
the restore is what Tuner.restore does (unpickling the scheduler), and once the real thing."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from tune_gpt.errors import UserError
from tune_gpt.search.asha import PersistentASHA, state_file

# Rungs at 1, 3 and 9 (grace 1, reduction factor 3), as in test_asha_resume_e2e.py.
OPTS = dict(time_attr="tokens", metric="loss", mode="min", max_t=9, grace_period=1,
            reduction_factor=3)


class RunsCode:
    """Unpickling this calls os.system: what a hostile state file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id)  # all ASHA reads of a trial


def scheduler(path: Path, **opts) -> PersistentASHA:
    return PersistentASHA(state_path=path, **{**OPTS, **opts})


def played(path: Path) -> PersistentASHA:
    """A scheduler that saw four trials reach the first rung: d, the worst, was stopped."""
    s = scheduler(path)
    for tid, loss in (("a", 2.0), ("b", 1.5), ("c", 1.0), ("d", 3.0)):
        s.on_trial_add(None, trial(tid))
        s.on_trial_result(None, trial(tid), {"tokens": 1, "loss": loss})
    assert s._stopped == {"d"}
    return s


def restored(s: PersistentASHA) -> PersistentASHA:
    """What Tuner.restore does to the scheduler it saved in tuner.pkl."""
    return pickle.loads(pickle.dumps(s))


def rungs(s: PersistentASHA) -> list:
    return [list(b._rungs) for b in s._brackets]


def hostile(tmp_path: Path) -> tuple[bytes, Path]:
    """A pickle that creates `marker` when loaded, checked to be real (it does, once)."""
    marker = tmp_path / "marker"
    payload = pickle.dumps(RunsCode(marker))
    pickle.loads(payload)
    assert marker.exists()  # a real payload: plain pickle.load runs it
    marker.unlink()
    return payload, marker


def refused(s: PersistentASHA, path: Path) -> str:
    with pytest.raises(UserError) as e:
        restored(s)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: refused") and "Delete it" in msg
    return msg


# ----------------------------------------------------------------------------- round trip

def test_the_rungs_round_trip_as_json(tmp_path: Path) -> None:
    s = played(tmp_path / "asha.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asha.json"]  # no pickle, no .tmp
    saved = json.loads((tmp_path / "asha.json").read_text())
    assert saved["stopped"] == ["d"] and saved["num_stopped"] == 1
    back = restored(s)
    assert rungs(back) == rungs(s) and back._stopped == {"d"} and back._num_stopped == 1
    assert {t: back._brackets.index(b) for t, b in back._trial_info.items()} == \
        {t: 0 for t in "abcd"}
    # it decides as the original: d again is stopped at once, e is judged against a..d
    for s2 in (s, back):
        assert s2.on_trial_result(None, trial("d"), {"tokens": 3, "loss": 0.1}) == "STOP"
        s2.on_trial_add(None, trial("e"))
    assert back.on_trial_result(None, trial("e"), {"tokens": 1, "loss": 2.5}) == \
        s.on_trial_result(None, trial("e"), {"tokens": 1, "loss": 2.5}) == "STOP"


def test_a_new_search_restored_before_its_first_trial_starts_empty(tmp_path: Path) -> None:
    back = restored(scheduler(tmp_path / "asha.json"))
    assert all(not r for b in back._brackets for _, r in b._rungs) and not back._stopped


def test_an_older_tune_gpts_asha_pkl_is_read_and_written_back_as_json(tmp_path: Path) -> None:
    s = played(tmp_path / "asha.json")
    old = {"brackets": s._brackets, "trial_info": s._trial_info,
           "num_stopped": s._num_stopped, "stopped": s._stopped}  # what it pickled
    (tmp_path / "asha.pkl").write_bytes(pickle.dumps(old))
    (tmp_path / "asha.json").unlink()
    # the scheduler in an older tuner.pkl names asha.pkl and carries `_loaded`
    before = scheduler(tmp_path / "asha.pkl")
    before._loaded = False
    back = restored(before)
    assert rungs(back) == rungs(s) and back._stopped == {"d"} and not hasattr(back, "_loaded")
    back.on_trial_add(None, trial("e"))
    assert json.loads((tmp_path / "asha.json").read_text())["trial_info"]["e"] == 0


# ----------------------------------------------------------------------------- refused

@pytest.mark.parametrize("where", ["asha.json", "asha.pkl"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path: Path,
                                                                  where: str) -> None:
    s = played(tmp_path / "asha.json")
    (tmp_path / "asha.json").unlink()
    payload, marker = hostile(tmp_path)
    (tmp_path / where).write_bytes(payload)
    msg = refused(s, tmp_path / where)
    assert "nothing in it was used or run" in msg
    assert not marker.exists()
    assert (tmp_path / where).read_bytes() == payload  # left as it was, for whoever looks
    assert sorted(p.name for p in tmp_path.iterdir()) == [where]


def test_an_old_pickle_that_calls_rays_bracket_class_is_refused(tmp_path: Path) -> None:
    from ray.tune.schedulers.async_hyperband import _Bracket

    class Calls:  # _Bracket(...) would run its __init__ with the file's arguments
        def __reduce__(self):
            return (_Bracket, (1, 9, 3, 0))

    (tmp_path / "asha.pkl").write_bytes(pickle.dumps({"brackets": [Calls()]}))
    assert "calls _Bracket" in refused(scheduler(tmp_path / "asha.json"), tmp_path / "asha.pkl")


@pytest.mark.parametrize("text, reason", [
    ('{"format": "tune-gpt ASHA state", "version": 1, "brackets": [', "not JSON"),
    ("[1, 2]", "lacks \"format\""),
    ('{"format": "tune-gpt ASHA state", "version": 2}', "version 2"),
])
def test_broken_json_is_refused(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "asha.json").write_text(text)
    assert reason in refused(scheduler(tmp_path / "asha.json"), tmp_path / "asha.json")


def test_a_hand_edited_state_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    s = played(tmp_path / "asha.json")
    saved = json.loads((tmp_path / "asha.json").read_text())
    for key, bad in (("trial_info", {"a": 7}), ("stopped", "d"), ("num_stopped", True),
                     ("brackets", [[[1, {"a": "low"}]]])):
        (tmp_path / "asha.json").write_text(json.dumps({**saved, key: bad}))
        assert key.rstrip("s") in refused(s, tmp_path / "asha.json")


def test_another_searchs_rungs_are_refused(tmp_path: Path) -> None:
    played(tmp_path / "asha.json")
    other = scheduler(tmp_path / "asha.json", grace_period=3, max_t=27)
    assert "its rungs are at" in refused(other, tmp_path / "asha.json")


def test_state_file_is_json_beside_the_path_it_is_given(tmp_path: Path) -> None:
    assert state_file(tmp_path / "asha.pkl") == state_file(tmp_path / "asha.json") == \
        tmp_path / "asha.json"


# ----------------------------------------------------------------------------- the real restore

def _trainable(config: dict) -> None:
    pass


def test_tuner_restore_stops_at_a_hostile_state_file(tmp_path: Path) -> None:
    """Ray's own Tuner.restore (no Ray cluster needed to get this far): the UserError comes
    out as it is, not wrapped or swallowed by Ray, and the payload never runs."""
    from ray import tune

    tune.Tuner(_trainable, tune_config=tune.TuneConfig(
        metric="loss", mode="min", scheduler=scheduler(tmp_path / "asha.json")),
        run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0))
    payload, marker = hostile(tmp_path)
    (tmp_path / "asha.json").write_bytes(payload)
    with pytest.raises(UserError, match="asha.json: refused"):
        tune.Tuner.restore(str(tmp_path / "exp"), trainable=_trainable)
    assert not marker.exists()


SMOKE = str(Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml")


@pytest.fixture(scope="module")
def stopped_search(tmp_path_factory: pytest.TempPathFactory, shakespeare_path: Path
                   ) -> tuple[Path, str]:
    """(storage, name) of a search folder as a search leaves it before its first trial:
    state.json, space.yaml, the MLflow parent and Ray Tune's tuner.pkl (holding the
    PersistentASHA as built)."""
    import yaml

    from tune_gpt import tracking
    from tune_gpt.data import prepare
    from tune_gpt.search.state import SearchOptions, SearchState
    from tune_gpt.search.tuner import build_tuner
    from tune_gpt.space import load_space

    storage, name = tmp_path_factory.mktemp("asha-cli") / "runs", "hostile"
    folder = storage / name
    space = load_space(SMOKE, profile="cpu")
    folder.mkdir(parents=True)
    (folder / "space.yaml").write_text(yaml.safe_dump(space.raw, sort_keys=False))
    uri = tracking.default_tracking_uri(storage)
    parent = tracking.start_parent(uri, "tune-gpt-smoke", name, tags={}, params={},
                                   artifacts=[], artifact_root=storage / "mlartifacts")
    opts = SearchOptions(space=SMOKE, data=str(shakespeare_path), name=name, profile="cpu",
                         storage_path=str(storage))
    SearchState(name=name, space_name=space.name, profile="cpu", tracking_uri=uri,
                parent_run_id=parent, dataset=str(shakespeare_path),
                options={**vars(opts), "resume": False}).write(folder)
    build_tuner(space, folder, str(shakespeare_path), prepare(str(shakespeare_path)), uri,
                parent)
    return storage, name


@pytest.mark.parametrize("command", ["resume", "search --resume"])
def test_tune_gpt_resume_stops_at_a_hostile_state_file(
        tmp_path: Path, stopped_search: tuple[Path, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture, command: str) -> None:
    """`tune-gpt resume NAME` and `tune-gpt search SPACE --resume`: one line, exit 2, and
    the payload never runs. Ray itself is not started: the restore fails before Ray is
    needed."""
    from tune_gpt.cli import main
    from tune_gpt.search import run as run_mod

    storage, name = stopped_search
    state = storage / name / "asha.json"
    payload, marker = hostile(tmp_path)
    state.write_bytes(payload)
    monkeypatch.setattr(run_mod, "connect_ray", lambda address, temp_dir: None)

    argv = ["resume", name] if command == "resume" else \
        ["search", SMOKE, "--resume", "--name", name]
    assert main([*argv, "--storage-path", str(storage)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{state}: refused" in err
    assert not marker.exists() and state.read_bytes() == payload
