"""Ping a pooled connection before use only when it sat idle for a while.

SQLAlchemy's ``pool_pre_ping`` pings on every checkout, and Optuna checks a connection out
for every storage call: about 30 extra round trips per trial, which measured as most of what
hpsearch's worker cost over a plain Optuna loop. A connection that was last returned to the
pool less than ``idle_s`` ago is used without a ping; an older one (a worker between epochs of
a real training run, when a server restart is most likely to have happened) is pinged first,
and a dead one is replaced before the statement runs. The rare dead connection that slips
through inside the window fails its statement, which invalidates the pool, and the storage's
retry (storage/resilient.py) runs it again on a fresh connection.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy
import sqlalchemy.exc

__all__ = ["IDLE_PING_S", "ping_after_idle"]

IDLE_PING_S = 1.0
_CHECKED_IN = "hpsearch_checked_in_at"


def ping_after_idle(engine: sqlalchemy.Engine, idle_s: float = IDLE_PING_S) -> None:
    """Install the checkin/checkout hooks on ``engine``'s pool (not for pre-ping engines)."""

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is None or time.monotonic() - checked_in < idle_s:
            return  # new, or used a moment ago
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one if needed).
            raise sqlalchemy.exc.DisconnectionError(f"stale pooled connection: {exc}") from exc

    sqlalchemy.event.listen(engine.pool, "checkin", on_checkin)
    sqlalchemy.event.listen(engine.pool, "checkout", on_checkout)
