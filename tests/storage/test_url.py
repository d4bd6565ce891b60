from __future__ import annotations

import pytest

from storage import DEFAULT_STORAGE, StorageError, check_reachable, redact, resolve_storage_url


def test_flag_beats_environment_beats_default() -> None:
    env = {"HPSEARCH_STORAGE": "sqlite:///from-env.db"}
    assert resolve_storage_url("sqlite:///flag.db", env) == "sqlite:///flag.db"
    assert resolve_storage_url(None, env) == "sqlite:///from-env.db"
    assert resolve_storage_url(None, {}) == DEFAULT_STORAGE == "sqlite:///hpsearch.db"


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", "is not a database URL"),
    ("redis://localhost:6379/0", "names backend 'redis'"),
])
def test_bad_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        resolve_storage_url(url, {})


def test_passwords_never_reach_messages() -> None:
    url = "postgresql+psycopg2://bob:s3cret@127.0.0.1:1/db"
    assert "s3cret" not in redact(url)
    with pytest.raises(StorageError) as info:
        check_reachable(url, timeout_s=2)
    message = str(info.value)
    assert "s3cret" not in message
    assert "cannot reach storage 'postgresql+psycopg2://bob:***@127.0.0.1:1/db'" in message
    assert "--storage" in message


def test_sqlite_in_a_missing_directory_is_refused(tmp_path: object) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        check_reachable(f"sqlite:///{tmp_path}/no/such/dir/x.db")
