"""A storage that survives the database going away for a while (a PostgreSQL restart, a
failover, a dropped network path): every call that fails because the connection broke is
retried with backoff until ``retry_for_s`` has passed, so no worker exits.

Optuna's RDBStorage turns a broken connection into ``StorageInternalError`` (the statement was
rolled back) and SQLAlchemy discards the pool's connections, so the retry gets a fresh one.
A gRPC storage proxy that is out of reach (status UNAVAILABLE) is retried the same way.
Errors that say something about the data (a duplicate study, a finished trial, a missing key)
are not retried.
The storage keeps Optuna's heartbeat interface, so heartbeats, stale-trial detection and the
retry of stale trials work through it; it wraps Optuna's caching layer like ``get_storage``.

A retried write whose first attempt reached the server before the connection broke could be
applied twice; the calls that matter here (trial state, values, attributes) are idempotent
except ``create_new_trial``, where the budget lock bounds the damage to one extra trial.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import sqlalchemy.exc
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from storage.errors import StorageError
from storage.optuna_internals import BaseHeartbeat, behind_cache, write_trial_user_attrs

__all__ = ["ResilientStorage", "cannot_write_line", "is_connection_error", "write_problem",
           "write_problem_line"]

log = logging.getLogger(__name__)

_FORWARDED = sorted(BaseStorage.__abstractmethods__ | BaseHeartbeat.__abstractmethods__
                    | {"check_trial_is_updatable", "get_trial_id_from_study_id_trial_number",
                       "get_trial_number_from_id", "get_trial_params", "get_trial_user_attrs",
                       "get_trial_system_attrs", "get_best_trial", "get_n_trials",
                       "remove_session", "get_failed_trial_callback"})


# What databases say when they cannot write at all (the statement was rolled back: the data is
# as it was before it). SQLite: SQLITE_FULL, SQLITE_READONLY, SQLITE_CANTOPEN (its journal
# beside a file in a read-only directory); PostgreSQL: disk_full (53100), read-only
# transaction (25006); MySQL: "The table is full", ER_OPTION_PREVENTS_STATEMENT.
_FULL = ("database or disk is full", "no space left on device", "could not extend file",
         "disk full", "the table is full")
_READ_ONLY = ("attempt to write a readonly database", "read-only file system",
              "unable to open database file", "read-only transaction",
              "--read-only option")


def write_problem(exc: BaseException) -> str | None:
    """``"full"`` or ``"read-only"`` when ``exc`` (or its cause) says the database cannot
    write; None for anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(getattr(seen, "orig", None) or seen).lower()
        if any(marker in text for marker in _FULL):
            return "full"
        if any(marker in text for marker in _READ_ONLY):
            return "read-only"
        seen = seen.__cause__ or seen.__context__
    return None


def write_problem_line(exc: BaseException, where: str) -> str | None:
    """One line for a database that cannot write (``where``: the redacted URL), or None."""
    kind = write_problem(exc)
    if kind is None:
        return None
    seen: BaseException = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    said = (str(getattr(seen, "orig", None) or seen).strip().splitlines() or ["?"])[0][:160]
    return cannot_write_line(kind, where, said)


