"""ASHA that keeps its memory across a resume.

Ray Tune 2.60 saves a search's trials, searcher and callbacks, but not its scheduler
(`TuneController.save_to_dir` leaves `_scheduler_alg` out; `AsyncHyperBandScheduler.save`
and `restore` exist and nothing calls them). A restored search therefore starts with empty
rungs: the trials after a crash are judged against nothing, run to their end, and the
compute ASHA would have saved is spent (also seen by Ray Tune users, sisinflab/warprec#126).

`PersistentASHA` writes its rungs to a small JSON file whenever they change (an atomic
rename) and reads them back when a restored search unpickles it (the restored Tuner
unpickles the scheduler as it was built, with empty rungs but with `state_path`). It also
remembers which trials it stopped: a trial stopped after Ray's last experiment save is run
again by the restored search, and is stopped again at once rather than waved through by the
rung that already holds its value.

    scheduler = PersistentASHA(state_path=folder / "asha.json", time_attr="tokens",
                               max_t=2_000_000, grace_period=250_000, reduction_factor=3)

The file is JSON, never a pickle: the storage path may be shared by the users of a cluster,
and loading a pickle runs whatever it names. A file that is not the state this module writes
is refused with one line (UserError) before anything of it is used, and the resume stops.
An asha.pkl left by an older tune-gpt is read through a restricted unpickler that can only
rebuild ASHA's rungs (it resolves one name, Ray's _Bracket, to an inert stand-in, and calls
nothing); the next write turns it into asha.json.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tune_gpt.errors import UserError

FORMAT = "tune-gpt ASHA state"
VERSION = 1
KEYS = {"format", "version", "brackets", "trial_info", "num_stopped", "stopped"}


def state_file(state_path: str | Path) -> Path:
    """Where the state for `state_path` is written: beside it, as STEM.json."""
    return Path(state_path).with_suffix(".json")


def read_state(state_path: str | Path) -> dict[str, Any] | None:
    """The saved state for `state_path` as plain data, checked; None when there is none yet
    (a search that crashed before its first trial). UserError when the file is refused."""
    path = state_file(state_path)
    if path.exists():
        return _read_json(path)
    legacy = Path(state_path).with_suffix(".pkl")
    if legacy.exists():
        return _read_legacy(legacy)
    return None


def _refused(path: Path, reason: str) -> UserError:
    return UserError(f"{path}: refused, not the ASHA state tune-gpt writes ({reason}); "
                     f"nothing in it was used or run. Delete it and resume again: ASHA then "
                     f"forgets the stop decisions made before the interruption")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return _checked(json.loads(path.read_text(encoding="utf-8")))
    except UnicodeDecodeError:
        raise _refused(path, "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise _refused(path, f"not JSON: {e}") from None
    except ValueError as e:  # from _checked
        raise _refused(path, str(e)) from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the ASHA state ({e.strerror}); make it readable "
                        f"and resume again") from None


def _checked(data: Any) -> dict[str, Any]:
    """`data` if it has the shape `_plain` writes, else ValueError saying what is wrong."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"it lacks \"format\": \"{FORMAT}\"")
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r}; this tune-gpt reads {VERSION}")
    if set(data) != KEYS:
        raise ValueError(f"keys {sorted(data)}, expected {sorted(KEYS)}")
    brackets = data["brackets"]
    if not isinstance(brackets, list) or not brackets:
        raise ValueError("brackets must be a non-empty list")
    for b in brackets:
        if not isinstance(b, list) or not all(
                isinstance(r, list) and len(r) == 2 and _number(r[0]) and isinstance(r[1], dict)
                and all(isinstance(t, str) and _number(v) for t, v in r[1].items()) for r in b):
            raise ValueError("each bracket must be a list of [milestone, {trial_id: value}]")
    info = data["trial_info"]
    if not isinstance(info, dict) or not all(
            isinstance(t, str) and isinstance(i, int) and not isinstance(i, bool)
            and 0 <= i < len(brackets) for t, i in info.items()):
        raise ValueError("trial_info must map trial ids to bracket numbers")
    n = data["num_stopped"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("num_stopped must be a count")
    if not isinstance(data["stopped"], list) or not all(isinstance(t, str)
                                                        for t in data["stopped"]):
        raise ValueError("stopped must be a list of trial ids")
    return data


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ----------------------------------------------------------------------------- older asha.pkl

class _OldBracket:
    """What an old pickle's _Bracket becomes: made empty (NEWOBJ) and given its attributes
    (BUILD), which run nothing; a pickle that calls the class instead is refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise pickle.UnpicklingError("it calls _Bracket(...)")


class _OldState(pickle.Unpickler):
    """Unpickles the dict an older PersistentASHA wrote: dicts, lists, tuples, sets, numbers,
    strings and Ray's _Bracket. Every other name a pickle refers to is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("ray.tune.schedulers.async_hyperband", "_Bracket"):
            return _OldBracket
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def _read_legacy(path: Path) -> dict[str, Any]:
    try:
        old = _OldState(io.BytesIO(path.read_bytes())).load()
        brackets = list(old["brackets"])
        index = {id(b): i for i, b in enumerate(brackets)}
        return _checked({
            "format": FORMAT, "version": VERSION,
            "brackets": [[[m, dict(r)] for m, r in vars(b)["_rungs"]] for b in brackets],
            "trial_info": {t: index[id(b)] for t, b in old["trial_info"].items()},
            "num_stopped": old["num_stopped"], "stopped": sorted(old["stopped"])})
    except OSError as e:
        raise UserError(f"{path}: cannot read the ASHA state ({e.strerror}); make it readable "
                        f"and resume again") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, MemoryError, RecursionError) as e:
        raise _refused(path, f"an older tune-gpt's pickle, but {e}") from None


