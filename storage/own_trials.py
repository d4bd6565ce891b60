"""A worker's own running trials, read from memory instead of the database.

Optuna reads the running trial back from storage many times while it runs: once when the
trial starts, once per ``should_prune`` (the pruner's system attributes), once when it is told
its result. On RDBStorage each read is six queries (the trial row and five child tables), so
with ten reported epochs those reads are about a third of all statements a trial costs.

A trial that this process created, or took from the queue (WAITING -> RUNNING), is written only
by this process while it runs, so every write goes through here and a copy kept in memory stays
exact: reads of it are served from that copy, writes go to the database first and update the
copy only once they succeeded. The copy is dropped when the trial finishes, when a write to it
is refused (another worker failed it as stale: the database then says FAIL and the next read
asks the database), and for anything this process did not start. Other processes still read
the database, which holds every write.

The queue: before each trial Optuna looks for WAITING trials by reading the whole study (its
cache refreshed, every trial sorted), inside the worker's budget lock. The database is asked
first how many are waiting (one statement); the study is read only when some are.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar, cast

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from storage.resilient import ResilientStorage

__all__ = ["OwnTrialsStorage"]

_T = TypeVar("_T")
_FIRST_READ_ATTEMPTS = 5


def _as_stored(value: Any) -> Any:
    """What reading ``value`` back from the database gives (JSON round trip: tuples become
    lists, keys strings), so the copy answers as the database would."""
    return json.loads(json.dumps(value))


class OwnTrialsStorage(ResilientStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own: dict[int, FrozenTrial | None] = {}  # None: owned, not read yet
        # Writes to each owned trial so far: a first read that a write overtook (it read the
        # database before the write landed) is not kept, or the write would be lost from the
        # copy for the rest of the trial.
        self._writes: dict[int, int] = {}
        self._own_lock = threading.Lock()
        # Called with the trial id as soon as a trial becomes this process's (created, or
        # taken from the queue): the worker releases its budget lock there.
        self.on_trial_taken: Callable[[int], None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """A copy (pickled into another process, or ``copy.copy``) owns no trial: the copies
        of this one's trials and the hook stay here, and a fresh lock is made."""
        state = super().__getstate__()
        state.update(_own={}, _writes={}, on_trial_taken=None)
        del state["_own_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._own_lock = threading.Lock()

    def _taken(self, trial_id: int) -> None:
        with self._own_lock:
            self._own[trial_id] = None
        if self.on_trial_taken is not None:
            self.on_trial_taken(trial_id)

    # -- ownership ---------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id: int = self._call("create_new_trial", study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._taken(trial_id)
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        changed: bool = self._guarded(trial_id, lambda: self._call(
            "set_trial_state_values", trial_id, state, values))
        if state == TrialState.RUNNING and changed:
            self._taken(trial_id)  # taken from the queue: ours now
        elif state.is_finished() or not changed:
            with self._own_lock:
                self._forget(trial_id)
        return changed

    def _forget(self, trial_id: int) -> None:
        """The trial is not this process's any more (lock held)."""
        self._own.pop(trial_id, None)
        self._writes.pop(trial_id, None)

    def _guarded(self, trial_id: int, write: Callable[[], _T]) -> _T:
        """Run a write; if the database refuses it (the trial was finished elsewhere), forget
        the copy so later reads see what the database says."""
        try:
            return write()
        except Exception:
            with self._own_lock:
                if trial_id in self._own:
                    self._own[trial_id] = None
                    self._writes[trial_id] = self._writes.get(trial_id, 0) + 1
            raise

    def _update(self, trial_id: int, change: Callable[[FrozenTrial], None]) -> None:
        """After a write reached the database: apply it to the copy, and count it."""
        with self._own_lock:
            if trial_id not in self._own:
                return
            self._writes[trial_id] = self._writes.get(trial_id, 0) + 1
            trial = self._own[trial_id]
            if trial is not None:
                change(trial)

    # -- reads -------------------------------------------------------------------------------
    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if isinstance(states, tuple) and states == (TrialState.WAITING,):  # Optuna's queue
            counts = self.count_trials_by_state(study_id)
            if counts is not None and not counts[TrialState.WAITING]:
                return []
        return cast(list[FrozenTrial], self._call("get_all_trials", study_id, deepcopy=deepcopy,
                                                  states=states))

    def _own_copy(self, trial_id: int) -> FrozenTrial | None:
        """The copy of an owned trial (read from the database the first time); None for a
        trial this process does not own. The first read runs outside the lock; it is kept only
        if no write to the trial was applied meanwhile (else it may miss that write: read
        again)."""
        for _ in range(_FIRST_READ_ATTEMPTS):
            with self._own_lock:
                if trial_id not in self._own:
                    return None
                trial = self._own[trial_id]
                writes = self._writes.get(trial_id, 0)
            if trial is not None:
                return copy.deepcopy(trial)
            fresh: FrozenTrial = self._call("get_trial", trial_id)
            with self._own_lock:
                if trial_id not in self._own:  # finished meanwhile
                    return fresh
                if fresh.state != TrialState.RUNNING:
                    self._forget(trial_id)
                    return fresh
                if self._writes.get(trial_id, 0) == writes and self._own[trial_id] is None:
                    self._own[trial_id] = fresh
                    return copy.deepcopy(fresh)
        # Writes kept overtaking the read: answer from the database, keep nothing.
        return cast(FrozenTrial, self._call("get_trial", trial_id))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        own = self._own_copy(trial_id)
        return own if own is not None else cast(FrozenTrial, self._call("get_trial", trial_id))

    def _read_dict(self, trial_id: int, field: str) -> dict[str, Any]:
        own = self._own_copy(trial_id)
        if own is None:
            return cast(dict[str, Any], self._call(f"get_trial_{field}", trial_id))
        return cast(dict[str, Any], getattr(own, field))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._read_dict(trial_id, "system_attrs")

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._read_dict(trial_id, "user_attrs")

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._read_dict(trial_id, "params")

    # -- writes ------------------------------------------------------------------------------
    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self._guarded(trial_id, lambda: self._call(
            "set_trial_param", trial_id, param_name, param_value_internal, distribution))

        def change(t: FrozenTrial) -> None:
            t.params[param_name] = distribution.to_external_repr(param_value_internal)
            t.distributions[param_name] = distribution

        self._update(trial_id, change)

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        self._guarded(trial_id, lambda: self._call(
            "set_trial_intermediate_value", trial_id, step, intermediate_value))
        self._update(trial_id, lambda t: t.intermediate_values.__setitem__(
            step, float(intermediate_value)))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._guarded(trial_id, lambda: self._call("set_trial_user_attr", trial_id, key, value))
        self._update(trial_id, lambda t: t.user_attrs.__setitem__(key, _as_stored(value)))

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        self._guarded(trial_id, lambda: super(OwnTrialsStorage, self).set_trial_user_attrs(
            trial_id, attrs))
        self._update(trial_id, lambda t: t.user_attrs.update(_as_stored(attrs)))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._guarded(trial_id, lambda: self._call("set_trial_system_attr", trial_id, key, value))
        self._update(trial_id, lambda t: t.system_attrs.__setitem__(key, _as_stored(value)))
