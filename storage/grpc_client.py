"""Workers that reach the study through Optuna's gRPC storage proxy (``grpc://HOST:PORT``).

A study with thousands of workers would need thousands of database connections; behind
``hpsearch proxy`` (storage/grpc_proxy.py) they share the proxy's few. Optuna's client speaks
only the storage API, so what hpsearch adds on top of SQL is carried by that API:

- heartbeats: the client is a heartbeat storage whose beat is a trial system attribute
  (``HEARTBEAT_ATTR``); the proxy records it as Optuna's heartbeat and itself fails and re-queues
  trials whose beat went stale (the client reports none stale: it cannot see the table);
- the trial budget: the proxy refuses a new trial past the study's budget, under the same
  database lock the SQL workers take, with an error carrying ``BUDGET_SPENT``;
- a trial's user attributes written together (the record of a trial): one call carrying them
  all as the system attribute ``USER_ATTRS_ATTR``, which the proxy writes as user attributes
  in one statement, instead of one call per key;
- a proxy that restarts or is briefly unreachable: calls are retried (storage/resilient.py).

Since those conventions mean nothing to Optuna's own proxy server, the client first checks
that it talks to ``hpsearch proxy`` (``HANDSHAKE_STUDY``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from optuna.exceptions import ExperimentalWarning
from optuna.storages import GrpcStorageProxy
from optuna.trial import FrozenTrial

from storage.errors import StorageError
from storage.optuna_internals import BaseHeartbeat
from storage.resilient import ResilientStorage
from storage.url import grpc_address

__all__ = ["BUDGET_SPENT", "HANDSHAKE_STUDY", "HEARTBEAT_ATTR", "PROXY_MARK", "USER_ATTRS_ATTR",
           "grpc_address", "is_budget_spent", "open_grpc_storage"]

HEARTBEAT_ATTR = "hps_heartbeat"
USER_ATTRS_ATTR = "hps_user_attrs"
BUDGET_SPENT = "hpsearch: the study's trial budget is spent"
# Asking for this study, an hpsearch proxy answers "not found" with PROXY_MARK in the details.
HANDSHAKE_STUDY = "hpsearch:proxy-handshake"
PROXY_MARK = "hpsearch proxy"


def is_budget_spent(exc: BaseException) -> bool:
    """Whether ``exc`` is the proxy refusing a trial because the budget is spent."""
    details = getattr(exc, "details", None)
    return callable(details) and BUDGET_SPENT in (details() or "")


class _HeartbeatingProxy(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's gRPC client, as a heartbeat storage whose beat is a trial system attribute.
    At module level, so it pickles (Optuna's client reopens its channel on unpickling)."""

    def __init__(self, *, host: str, port: int, heartbeat_interval_s: int) -> None:
        self._heartbeat_interval_s = heartbeat_interval_s
        super().__init__(host=host, port=port)

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []  # the proxy fails stale trials; the heartbeat table is not visible here

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        self.set_trial_system_attr(trial_id, USER_ATTRS_ATTR, attrs)

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval_s

    def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, FrozenTrial], None] | None:
        return None  # the proxy re-queues the trials it fails

    def get_failed_trial_callback(self) -> Callable[[Any, FrozenTrial], None] | None:
        return None


def open_grpc_storage(url: str, *, heartbeat_interval_s: int, retry_for_s: float = 300.0,
                      connect_timeout_s: float = 20.0) -> ResilientStorage:
    """The storage a worker uses for ``grpc://HOST:PORT``, once the proxy answers."""
    address = grpc_address(url)
    if address is None:
        raise StorageError(f"{url!r} is not a grpc:// URL")
    try:
        import grpc  # noqa: F401  (Optuna's client needs it)
    except ImportError:
        raise StorageError("a grpc:// storage needs grpcio: pip install grpcio") from None
    host, port = address
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna's client, since 4.2
        proxy = _HeartbeatingProxy(host=host, port=port,
                                   heartbeat_interval_s=heartbeat_interval_s)
    try:
        proxy.wait_server_ready(timeout=connect_timeout_s)
    except ConnectionError:
        proxy.close()
        raise StorageError(f"no gRPC storage proxy answers at {url} within "
                           f"{connect_timeout_s:.0f} s; start one next to the database with "
                           "hpsearch proxy --storage DATABASE_URL --port "
                           f"{port}") from None
    try:
        proxy.get_study_id_from_name(HANDSHAKE_STUDY)
        answer = ""
    except KeyError as exc:
        details = getattr(exc.__cause__, "details", None)
        answer = (details() if callable(details) else "") or ""
    if PROXY_MARK not in answer:
        proxy.close()
        raise StorageError(f"{url} is a gRPC storage proxy but not hpsearch's (Optuna's own "
                           "server?); hpsearch workers need hpsearch proxy --storage "
                           "DATABASE_URL, which enforces the trial budget and recovers the "
                           "trials of dead workers")
    return ResilientStorage(proxy, retry_for_s=retry_for_s)  # type: ignore[abstract]
