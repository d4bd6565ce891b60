"""A cross-process lock per study, held by a worker while it checks the trial budget and
creates its next trial, so N workers never start more trials than the budget allows.

- PostgreSQL: a transaction-scoped advisory lock (``pg_try_advisory_xact_lock``, polled) on a
  connection held only while the lock is (works across machines, and through PgBouncer in
  transaction pooling, where session locks would leak and a blocked waiter would pin a server
  connection). If the server restarts, acquiring retries until it is back; a lock lost with
  its connection is simply gone.
- SQLite: an exclusive ``flock`` on a file beside the database (SQLite is one machine anyway).
  Not SQLite's own write lock: Optuna must keep writing while we hold this one.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time

import sqlalchemy
import sqlalchemy.exc

from storage.errors import StorageError
from storage.url import parse_url, sqlite_path

__all__ = ["StudyLock"]

log = logging.getLogger(__name__)

_FIRST_WAIT_S = 0.002  # polling a held lock: 2 ms, doubling up to 50 ms
_MAX_WAIT_S = 0.05


class StudyLock:
    """Re-acquirable lock; ``release`` is idempotent so it can be called as soon as a trial
    exists and again in a ``finally``."""

    def __init__(self, url: str, study_name: str, *,
                 engine: sqlalchemy.Engine | None = None) -> None:
        """``engine``: draw the lock's connection from this pool (a worker passes Optuna's, so
        the lock adds no connection of its own); by default a private unpooled engine."""
        self._backend = parse_url(url).get_backend_name()
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big",
                                   signed=True)
        self._held = False
        self._fd: int | None = None
        self._engine: sqlalchemy.Engine | None = None
        self._owns_engine = False
        self._conn: sqlalchemy.Connection | None = None
        if self._backend == "sqlite":
            db = sqlite_path(url)
            if db is None:
                raise StorageError("an in-memory SQLite storage cannot be shared by workers; "
                                   "use a file, e.g. sqlite:///hpsearch.db")
            digest = hashlib.sha256(study_name.encode()).hexdigest()[:12]
            self._path = f"{db}.{digest}.lock"
        elif self._backend == "postgresql":
            self._owns_engine = engine is None
            self._engine = engine or sqlalchemy.create_engine(
                url, poolclass=sqlalchemy.pool.NullPool, pool_pre_ping=True)
        else:
            raise StorageError(f"budget locking is implemented for SQLite and PostgreSQL, not "
                               f"{self._backend!r}; use one of those for the study storage")

    def acquire(self, *, retry_for_s: float = 300.0) -> None:
        if self._held:
            return
        if self._backend == "sqlite":
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        else:
            self._acquire_pg(retry_for_s)
        self._held = True

    def _acquire_pg(self, retry_for_s: float) -> None:
        assert self._engine is not None
        deadline = time.monotonic() + retry_for_s
        delay = 0.5
        wait = _FIRST_WAIT_S
        while True:
            conn = None
            try:
                conn = self._engine.connect()
                taken = conn.execute(sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:k)"),
                                     {"k": self._key}).scalar_one()
                if taken:  # held until this transaction ends
                    self._conn = conn
                    return
                # Held elsewhere: give the connection back while waiting. A worker blocked in
                # pg_advisory_xact_lock would keep a server connection, and behind PgBouncer
                # with a small pool the holder could then wait forever for one of its own.
                conn.rollback()
                conn.close()
                time.sleep(wait)
                wait = min(2 * wait, _MAX_WAIT_S)
            except sqlalchemy.exc.DBAPIError as exc:
                if conn is not None:
                    conn.close()
                if time.monotonic() + delay > deadline:
                    raise StorageError(f"cannot take the study lock: the database stayed "
                                       f"unreachable for {retry_for_s:.0f} s ({exc.orig})"
                                       ) from None
                log.warning("study lock: database unreachable (%s); retrying in %.1f s",
                            str(exc.orig).strip().splitlines()[0], delay)
                time.sleep(delay)
                delay = min(2 * delay, 10.0)

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            try:
                self._conn.rollback()  # ends the transaction: the lock goes with it
            except sqlalchemy.exc.DBAPIError as exc:
                # The connection died (server restart): the lock died with it.
                log.warning("study lock: connection lost on release (%s)",
                            str(exc.orig).strip().splitlines()[0])
            finally:
                self._conn.close()
                self._conn = None

    def close(self) -> None:
        self.release()
        if self._engine is not None and self._owns_engine:
            self._engine.dispose()