# ----------------------------------------------------------------------------- the scheduler

class PersistentASHA(ASHAScheduler):
    """ASHAScheduler whose rungs (and stop decisions) survive a driver crash and a resume."""

    def __init__(self, *args: Any, state_path: str | Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.state_path = str(state_path)  # written as state_file(state_path)
        self._stopped: set[str] = set()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A restored search: Tuner.restore unpickles the scheduler as it was built, in the
        # driver, before fit(). Its rungs are read back here, so that a refused state file
        # stops the resume before anything runs; inside fit(), Ray would catch the error of
        # a scheduler callback and start the experiment again from nothing.
        state.pop("_loaded", None)  # written by an older tune-gpt, which read lazily
        self.__dict__.update(state)
        saved = read_state(self.state_path)
        if saved is not None:
            self._restore(saved)

    # -- the state, on disk

    def _plain(self) -> dict[str, Any]:
        index = {id(b): i for i, b in enumerate(self._brackets)}
        return {"format": FORMAT, "version": VERSION,
                "brackets": [[[_py(m), {t: float(v) for t, v in r.items()}]
                              for m, r in b._rungs] for b in self._brackets],
                "trial_info": {t: index[id(b)] for t, b in self._trial_info.items()},
                "num_stopped": int(self._num_stopped), "stopped": sorted(self._stopped)}

    def _write(self) -> None:
        path = state_file(self.state_path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self._plain(), separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)

    def _restore(self, saved: dict[str, Any]) -> None:
        """Fill the rungs with `saved` (read_state's), which must have this ASHA's rungs."""
        mine = [[m for m, _ in b._rungs] for b in self._brackets]
        theirs = [[m for m, _ in b] for b in saved["brackets"]]
        if len(mine) != len(theirs) or not all(
                len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a, b))
                for a, b in zip(mine, theirs)):
            raise _refused(state_file(self.state_path),
                           f"its rungs are at {theirs}, this search's at {mine}")
        for bracket, rungs in zip(self._brackets, saved["brackets"]):
            bracket._rungs = [(m, dict(recorded))
                              for (m, _), (_, recorded) in zip(bracket._rungs, rungs)]
        self._trial_info = {t: self._brackets[i] for t, i in saved["trial_info"].items()}
        self._num_stopped = saved["num_stopped"]
        self._stopped = set(saved["stopped"])

    def _recorded(self) -> int:
        return sum(len(r) for b in self._brackets for _, r in b._rungs)

    # -- what the controller calls

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if trial.trial_id in self._trial_info:
            return  # a restored trial keeps its bracket
        super().on_trial_add(tune_controller, trial)
        self._write()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if trial.trial_id in self._stopped:
            return TrialScheduler.STOP  # stopped before the crash, run again by the restore
        before = self._recorded()
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            self._stopped.add(trial.trial_id)
        if action == TrialScheduler.STOP or self._recorded() != before:
            self._write()
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if trial.trial_id in self._trial_info:  # not when it ended before the crash too
            super().on_trial_complete(tune_controller, trial, result)
            self._write()

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if trial.trial_id in self._trial_info:
            super().on_trial_remove(tune_controller, trial)
            self._write()


def _py(v: Any) -> Any:
    """A milestone as plain JSON: numpy scalars become Python numbers."""
    return v.item() if hasattr(v, "item") else v
