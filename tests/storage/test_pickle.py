"""Every storage hpsearch opens pickles and copies, as Optuna's own storages do (users hand
storages to multiprocessing, joblib and dask): the copy reconnects from its URL and reads and
writes the same study."""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_optuna_storage
from storage.grpc_client import open_grpc_storage
from storage.grpc_proxy import serve
from storage.handle import open_storage
from storage.own_trials import OwnTrialsStorage
from storage.resilient import ResilientStorage
from tests.conftest import free_port

_COPIES: dict[str, Callable[[Any], Any]] = {
    "pickle": lambda s: pickle.loads(pickle.dumps(s)),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


def _study_with_trials(storage: Any) -> tuple[optuna.Study, int]:
    """A study with a finished trial and a running one; the running trial's id."""
    study = optuna.create_study(study_name="pickled", storage=storage, direction="maximize")
    done = study.ask()
    done.report(0.25, 1)
    study.tell(done, 0.5)
    running = study.ask()
    running.set_user_attr("worker", "here")  # read once: the running trial is in the copy
    return study, running._trial_id


def _check_copy(other: Any, database: Any, running_id: int) -> None:
    """``database``: a storage (or URL) that reads the database itself, not a cached copy."""
    study = optuna.load_study(study_name="pickled", storage=other)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert trials[0].value == 0.5 and trials[0].intermediate_values == {1: 0.25}
    assert trials[1].user_attrs == {"worker": "here"}
    other.set_trial_user_attr(running_id, "written_by_copy", True)  # it writes too
    stored = optuna.load_study(study_name="pickled", storage=database).trials[1]
    assert stored.user_attrs["written_by_copy"] is True


@pytest.mark.parametrize("how", sorted(_COPIES))
@pytest.mark.parametrize("own_trials", [True, False])
def test_sql_storages_pickle_and_copy(url: str, how: str, own_trials: bool) -> None:
    storage = open_optuna_storage(url, own_trials=own_trials)
    assert isinstance(storage, OwnTrialsStorage if own_trials else ResilientStorage)
    _, running_id = _study_with_trials(storage)
    if isinstance(storage, OwnTrialsStorage):
        storage.on_trial_taken = lambda trial_id: None  # a worker's hook: it stays here
    other = _COPIES[how](storage)
    assert type(other) is type(storage)
    if isinstance(other, OwnTrialsStorage):
        assert other.on_trial_taken is None and other._own == {}
    _check_copy(other, url, running_id)
    # the copy's own trials are cached as the original's are
    if isinstance(other, OwnTrialsStorage):
        study = optuna.load_study(study_name="pickled", storage=other)
        mine = study.ask()
        mine.report(0.75, 1)
        assert other.get_trial(mine._trial_id).intermediate_values == {1: 0.75}
        assert other._own[mine._trial_id] is not None  # kept: the next read is served here


def test_the_storage_of_a_handle_pickles(url: str) -> None:
    handle = open_storage(url)
    storage = handle.optuna()
    _, running_id = _study_with_trials(storage)
    _check_copy(pickle.loads(pickle.dumps(storage)), url, running_id)
    with pytest.raises(TypeError, match="send its url"):
        pickle.dumps(handle)  # the handle itself stays in its process, as documented
    handle.close()


def test_a_frozen_storage_s_copy_is_not_frozen(sqlite_url: str) -> None:
    storage = open_optuna_storage(sqlite_url)
    _study_with_trials(storage)
    storage.freeze()
    other = pickle.loads(pickle.dumps(storage))
    assert len(optuna.load_study(study_name="pickled", storage=other).trials) == 2


@pytest.fixture
def proxy_url(sqlite_url: str) -> Iterator[str]:
    """``hpsearch proxy``'s server on a free port in this process; its grpc:// URL."""
    port, stop, ready = free_port(), threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(sqlite_url,), daemon=True, kwargs={
        "host": "127.0.0.1", "port": port, "threads": 4, "on_ready": ready.set,
        "stop": stop})
    thread.start()
    assert ready.wait(30), "the proxy did not start"
    yield f"grpc://127.0.0.1:{port}"
    stop.set()
    thread.join(30)


@pytest.mark.parametrize("how", sorted(_COPIES))
def test_the_grpc_client_pickles_and_copies(proxy_url: str, sqlite_url: str, how: str) -> None:
    client = open_grpc_storage(proxy_url, heartbeat_interval_s=7)
    _, running_id = _study_with_trials(client)
    other = _COPIES[how](client)
    assert type(other) is type(client) and type(other.inner) is type(client.inner)
    _check_copy(other, sqlite_url, running_id)
    assert other.get_heartbeat_interval() == 7
    other.record_heartbeat(running_id)  # a heartbeat storage still
    other.inner.close()
    client.inner.close()


@pytest.mark.parametrize("how", sorted(_COPIES))
def test_the_proxy_s_own_storage_pickles_and_copies(sqlite_url: str, how: str) -> None:
    from storage.grpc_proxy import ProxyStorage, open_proxy_storage

    storage = open_proxy_storage(sqlite_url, threads=2)
    _, running_id = _study_with_trials(storage)
    other = _COPIES[how](storage)
    assert isinstance(other, ProxyStorage) and other.served_studies() == []
    _check_copy(other, sqlite_url, running_id)
