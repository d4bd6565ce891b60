"""The one module that touches Optuna's private API (names starting with ``_``).

Optuna may rename or move anything private in any release, so every such use lives here, each
with why it is needed and the Optuna versions whose source was read for it: 4.2.0 and 4.2.1
(4.2 is the oldest Optuna hpsearch's gRPC proxy works with: ``GrpcStorageProxy`` appeared in
4.2.0), 5.0.0 (installed and tested). The names outside gRPC also exist in 3.6.0.
An Optuna upgrade that breaks one of them fails tests/storage/test_optuna_internals.py, which
also checks that no other module imports Optuna's private modules.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import sqlalchemy

# Why: ``optuna.storages.get_storage`` puts RDBStorage behind this cache layer; hpsearch opens
# RDBStorage itself (its own engine settings, schema check, heartbeat callback) and wraps it
# the same way, then reaches the RDBStorage behind it through ``_backend``.
# Checked: optuna/storages/_cached_storage.py (``_CachedStorage(backend)``, ``self._backend``),
# 3.6.0, 4.2.0, 4.2.1, 5.0.0.
from optuna.storages._cached_storage import _CachedStorage

# Why: ResilientStorage (and the gRPC client) must be heartbeat storages, or Optuna neither
# beats for a running trial nor fails stale ones; Optuna tells a heartbeat storage by
# ``isinstance(storage, BaseHeartbeat)`` and exports no public base class for it.
# Checked: optuna/storages/_heartbeat.py, 3.6.0, 4.2.0, 4.2.1, 5.0.0.
from optuna.storages._heartbeat import BaseHeartbeat

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, RDBStorage
    from optuna.trial import TrialState

__all__ = ["IN_MEMORY_STORAGE_LOGGER", "BaseHeartbeat", "TrialTables", "add_proxy_servicer",
           "behind_cache", "cached", "optuna_proxy_server", "proxy_servicer_base",
           "trial_tables", "write_trial_user_attrs"]

# The logger of Optuna's in-memory storage, which says "a new study created in memory" at INFO
# for every study: the spec's rehearsal of its sampler and pruner (search/study/samplers.py)
# silences it. Named after a private module; checked in Optuna 4.2.0, 4.2.1 and 5.0.
IN_MEMORY_STORAGE_LOGGER = "optuna.storages._in_memory"


def cached(rdb: RDBStorage) -> BaseStorage:
    """``rdb`` behind Optuna's cache layer, as ``optuna.storages.get_storage`` returns it."""
    return _CachedStorage(rdb)


def behind_cache(storage: BaseStorage) -> BaseStorage:
    """The storage behind Optuna's cache layer, or ``storage`` itself if it has none."""
    return storage._backend if isinstance(storage, _CachedStorage) else storage


class TrialTables(NamedTuple):
    trials: sqlalchemy.Table  # trial_id, study_id, state, ...
    user_attrs: sqlalchemy.Table  # trial_id, key, value_json
    heartbeats: sqlalchemy.Table  # trial_id, heartbeat


def trial_tables() -> TrialTables:
    """Optuna's trial tables, for the statements RDBStorage has no method for (trial counts by
    state, stale heartbeats with a per-study grace period). Optuna's schema is public in the
    sense that Alembic migrates it; the SQLAlchemy models that describe it are not.
    Checked: optuna/storages/_rdb/models.py (TrialModel, TrialUserAttributeModel,
    TrialHeartbeatModel, same columns), 3.6.0, 4.2.0, 4.2.1, 5.0.0."""
    from optuna.storages._rdb import models

    return TrialTables(models.TrialModel.__table__, models.TrialUserAttributeModel.__table__,
                       models.TrialHeartbeatModel.__table__)


def write_trial_user_attrs(rdb: RDBStorage, trial_id: int, attrs: dict[str, Any]) -> None:
    """Several user attributes of one running trial in one transaction: the rows Optuna's
    ``set_trial_user_attr`` writes (JSON in ``value_json``), as one multi-row upsert after one
    check that the trial may still be written. PostgreSQL, or SQLite 3.24 and newer.
    Why private: RDBStorage writes one key per call (a trial lookup, an upsert and a commit
    each); the session helper gives Optuna's own commit and error handling.
    Checked: ``_create_scoped_session(scoped_session, ignore_integrity_error)`` in
    optuna/storages/_rdb/storage.py, ``TrialModel.find_or_raise_by_id(trial_id, session)`` and
    the ``trial_user_attributes`` unique key (trial_id, key) in models.py, 3.6.0, 4.2.0, 4.2.1,
    5.0.0."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if rdb.engine.name == "postgresql" else sqlite.insert
    table = models.TrialUserAttributeModel
    rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in attrs.items()]
    with _create_scoped_session(rdb.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        rdb.check_trial_is_updatable(trial_id, cast("TrialState", trial.state))
        stmt = insert(table).values(rows)
        session.execute(stmt.on_conflict_do_update(
            index_elements=[table.trial_id, table.key],
            set_={"value_json": stmt.excluded.value_json}))


def proxy_servicer_base() -> type:
    """Optuna's gRPC storage servicer, for hpsearch's proxy to subclass (it answers a refused
    trial with RESOURCE_EXHAUSTED; Optuna's public ``run_grpc_proxy_server`` takes no servicer).
    Checked: ``OptunaStorageProxyService(storage)`` in optuna/storages/_grpc/server.py in 4.2.0,
    moved to optuna/storages/_grpc/servicer.py in 4.2.1; there in 5.0.0. Needs grpcio."""
    try:
        from optuna.storages._grpc.servicer import OptunaStorageProxyService
    except ImportError:  # Optuna 4.2.0
        from optuna.storages._grpc.server import (  # type: ignore[attr-defined,no-redef]
            OptunaStorageProxyService,
        )
    return OptunaStorageProxyService


def add_proxy_servicer(servicer: Any, server: Any) -> None:
    """Register ``servicer`` on the grpc ``server`` (the generated stub's registration).
    Checked: ``add_StorageServiceServicer_to_server`` in
    optuna/storages/_grpc/auto_generated/api_pb2_grpc.py, 4.2.0, 4.2.1, 5.0.0."""
    from optuna.storages._grpc.auto_generated import api_pb2_grpc

    api_pb2_grpc.add_StorageServiceServicer_to_server(servicer, server)


def optuna_proxy_server(storage: BaseStorage, host: str, port: int) -> Any:
    """Optuna's own gRPC proxy server, not started (tests: a worker must refuse it).
    Checked: ``make_server(storage, host, port)`` in optuna/storages/_grpc/server.py, 4.2.0,
    4.2.1, 5.0.0."""
    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port)
