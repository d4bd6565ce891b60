"""``hpsearch proxy``: Optuna's gRPC storage proxy in front of the study database.

Workers given ``grpc://HOST:PORT`` (storage/grpc_client.py) hold no database connection; the
proxy holds a pool of its own. Optuna's proxy forwards storage calls only, so the proxy's
storage adds what hpsearch's SQL workers do for themselves:

- the trial budget: a new trial (not one taken from the queue) is created only while the
  study's finished, running and queued trials number fewer than its budget (``BUDGET_ATTR``,
  written by the launcher), counted under the study lock the SQL workers take, so gRPC and SQL
  workers can share one study; past it the call fails with ``BUDGET_SPENT``;
- heartbeats: a worker's beat arrives as the system attribute ``HEARTBEAT_ATTR`` and is recorded
  as Optuna's heartbeat instead; a reaper thread fails the trials of the studies this proxy
  serves whose beat is older than their spec's grace period and re-queues them with the same
  parameters (Optuna's retry callback, the spec's ``max_retries``);
- a trial's record: ``USER_ATTRS_ATTR`` carries several user attributes, written in one
  statement; and a worker asking for ``HANDSHAKE_STUDY`` learns it talks to hpsearch's proxy.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from storage.attrs import BUDGET_ATTR, IMPORTED_ATTR, RECOVERY_ATTR
from storage.errors import StorageError
from storage.grpc_client import (
    BUDGET_SPENT,
    HANDSHAKE_STUDY,
    HEARTBEAT_ATTR,
    PROXY_MARK,
    USER_ATTRS_ATTR,
)
from storage.locks import StudyLock
from storage.optuna_internals import add_proxy_servicer, proxy_servicer_base
from storage.optuna_storage import open_optuna_storage, rdb_storage
from storage.resilient import ResilientStorage
from storage.stale_trials import reclaim_stale_trials

__all__ = ["BudgetSpentError", "ProxyStorage", "serve"]

log = logging.getLogger(__name__)

# Used for a study whose launcher stored no recovery policy (FaultTolerance's defaults).
DEFAULT_GRACE_PERIOD_S = 120
DEFAULT_MAX_RETRIES = 3


class BudgetSpentError(RuntimeError):
    pass


class ProxyStorage(ResilientStorage):
    """The storage behind the gRPC servicer (see the module docstring)."""

    def __init__(self, inner: BaseStorage, *, url: str, retry_for_s: float = 300.0) -> None:
        super().__init__(inner, retry_for_s=retry_for_s)
        self._url = url
        self._served: set[int] = set()
        self._served_lock = threading.Lock()
        self._studies: dict[int, optuna.Study] = {}
        self._names: dict[int, str] = {}

    def __getstate__(self) -> dict[str, Any]:  # pickles like every hpsearch storage
        state = super().__getstate__()
        state.update(_served=set(), _studies={}, _names={})
        del state["_served_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._served_lock = threading.Lock()

    def _serve(self, study_id: int) -> None:
        with self._served_lock:
            self._served.add(study_id)

    def served_studies(self) -> list[int]:
        with self._served_lock:
            return sorted(self._served)

    # -- the budget --------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        self._serve(study_id)
        budget = self.get_study_system_attrs(study_id).get(BUDGET_ATTR)
        if budget is None or (template_trial is not None
                              and template_trial.state != TrialState.RUNNING):
            # A queued trial (a baseline, a retry) fills a slot only when it is taken.
            return int(self._call("create_new_trial", study_id, template_trial))
        lock = StudyLock(self._url, self.get_study_name_from_id(study_id),
                         engine=rdb_storage(self).engine)
        lock.acquire()
        try:
            counts = self.count_trials_by_state(study_id, without_user_attr=IMPORTED_ATTR)
            assert counts is not None
            taken = sum(counts[s] for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                            TrialState.RUNNING, TrialState.WAITING))
            if taken >= int(budget):
                raise BudgetSpentError(f"{BUDGET_SPENT} ({taken} of {budget} trials finished, "
                                       "running or queued)")
            return int(self._call("create_new_trial", study_id, template_trial))
        finally:
            lock.release()

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Any = None) -> list[FrozenTrial]:
        self._serve(study_id)  # a worker looking at the queue: its study is served here
        return list(self._call("get_all_trials", study_id, deepcopy=deepcopy, states=states))

    # -- heartbeats --------------------------------------------------------------------------
    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if key == HEARTBEAT_ATTR:
            self._call("record_heartbeat", trial_id)
        elif key == USER_ATTRS_ATTR:
            self.set_trial_user_attrs(trial_id, dict(value))
        else:
            self._call("set_trial_system_attr", trial_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name == HANDSHAKE_STUDY:  # a worker checking who it talks to
            raise KeyError(f"{PROXY_MARK}: {HANDSHAKE_STUDY} is not a study")
        return int(self._call("get_study_id_from_name", study_name))

    def delete_study(self, study_id: int) -> None:
        self._call("delete_study", study_id)
        self._forget(study_id)  # SQLite may hand its id to the next study

    def _forget(self, study_id: int) -> None:
        with self._served_lock:
            self._served.discard(study_id)
        self._names.pop(study_id, None)
        self._studies.pop(study_id, None)

    def get_study_name_from_id(self, study_id: int) -> str:
        if study_id not in self._names:  # names never change; asked at every new trial
            self._names[study_id] = str(self._call("get_study_name_from_id", study_id))
        return self._names[study_id]

    def reap_stale_trials(self) -> int:
        """Fail and re-queue the served studies' trials whose heartbeat went stale; how many
        this call failed."""
        failed = 0
        for study_id in self.served_studies():
            try:
                grace_s, max_retries = self._recovery(study_id)
            except KeyError:  # deleted meanwhile
                self._forget(study_id)
                continue
            for number in reclaim_stale_trials(self._study(study_id), rdb_storage(self),
                                               grace_s, max_retries):
                failed += 1
                log.warning("trial %d of study %d: no heartbeat for %d s; failed and re-queued",
                            number, study_id, grace_s)
        return failed

    def _recovery(self, study_id: int) -> tuple[int, int]:
        """(grace period in seconds, retries) the launcher stored for the study."""
        raw = self.get_study_user_attrs(study_id).get(RECOVERY_ATTR) or {}
        return (int(raw.get("grace_period_s", DEFAULT_GRACE_PERIOD_S)),
                int(raw.get("max_retries", DEFAULT_MAX_RETRIES)))

    def _study(self, study_id: int) -> optuna.Study:
        if study_id not in self._studies:
            self._studies[study_id] = optuna.load_study(
                study_name=self.get_study_name_from_id(study_id), storage=self)
        return self._studies[study_id]


def open_proxy_storage(url: str, *, threads: int) -> ProxyStorage:
    # Each serving thread may hold one connection, plus the budget lock's and the reaper's.
    inner = open_optuna_storage(url, pool_size=threads + 2, own_trials=False)
    return ProxyStorage(inner.inner, url=url)  # type: ignore[abstract]


def _grpc_server(storage: ProxyStorage, host: str, port: int, threads: int) -> Any:
    """Optuna's servicer, except that a refused trial is answered RESOURCE_EXHAUSTED with the
    reason (not an application error with a server-side traceback per refusal)."""
    import grpc

    class Servicer(proxy_servicer_base()):  # type: ignore[misc]
        def CreateNewTrial(self, request: Any, context: Any) -> Any:  # gRPC's method name
            try:
                return super().CreateNewTrial(request, context)
            except BudgetSpentError as exc:
                context.abort(code=grpc.StatusCode.RESOURCE_EXHAUSTED, details=str(exc))

    server = grpc.server(ThreadPoolExecutor(max_workers=threads))
    add_proxy_servicer(Servicer(storage), server)
    server.add_insecure_port(f"{host}:{port}")
    return server


def serve(url: str, *, host: str, port: int, threads: int = 16,
          reap_every_s: float = 5.0, on_ready: Callable[[], None] = lambda: None,
          stop: threading.Event | None = None) -> None:
    """Serve ``url`` on ``host:port`` until ``stop`` is set (or forever); ``on_ready`` runs
    once it listens."""
    storage = open_proxy_storage(url, threads=threads)
    try:
        server = _grpc_server(storage, host, port, threads)
    except RuntimeError as exc:  # grpc: the port is taken or the host is not this machine's
        raise StorageError(f"cannot listen on {host}:{port} ({exc}); pick a free --port or "
                        "another --host") from None
    stop = stop or threading.Event()

    def reap() -> None:
        while not stop.wait(reap_every_s):
            try:
                storage.reap_stale_trials()
            except Exception:  # the next round tries again; a proxy must not die of it
                log.exception("looking for stale trials failed")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        server.start()
    reaper = threading.Thread(target=reap, name="hpsearch-reaper", daemon=True)
    reaper.start()
    on_ready()
    try:
        stop.wait()
    finally:
        server.stop(grace=2.0).wait()
        reaper.join()
