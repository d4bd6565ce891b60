"""Optuna's RDBStorage, set up for several workers sharing one database.

- PostgreSQL/MySQL: a connection idle for a second or more is pinged before use
  (storage/idle_ping.py: a restarted server costs a reconnect, not a crash) and a pool of two
  connections, no overflow. A worker's budget lock and tuned-defaults lookups
  draw from this same pool, so a worker never holds more than two connections. Calls that
  fail because the connection broke are retried (storage/resilient.py): a database restart
  stalls workers, it does not stop them.
- SQLite: the file is switched to WAL journaling (readers no longer block the writer, and the
  setting persists in the file) and each connection waits up to 60 s for the write lock instead
  of failing at once with "database is locked".
- Heartbeat on: a worker that dies mid-trial leaves a RUNNING trial whose heartbeat stops; after
  the grace period the next worker to start a trial marks it FAIL and re-queues its parameters.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import warnings
from typing import Any

import optuna

from storage.errors import StorageError
from storage.idle_ping import ping_after_idle
from storage.optuna_internals import behind_cache, cached
from storage.own_trials import OwnTrialsStorage
from storage.races import retry_schema_race
from storage.resilient import ResilientStorage, cannot_write_line, write_problem_line
from storage.url import check_reachable, parse_url, redact, sqlite_path

__all__ = ["HEARTBEAT_GRACE_S", "HEARTBEAT_INTERVAL_S", "application_name",
           "check_sqlite_writable", "open_optuna_storage", "rdb_storage"]

HEARTBEAT_INTERVAL_S = 30
HEARTBEAT_GRACE_S = 120
_SQLITE_LOCK_TIMEOUT_S = 60


def open_optuna_storage(url: str, *, heartbeat_interval_s: int = HEARTBEAT_INTERVAL_S,
                        grace_period_s: int = HEARTBEAT_GRACE_S, max_retry: int = 3,
                        retry_for_s: float = 300.0, pool_size: int = 2,
                        own_trials: bool = True, checked: bool = False) -> ResilientStorage:
    """Optuna's storage for ``url``: RDBStorage behind Optuna's cache, behind the retrying
    wrapper, which (``own_trials``, a worker) serves this process's own running trials from
    memory (storage/own_trials.py). ``pool_size``: pooled connections (a worker's two; the
    gRPC proxy serves many threads). ``rdb_storage(storage)`` gives the RDBStorage.
    ``checked``: the caller has checked the URL is reachable (storage/handle.py)."""
    if not checked:
        check_reachable(url)
    try:
        return _open(url, heartbeat_interval_s=heartbeat_interval_s,
                     grace_period_s=grace_period_s, max_retry=max_retry, retry_for_s=retry_for_s,
                     pool_size=pool_size, own_trials=own_trials)
    except Exception as exc:  # a full or read-only database: one line, not a traceback
        line = write_problem_line(exc, repr(redact(url)))
        if line is None:
            raise
        raise StorageError(line) from exc


def check_sqlite_writable(url: str) -> None:
    """An SQLite database must be writable, and so must its directory (SQLite writes its
    journal beside the file, even to read a WAL database): a StorageError in one line if not.
    Other URLs, and a directory that does not exist (check_reachable says so), pass."""
    path = sqlite_path(url)
    if path is None or not path.parent.is_dir():
        return
    for target in (path.parent, path):
        if target.exists() and not os.access(target, os.W_OK):
            what = "directory" if target.is_dir() else "file"
            raise StorageError(cannot_write_line("read-only", repr(redact(url)),
                                                 f"the {what} {str(target)!r} is not writable"))


def _open(url: str, *, heartbeat_interval_s: int, grace_period_s: int, max_retry: int,
          retry_for_s: float, pool_size: int, own_trials: bool) -> ResilientStorage:
    backend = parse_url(url).get_backend_name()
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            _enable_wal(path)
        engine_kwargs["connect_args"] = {"timeout": _SQLITE_LOCK_TIMEOUT_S}
        engine_kwargs["pool_pre_ping"] = True  # in-process: a ping costs nothing
    else:
        # Two pooled connections, kept open: an overflow connection would be closed after each
        # use and reopened (a new connection per trial, 3 ms each, measured).
        engine_kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=120,
                             pool_recycle=3600)
        if backend == "postgresql":  # pg_stat_activity then says which process holds what
            engine_kwargs["connect_args"] = {"application_name": application_name()}
    with warnings.catch_warnings():
        # Heartbeat and retry are marked experimental since 2.8; they are what we rely on.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = retry_schema_race(
            lambda: _rdb_storage(url, engine_kwargs, heartbeat_interval_s, grace_period_s,
                                 max_retry), what="creating Optuna's tables")
    if backend != "sqlite":
        ping_after_idle(rdb.engine)
    # mypy cannot see the methods ResilientStorage forwards by generation
    kind = OwnTrialsStorage if own_trials else ResilientStorage
    return kind(cached(rdb), retry_for_s=retry_for_s)  # type: ignore[abstract]


def application_name() -> str:
    """``hpsearch:<host>:<pid>``: the name a process's connections carry on PostgreSQL."""
    return f"hpsearch:{socket.gethostname()}:{os.getpid()}"[:63]


def rdb_storage(storage: ResilientStorage) -> optuna.storages.RDBStorage:
    rdb = behind_cache(storage.inner)
    assert isinstance(rdb, optuna.storages.RDBStorage)
    return rdb


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], heartbeat_interval_s: int,
                 grace_period_s: int, max_retry: int) -> optuna.storages.RDBStorage:
    rdb = optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        skip_compatibility_check=True,  # done below, one connection at a time
        heartbeat_interval=heartbeat_interval_s,
        grace_period=grace_period_s,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=max_retry, inherit_intermediate_values=False),
    )
    _check_schema(rdb)
    return rdb


def _check_schema(rdb: optuna.storages.RDBStorage) -> None:
    """Optuna's schema-compatibility check without its nested connection: Optuna's own check
    keeps a transaction open on one connection while it opens a second for Alembic's revision.
    Behind PgBouncer with a small pool, workers starting while another holds the budget lock
    (one connection, waiting for a second) then each held one server connection and waited
    for another: a deadlock, seen in the PgBouncer test."""
    current, head = rdb.get_current_version(), rdb.get_head_version()
    if current == head:
        return
    if current in rdb.get_all_versions():
        raise StorageError(f"the Optuna tables are at schema revision {current!r}, older than "
                           f"this Optuna {optuna.__version__} needs ({head!r}): run optuna "
                           "storage upgrade --storage URL")
    raise StorageError(f"the Optuna tables are at schema revision {current!r}, unknown to this "
                       f"Optuna {optuna.__version__} (newer?): pip install -U optuna")


def _enable_wal(path: Any) -> None:
    conn = sqlite3.connect(str(path), timeout=_SQLITE_LOCK_TIMEOUT_S)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