def cannot_write_line(kind: str, where: str, said: str) -> str:
    """The one line for a database that is ``"full"`` or ``"read-only"``."""
    if kind == "full":
        return (f"storage {where} is full ({said}): the write was rolled back and the study is "
                "intact; free space where the database lives, then run the same command "
                "again (a launch goes on where it stopped)")
    return (f"storage {where} is read-only ({said}): hpsearch writes to the database, and "
            "SQLite writes its journal beside the file, so the file and its directory must be "
            "writable; fix the permissions or the mount, or copy the database somewhere "
            "writable and point --storage there")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is a lost or refused database connection (a database
    that cannot write, full or read-only, is not: retrying would not help)."""
    if write_problem(exc) is not None:
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and (
                seen.connection_invalidated or isinstance(
                    seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)):
            return True
        if _grpc_unavailable(seen):  # the gRPC storage proxy restarting or out of reach
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _grpc_unavailable(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    if not callable(code) or type(exc).__module__.split(".")[0] != "grpc":
        return False
    return getattr(code(), "name", None) == "UNAVAILABLE"


class ResilientStorage(BaseStorage, BaseHeartbeat):
    """Pickles and copies like Optuna's own storages: the inner storage brings its own
    (RDBStorage reconnects from its URL, the gRPC client reopens its channel)."""

    def __init__(self, inner: BaseStorage, *, retry_for_s: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._inner = inner
        self._retry_for_s = retry_for_s
        self._sleep = sleep
        self._frozen = False
        # The line of the first write the database refused for good (full, read-only): a worker
        # stops on it even where Optuna caught the error and recorded the trial as failed.
        self.write_failure: str | None = None

    def freeze(self) -> None:
        """From now on every call blocks, in every thread, for good: the process is about to
        exit (its launcher died, search/run/lifeline.py) and must write nothing more, least of
        all start a trial, while its trials are failed through another storage."""
        self._frozen = True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_frozen=False, write_failure=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def inner(self) -> BaseStorage:
        return self._inner

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._inner, name)
        return self._call_fn(name, lambda: method(*args, **kwargs))

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes of one trial in one transaction: one check that the trial
        is still running and one multi-row upsert (PostgreSQL, SQLite), where one call per key
        would cost a trial lookup, an upsert and a commit each. Other storages get one call per
        key."""
        if not attrs:
            return
        if hasattr(self._inner, "set_trial_user_attrs"):  # the gRPC client: one call
            self._call("set_trial_user_attrs", trial_id, attrs)
            return
        rdb = _rdb_of(self._inner)
        if rdb is None or not _has_upsert(rdb.engine.name):
            for key, value in attrs.items():
                self._call("set_trial_user_attr", trial_id, key, value)
            return
        self._call_fn("set_trial_user_attrs",
                      lambda: write_trial_user_attrs(rdb, trial_id, attrs))

    def count_trials_by_state(self, study_id: int, *, without_user_attr: str | None = None
                              ) -> Counter[TrialState] | None:
        """Trials per state counted by the database (storage/trial_counts.py), leaving out
        those carrying ``without_user_attr``; None where the storage is not Optuna's RDB."""
        rdb = _rdb_of(self._inner)
        if rdb is None:
            return None
        from storage.trial_counts import count_by_state

        return cast(Counter[TrialState], self._call_fn(
            "count_trials_by_state",
            lambda: count_by_state(rdb, study_id, without_user_attr=without_user_attr)))

    def _call_fn(self, name: str, fn: Callable[[], Any]) -> Any:
        while self._frozen:
            time.sleep(3600)
        deadline = time.monotonic() + self._retry_for_s
        delay = 0.5
        while True:
            try:
                return fn()
            except Exception as exc:
                line = write_problem_line(exc, self._where())
                if line is not None:
                    self.write_failure = self.write_failure or line
                    raise StorageError(line) from exc
                if not is_connection_error(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("storage call %s failed (%s); retrying in %.1f s", name,
                            type(exc).__name__, delay)
                self._sleep(delay)
                delay = min(delay * 2, 10.0)

    def _where(self) -> str:
        """The database, for messages (password hidden)."""
        rdb = _rdb_of(self._inner)
        if rdb is None:
            return "behind the gRPC proxy"
        from storage.url import redact

        return repr(redact(str(rdb.url)))

    def __getattr__(self, name: str) -> Any:  # anything not forwarded explicitly
        # Only once __init__ or unpickling set ``_inner``: pickle and copy look up special
        # methods on an empty instance, which must not recurse into this method.
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)


def _rdb_of(storage: BaseStorage) -> Any:
    from optuna.storages import RDBStorage

    backend = behind_cache(storage)
    return backend if isinstance(backend, RDBStorage) else None


def _has_upsert(dialect: str) -> bool:
    import sqlite3

    return dialect == "postgresql" or (dialect == "sqlite"
                                       and sqlite3.sqlite_version_info >= (3, 24, 0))


def _forward(name: str) -> Callable[..., Any]:
    def method(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    return method


for _name in _FORWARDED:
    setattr(ResilientStorage, _name, _forward(_name))
ResilientStorage.__abstractmethods__ = frozenset()
