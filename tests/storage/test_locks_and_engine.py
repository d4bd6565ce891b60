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
def test_postgres_storage_holds_at_most_two_connections_and_pre_pings(pg_url: str) -> None:
    storage = open_optuna_storage(pg_url)
    pool = rdb_storage(storage).engine.pool
    assert pool.size() == 2 and pool._max_overflow == 0  # shared with the lock: <= 2
    assert pool._pre_ping
    assert storage.get_heartbeat_interval() == 30

