from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from storage import StudyLock, open_optuna_storage
from storage.optuna_storage import rdb_storage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_study_lock_excludes_a_second_holder_until_released(url: str) -> None:
    first, second = StudyLock(url, "s"), StudyLock(url, "s")
    other_study = StudyLock(url, "another study")
    acquired = threading.Event()
    first.acquire()
    thread = threading.Thread(target=lambda: (second.acquire(), acquired.set()))
    thread.start()
    try:
        other_study.acquire()  # a different study's lock is independent
        other_study.release()
        assert not acquired.wait(0.5), "second holder got the lock while the first held it"
        first.release()
        first.release()  # idempotent
        assert acquired.wait(10)
    finally:
        thread.join(10)
        for lock in (first, second, other_study):
            lock.close()


def test_sqlite_storage_uses_wal_and_heartbeats(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    storage = open_optuna_storage(f"sqlite:///{db}")
    assert storage.get_heartbeat_interval() == 30
    with sqlite3.connect(db) as conn:  # WAL is a property of the file: every process sees it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.postgres
def test_postgres_storage_holds_at_most_two_connections_and_pings_idle_ones(pg_url: str) -> None:
    storage = open_optuna_storage(pg_url)
    pool = rdb_storage(storage).engine.pool
    assert pool.size() == 2 and pool._max_overflow == 0  # shared with the lock: <= 2
    assert not pool._pre_ping  # storage/idle_ping.py pings only after idle (test_idle_ping)
    assert len(pool.dispatch.checkout) == 1 and len(pool.dispatch.checkin) == 1
    assert storage.get_heartbeat_interval() == 30



@pytest.mark.postgres
def test_launcher_counts_connections_and_points_past_the_server_limit(pg_url: str) -> None:
    from storage import StorageHandle, open_storage
    from storage.connections import connection_budget

    storage = open_storage(pg_url)
    lines = connection_budget(storage, 3)
    assert len(lines) == 1 and lines[0].startswith("3 workers will hold up to 8 database "
                                                   "connections (2 per worker + 2 for this "
                                                   "launcher); the server allows ")
    too_many = connection_budget(storage, 100_000)
    assert len(too_many) == 2 and "PgBouncer (pool_mode = transaction)" in too_many[1]
    assert "hpsearch proxy" in too_many[1] and "--worker-storage grpc://" in too_many[1]
    proxied = connection_budget(storage, 100_000, via_proxy=True)
    assert len(proxied) == 1 and proxied[0].startswith(
        "this launcher will hold up to 2 database connections (100000 workers through the "
        "gRPC proxy hold none)")
    assert connection_budget(StorageHandle("sqlite:///x.db", "sqlite"), 3) == []


def test_optuna_schema_mismatch_is_one_line_with_the_fix(sqlite_url: str) -> None:
    from storage.errors import StorageError

    rdb = rdb_storage(open_optuna_storage(sqlite_url))
    older = next(v for v in rdb.get_all_versions() if v != rdb.get_head_version())
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (older,))
    with pytest.raises(StorageError, match=r"older than this Optuna .* run optuna storage "
                                           r"upgrade --storage URL"):
        open_optuna_storage(sqlite_url)
