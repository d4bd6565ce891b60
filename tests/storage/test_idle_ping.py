"""Pooled connections are pinged only after sitting idle: a connection the server dropped while
idle is replaced before use; one used a moment ago is handed out unpinged."""

from __future__ import annotations

import time

import pytest
import sqlalchemy
import sqlalchemy.exc

from storage.idle_ping import ping_after_idle
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.postgres


def _kill(pid: int) -> None:
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.commit()
    admin.dispose()


def _backend_pid(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_dropped_while_idle_is_replaced_before_use(pg_url: str) -> None:
    engine = sqlalchemy.create_engine(pg_url, pool_size=1, max_overflow=0)
    ping_after_idle(engine, idle_s=0.05)
    first = _backend_pid(engine)
    _kill(first)
    time.sleep(0.1)
    assert _backend_pid(engine) != first  # pinged, found dead, reconnected: no error
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_url: str) -> None:
    engine = sqlalchemy.create_engine(pg_url, pool_size=1, max_overflow=0)
    ping_after_idle(engine, idle_s=60)
    first = _backend_pid(engine)
    _kill(first)
    # Within the window the dead connection is handed out as is (no ping per checkout)...
    with pytest.raises(sqlalchemy.exc.OperationalError):
        _backend_pid(engine)
    # ...and its failure discards it: the next use (the storage's retry) gets a fresh one.
    assert _backend_pid(engine) != first
    engine.dispose()
