"""ASHA that keeps its memory across a resume.

Ray Tune 2.60 saves a search's trials, searcher and callbacks, but not its scheduler
(`TuneController.save_to_dir` leaves `_scheduler_alg` out; `AsyncHyperBandScheduler.save`
and `restore` exist and nothing calls them). A restored search therefore starts with empty
rungs: the trials after a crash are judged against nothing, run to their end, and the
compute ASHA would have saved is spent (also seen by Ray Tune users, sisinflab/warprec#126).

`PersistentASHA` writes its rungs to `state_path` whenever they change (a small pickle, an
atomic rename) and reads them back the first time a restored search uses it (the restored
Tuner unpickles the scheduler as it was built, with empty rungs but with `state_path`). It
also remembers which trials it stopped: a trial stopped after Ray's last experiment save is
run again by the restored search, and is stopped again at once rather than waved through
by the rung that already holds its value.

    scheduler = PersistentASHA(state_path=folder / "asha.pkl", time_attr="tokens",
                               max_t=2_000_000, grace_period=250_000, reduction_factor=3)
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class PersistentASHA(ASHAScheduler):
    """ASHAScheduler whose rungs (and stop decisions) survive a driver crash and a resume."""

    def __init__(self, *args: Any, state_path: str | Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.state_path = str(state_path)
        self._stopped: set[str] = set()
        self._loaded = False

    # -- the state, on disk

    def _state(self) -> dict[str, Any]:
        # one pickle, so that _trial_info keeps pointing at the same bracket objects
        return {"brackets": self._brackets, "trial_info": self._trial_info,
                "num_stopped": self._num_stopped, "stopped": self._stopped}

    def _write(self) -> None:
        tmp = f"{self.state_path}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(self._state(), f)
        os.replace(tmp, self.state_path)

    def _load_once(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            with open(self.state_path, "rb") as f:
                state = pickle.load(f)
        except FileNotFoundError:
            return  # a new search
        self._brackets = state["brackets"]
        self._trial_info = state["trial_info"]
        self._num_stopped = state["num_stopped"]
        self._stopped = state["stopped"]

    def _recorded(self) -> int:
        return sum(len(r) for b in self._brackets for _, r in b._rungs)

    # -- what the controller calls

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._load_once()
        if trial.trial_id in self._trial_info:
            return  # a restored trial keeps its bracket
        super().on_trial_add(tune_controller, trial)
        self._write()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._load_once()
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
        self._load_once()
        if trial.trial_id in self._trial_info:  # not when it ended before the crash too
            super().on_trial_complete(tune_controller, trial, result)
            self._write()

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._load_once()
        if trial.trial_id in self._trial_info:
            super().on_trial_remove(tune_controller, trial)
            self._write()

    def __getstate__(self) -> dict[str, Any]:
        # pickled into the experiment as built: the rungs live in state_path, and a
        # restored copy must read them from there
        state = dict(self.__dict__)
        state["_loaded"] = False
        return state
