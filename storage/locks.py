"""A cross-process lock per study, held by a worker while it checks the trial budget and
creates its next trial, so N workers never start more trials than the budget allows.

- PostgreSQL: a session advisory lock on a dedicated connection (works across machines).
- SQLite: an exclusive ``flock`` on a file beside the database (SQLite is one machine anyway).
  Not SQLite's own write lock: Optuna must keep writing while we hold this one.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os

import sqlalchemy

from storage.errors import StorageError
from storage.url import parse_url, sqlite_path

__all__ = ["StudyLock"]

log = logging.getLogger(__name__)


class StudyLock:
    """Re-acquirable lock; ``release`` is idempotent so it can be called as soon as a trial
    exists and again in a ``finally``."""

    def __init__(self, url: str, study_name: str) -> None:
        self._backend = parse_url(url).get_backend_name()
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big",
                                   signed=True)
        self._held = False
        self._fd: int | None = None
        self._engine: sqlalchemy.Engine | None = None
        self._conn: sqlalchemy.Connection | None = None
        if self._backend == "sqlite":
            db = sqlite_path(url)
            if db is None:
                raise StorageError("an in-memory SQLite storage cannot be shared by workers; "
                                   "use a file, e.g. sqlite:///hpsearch.db")
            digest = hashlib.sha256(study_name.encode()).hexdigest()[:12]
            self._path = f"{db}.{digest}.lock"
        elif self._backend == "postgresql":
            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                                    pool_pre_ping=True)
        else:
            raise StorageError(f"budget locking is implemented for SQLite and PostgreSQL, not "
                               f"{self._backend!r}; use one of those for the study storage")

    def acquire(self) -> None:
        if self._held:
            return
        if self._backend == "sqlite":
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        else:
            assert self._engine is not None
            self._conn = self._engine.connect()
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            self._conn.commit()
        self._held = True

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
                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                   {"k": self._key})
                self._conn.commit()
            finally:
                # Closing the session also drops the lock if the unlock itself failed.
                self._conn.close()
                self._conn = None

    def close(self) -> None:
        self.release()
        if self._engine is not None:
            self._engine.dispose()
