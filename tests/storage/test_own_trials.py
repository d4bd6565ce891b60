"""A worker's own running trials are read from memory, and read exactly what the database
holds; everything else (other workers' trials, a trial failed elsewhere) is read from the
database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from storage import open_optuna_storage
from storage.optuna_storage import rdb_storage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@contextlib.contextmanager
def _statements(storage: optuna.storages.BaseStorage) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = rdb_storage(storage).engine  # type: ignore[arg-type]

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


def _fields(t: optuna.trial.FrozenTrial) -> tuple[object, ...]:
    return (t.number, t.state, t.params, t.distributions, t.user_attrs, t.system_attrs,
            t.intermediate_values, t.datetime_start)


def test_running_trial_reads_come_from_memory_and_match_the_database(url: str) -> None:
    ours = open_optuna_storage(url)
    study = optuna.create_study(storage=ours, study_name="own", direction="maximize")
    trial = study.ask()
    trial.suggest_float("lr", 1e-3, 1.0, log=True)
    trial.suggest_categorical("batch", [32, 64])
    trial.set_user_attr("config", {"milestones": (2, 3)})  # a tuple comes back a list
    ours.set_trial_user_attrs(trial._trial_id, {"worker": "w1", "epochs": (1, 3)})
    ours.set_trial_system_attr(trial._trial_id, "completed_rung_0", 0.5)
    for epoch, value in enumerate((0.1, 0.3, float("nan")), start=1):
        trial.report(value, epoch)

    with _statements(ours) as seen:
        mine = ours.get_trial(trial._trial_id)
        attrs = ours.get_trial_system_attrs(trial._trial_id)
    assert seen == []  # no round trip for what this process wrote itself
    assert attrs == {"completed_rung_0": 0.5}
    theirs = open_optuna_storage(url).get_trial(trial._trial_id)  # another process's view
    assert _fields(mine)[:-2] == _fields(theirs)[:-2]
    assert mine.intermediate_values[1] == 0.1 and str(mine.intermediate_values[3]) == "nan"
    assert str(theirs.intermediate_values[3]) == "nan"
    assert mine.user_attrs["config"] == {"milestones": [2, 3]}
    mine.user_attrs["worker"] = "changed by the caller"  # callers get copies
    assert ours.get_trial(trial._trial_id).user_attrs["worker"] == "w1"

    study.tell(trial, 0.3)
    with _statements(ours) as seen:
        done = ours.get_trial(trial._trial_id)
    assert seen, "a finished trial is no longer served from the in-memory copy"
    assert done.state == TrialState.COMPLETE and done.value == 0.3


def test_a_trial_failed_elsewhere_refuses_writes_and_reads_from_the_database(url: str) -> None:
    ours = open_optuna_storage(url)
    study = optuna.create_study(storage=ours, study_name="stale", direction="maximize")
    trial = study.ask()
    trial.report(0.1, 1)
    ours.get_trial(trial._trial_id)  # cached now
    other = open_optuna_storage(url)  # the worker that found this trial's heartbeat stale
    assert other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        trial.report(0.2, 2)
    assert ours.get_trial(trial._trial_id).state == TrialState.FAIL


def test_a_queued_trial_taken_by_this_process_is_its_own(url: str) -> None:
    launcher = open_optuna_storage(url)
    optuna.create_study(storage=launcher, study_name="queued", direction="maximize"
                        ).enqueue_trial({"lr": 0.1})
    ours = open_optuna_storage(url)
    study = optuna.load_study(storage=ours, study_name="queued")
    trial = study.ask()
    assert trial.suggest_float("lr", 1e-3, 1.0) == 0.1
    with _statements(ours) as seen:
        assert ours.get_trial(trial._trial_id).params == {"lr": 0.1}
    assert seen == []
    # The launcher did not run it: its reads go to the database and see the parameter.
    assert launcher.get_trial(trial._trial_id).params == {"lr": 0.1}


def test_another_process_running_trial_is_read_from_the_database(url: str) -> None:
    ours = open_optuna_storage(url)
    optuna.create_study(storage=ours, study_name="shared", direction="maximize")
    theirs = optuna.load_study(storage=open_optuna_storage(url), study_name="shared")
    trial = theirs.ask()
    assert ours.get_trial(trial._trial_id).intermediate_values == {}
    trial.report(0.7, 1)
    assert ours.get_trial(trial._trial_id).intermediate_values == {1: 0.7}


def test_user_attributes_in_one_batch_overwrite_and_respect_finished_trials(url: str) -> None:
    storage = open_optuna_storage(url)
    study = optuna.create_study(storage=storage, study_name="attrs", direction="maximize")
    trial = study.ask()
    storage.set_trial_user_attrs(trial._trial_id, {"a": 1, "b": [1, 2]})
    with _statements(storage) as seen:
        storage.set_trial_user_attrs(trial._trial_id, {"b": {"x": None}, "c": "three"})
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1  # one multi-row upsert for both keys
    study.tell(trial, 1.0)
    reread = open_optuna_storage(url).get_trial(trial._trial_id).user_attrs
    assert reread == {"a": 1, "b": {"x": None}, "c": "three"}
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attrs(trial._trial_id, {"late": 1})


def test_the_worker_hears_of_each_trial_it_takes_once_it_exists(url: str) -> None:
    storage = open_optuna_storage(url)
    study = optuna.create_study(storage=storage, study_name="taken", direction="maximize")
    study.enqueue_trial({"lr": 0.1})  # queued by this process: not taken yet
    taken: list[tuple[int, TrialState]] = []
    storage.on_trial_taken = lambda trial_id: taken.append(
        (trial_id, open_optuna_storage(url).get_trial(trial_id).state))  # another view
    assert taken == []
    queued = study.ask()  # dequeued: WAITING -> RUNNING
    fresh = study.ask()  # created
    assert taken == [(queued._trial_id, TrialState.RUNNING), (fresh._trial_id, TrialState.RUNNING)]


def test_the_queue_is_looked_up_by_the_database(url: str) -> None:
    storage = open_optuna_storage(url)
    study = optuna.create_study(storage=storage, study_name="queue", direction="maximize")
    study.add_trial(optuna.create_trial(value=0.5))
    waiting = (TrialState.WAITING,)
    with _statements(storage) as seen:
        assert storage.get_all_trials(study._study_id, states=waiting) == []
    assert len(seen) == 1  # a count, not a read of the study
    other = optuna.load_study(storage=open_optuna_storage(url), study_name="queue")
    other.enqueue_trial({"lr": 0.2})  # another process queues a trial
    queued = storage.get_all_trials(study._study_id, states=waiting)
    assert [t.state for t in queued] == [TrialState.WAITING] and queued[0].number == 1
    study.ask()  # takes it
    assert study.trials[1].state == TrialState.RUNNING


def test_a_write_racing_the_first_read_of_an_own_trial_is_not_lost_from_the_copy(
        sqlite_url: str) -> None:
    """Thread A reads an owned trial for the first time; thread B writes to it after A's
    database read and before A keeps the copy. The copy must hold B's write."""
    import threading

    ours = open_optuna_storage(sqlite_url)
    study = optuna.create_study(storage=ours, study_name="race")
    trial_id = ours.create_new_trial(study._study_id)  # owned, not read yet
    inner = ours.inner
    read_done, written = threading.Event(), threading.Event()
    original = inner.get_trial

    def paused_get_trial(tid: int) -> optuna.trial.FrozenTrial:
        snapshot = original(tid)
        if threading.current_thread().name == "first-reader" and not read_done.is_set():
            read_done.set()  # A has its snapshot, without B's write
            assert written.wait(10)
        return snapshot

    inner.get_trial = paused_get_trial  # type: ignore[method-assign]
    seen: list[optuna.trial.FrozenTrial] = []
    reader = threading.Thread(target=lambda: seen.append(ours.get_trial(trial_id)),
                              name="first-reader")
    reader.start()
    assert read_done.wait(10)
    ours.set_trial_user_attr(trial_id, "epoch_note", "written by B")
    ours.set_trial_intermediate_value(trial_id, 1, 0.5)
    written.set()
    reader.join(10)
    assert seen and seen[0].state == TrialState.RUNNING
    del inner.get_trial
    with _statements(ours) as statements:
        now = ours.get_trial(trial_id)
    assert now.user_attrs == {"epoch_note": "written by B"}
    assert now.intermediate_values == {1: 0.5}
    assert statements == []  # and it is served from the copy again
