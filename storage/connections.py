"""How many database connections a study will hold, said before it starts.

A worker holds at most two (storage/optuna_storage.py); the launcher holds two more (its one
engine's pool, storage/handle.py) for progress, pins and promotion. On PostgreSQL the launcher
compares the total with the server's ``max_connections`` minus the connections already open
and, when it would not fit, says how to get there: PgBouncer in transaction pooling in front of
the server (name its port in the storage URL; hpsearch's budget lock is transaction-scoped so
it works through it), Optuna's gRPC storage proxy run by ``hpsearch proxy`` (workers given
``grpc://HOST:PORT`` hold no database connection), or fewer workers per launcher.
"""

from __future__ import annotations

import sqlalchemy

from storage.handle import StorageHandle

__all__ = ["CONNECTIONS_PER_LAUNCHER", "CONNECTIONS_PER_WORKER", "connection_budget"]

CONNECTIONS_PER_WORKER = 2
CONNECTIONS_PER_LAUNCHER = 2


def connection_budget(storage: StorageHandle, workers: int, *,
                      via_proxy: bool = False) -> list[str]:
    """Lines for the launcher to print: the connection count, and a warning with the remedy
    when the server's limit would be exceeded. Empty for SQLite (no connection limit).
    ``via_proxy``: the workers go through a gRPC proxy and hold no connection here."""
    if storage.kind != "postgresql":
        return []
    per_worker = 0 if via_proxy else CONNECTIONS_PER_WORKER
    needed = workers * per_worker + CONNECTIONS_PER_LAUNCHER
    with storage.engine.connect() as conn:
        limit = int(conn.execute(sqlalchemy.text("SHOW max_connections")).scalar_one())
        reserved = int(conn.execute(sqlalchemy.text(
            "SHOW superuser_reserved_connections")).scalar_one())
        in_use = int(conn.execute(sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )).scalar_one())
    free = limit - reserved - in_use
    who = (f"this launcher will hold up to {needed} database connections ({workers} workers "
           "through the gRPC proxy hold none)" if via_proxy else
           f"{workers} workers will hold up to {needed} database connections "
           f"({CONNECTIONS_PER_WORKER} per worker + {CONNECTIONS_PER_LAUNCHER} for this "
           "launcher)")
    lines = [f"{who}; the server allows {limit}, {in_use} in use"]
    if needed > free:
        lines.append(f"warning: that is more than the {free} connections left; put PgBouncer "
                     "(pool_mode = transaction) in front of PostgreSQL and point --storage at "
                     "its port, or run hpsearch proxy next to the database and give the "
                     "workers --worker-storage grpc://HOST:PORT (Optuna's gRPC storage proxy), "
                     "or run fewer workers per launcher")
    return lines
