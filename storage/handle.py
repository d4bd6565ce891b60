"""One storage per process: a URL opened once, with one reachability check and one engine.

A command resolves its storage URL and opens it here once (``open_storage``); the storage is
checked to answer once, when first used (so a command validates its own input before it
touches the database: a bad spec leaves no SQLite file behind). The handle
knows what kind of storage it is (SQLite, PostgreSQL, MySQL, or a ``grpc://`` proxy: the one
place that tells them apart), how to name it in messages (``redacted``), and holds, created
when first needed:

- Optuna's storage (``optuna()``): for SQL, RDBStorage behind the cache and the retrying
  wrapper (storage/optuna_storage.py); for ``grpc://HOST:PORT``, the client of
  ``hpsearch proxy`` (storage/grpc_client.py), whose handshake is that storage's
  reachability check;
- the process's one SQLAlchemy engine (``engine``), which is Optuna's: hpsearch's own tables,
  migrations, the budget lock, tuned-defaults lookups, registry pins and the connection count
  borrow its pool instead of building engines of their own. A ``grpc://`` storage has none.

A handle holds an engine, so it is never sent to another process: a worker process receives
the URL and opens its own handle there.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal, cast

import optuna
import sqlalchemy
from optuna.storages import RDBStorage

from storage.errors import StorageError
from storage.optuna_storage import (
    HEARTBEAT_GRACE_S,
    HEARTBEAT_INTERVAL_S,
    check_sqlite_writable,
    open_optuna_storage,
    rdb_storage,
)
from storage.resilient import ResilientStorage
from storage.url import check_reachable, parse_url, redact, resolve_storage_url

__all__ = ["OptunaSettings", "StorageHandle", "StorageKind", "open_storage"]

log = logging.getLogger(__name__)

StorageKind = Literal["sqlite", "postgresql", "mysql", "grpc"]


@dataclass(frozen=True)
class OptunaSettings:
    """How Optuna's storage watches running trials: a beat every ``heartbeat_interval_s``, a
    trial without one for ``grace_period_s`` is failed and re-queued up to ``max_retry``
    times. A study's spec sets them (fault_tolerance); commands that run no trial use these
    defaults."""

    heartbeat_interval_s: int = HEARTBEAT_INTERVAL_S
    grace_period_s: int = HEARTBEAT_GRACE_S
    max_retry: int = 3


class StorageHandle:
    """An opened storage URL. Build it with ``open_storage``."""

    def __init__(self, url: str, kind: StorageKind) -> None:
        self.url = url
        self.kind: StorageKind = kind
        self._optuna: ResilientStorage | None = None
        self._settings: OptunaSettings | None = None
        self._frozen = False

    def __repr__(self) -> str:
        return f"StorageHandle({self.redacted!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a StorageHandle holds a database engine and stays in its process; "
                        "send its url and open_storage(url) in the other process")

    @property
    def redacted(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return redact(self.url)

    @property
    def is_proxy(self) -> bool:
        """Whether this is a ``grpc://`` storage proxy (no SQL: no engine, no own tables)."""
        return self.kind == "grpc"

    def optuna(self, settings: OptunaSettings | None = None, *,
               connect_timeout_s: float = 20.0) -> ResilientStorage:
        """Optuna's storage, opened on first use. ``settings``: the study's heartbeat and
        retries (default: the ones it was opened with, else ``OptunaSettings()``); a later
        call with other settings applies them to the open storage."""
        wanted = settings or self._settings or OptunaSettings()
        if self._optuna is not None and wanted == self._settings:
            return self._optuna
        if self.is_proxy:
            from storage.grpc_client import open_grpc_storage

            if self._optuna is not None:
                self._optuna.inner.close()  # type: ignore[attr-defined]
            self._optuna = open_grpc_storage(self.url,
                                             heartbeat_interval_s=wanted.heartbeat_interval_s,
                                             connect_timeout_s=connect_timeout_s)
        elif self._optuna is None:
            check_sqlite_writable(self.url)  # a read-only place: one line, not a traceback
            check_reachable(self.url)  # the one check: a one-line error naming the fix
            self._optuna = open_optuna_storage(
                self.url, heartbeat_interval_s=wanted.heartbeat_interval_s,
                grace_period_s=wanted.grace_period_s, max_retry=wanted.max_retry, checked=True)
        else:
            _retune(rdb_storage(self._optuna), wanted)
        self._settings = wanted
        if self._frozen:
            self._optuna.freeze()
        return self._optuna

    def freeze(self) -> None:
        """Every later call of this handle's Optuna storage blocks, in every thread: the
        process is about to exit and must write nothing more (search/run/lifeline.py)."""
        self._frozen = True
        if self._optuna is not None:
            self._optuna.freeze()

    def check(self) -> StorageHandle:
        """Open the storage now, failing in one line if it does not answer."""
        self.optuna()
        return self

    def rdb(self) -> RDBStorage:
        """The RDBStorage behind ``optuna()`` (optuna-dashboard wants it plain)."""
        self.require_sql("Optuna's RDBStorage")
        return rdb_storage(self.optuna())

    @property
    def engine(self) -> sqlalchemy.Engine:
        """The process's one SQLAlchemy engine: Optuna's storage's, shared."""
        self.require_sql("hpsearch's own tables")
        return self.rdb().engine

    def require_sql(self, what: str) -> None:
        if self.is_proxy:
            raise StorageError(f"{what} need(s) the database itself, and {self.url} is a gRPC "
                               "storage proxy, which serves workers only (hpsearch worker, "
                               "launch --worker-storage); give the database URL instead")

    def close(self) -> None:
        """Release the connections (the process may open the URL again afterwards)."""
        if self._optuna is None:
            return
        if self.is_proxy:
            self._optuna.inner.close()  # type: ignore[attr-defined]
        else:
            rdb_storage(self._optuna).engine.dispose()
        self._optuna = None
        self._settings = None


def _retune(rdb: RDBStorage, settings: OptunaSettings) -> None:
    """Apply a study's heartbeat settings to an open RDBStorage (its public attributes, as its
    constructor sets them): reading the study's spec needs the storage before they are known."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=settings.max_retry, inherit_intermediate_values=False)
    rdb.heartbeat_interval = settings.heartbeat_interval_s
    rdb.grace_period = settings.grace_period_s
    rdb.heartbeat_stale_trial_callback = callback
    rdb.failed_trial_callback = callback


def open_storage(url: str | None = None, *, allow_grpc: bool = False) -> StorageHandle:
    """Resolve ``url`` (``--storage``, else ``$HPSEARCH_STORAGE``, else the default); a URL
    that is not a storage URL fails here. Whether it answers is checked once, on first use
    (for ``grpc://HOST:PORT``, accepted with ``allow_grpc``, the check is the handshake).
    ``check()`` checks now."""
    resolved = resolve_storage_url(url, allow_grpc=allow_grpc)
    if resolved.startswith("grpc://"):
        return StorageHandle(resolved, "grpc")
    kind = cast(StorageKind, parse_url(resolved).get_backend_name())
    return StorageHandle(resolved, kind)
