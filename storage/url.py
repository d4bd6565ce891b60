"""Which database a command talks to: one URL, resolved the same way everywhere.

Order: an explicit ``--storage`` value, else ``HPSEARCH_STORAGE``, else ``sqlite:///hpsearch.db``
(a file in the working directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StorageError

__all__ = [
    "DEFAULT_STORAGE",
    "ENV_VAR",
    "check_reachable",
    "grpc_address",
    "parse_url",
    "redact",
    "resolve_storage_url",
    "sqlite_path",
]

ENV_VAR = "HPSEARCH_STORAGE"
DEFAULT_STORAGE = "sqlite:///hpsearch.db"
_SUPPORTED = ("sqlite", "postgresql", "mysql")


def resolve_storage_url(explicit: str | None = None,
                        environ: Mapping[str, str] | None = None, *,
                        allow_grpc: bool = False) -> str:
    """``allow_grpc``: a ``grpc://HOST:PORT`` gRPC storage proxy is accepted too (workers)."""
    env = os.environ if environ is None else environ
    url = explicit or env.get(ENV_VAR) or DEFAULT_STORAGE
    if allow_grpc and url.startswith("grpc://"):
        grpc_address(url)
        return url
    parse_url(url)
    return url


def parse_url(url: str) -> URL:
    if url.startswith("grpc://"):
        raise StorageError(f"{url!r} is a gRPC storage proxy, which serves workers only "
                           "(hpsearch worker, launch --worker-storage); this needs the "
                           "database URL itself")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"storage URL {url!r} is not a database URL; use e.g. "
                           "sqlite:///hpsearch.db or postgresql+psycopg2://user@host:5432/db"
                           ) from None
    except ValueError:  # SQLAlchemy reads the port with int(): "host:abc"
        raise StorageError(f"storage URL {_hide_password(url)!r} has a port that is not a "
                           "number; write it as HOST:PORT with PORT 1-65535, e.g. "
                           "postgresql+psycopg2://user@host:5432/db") from None
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise StorageError(f"storage URL {redact(url)!r} has port {parsed.port}; a port is "
                           "1-65535, e.g. postgresql+psycopg2://user@host:5432/db")
    if parsed.get_backend_name() not in _SUPPORTED:
        raise StorageError(f"storage URL {redact(url)!r} names backend "
                           f"{parsed.get_backend_name()!r}; supported: {list(_SUPPORTED)}")
    return parsed


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads (a port like "abc")
        return _hide_password(url)


def _hide_password(url: str) -> str:
    """``url`` with any password hidden, for a URL SQLAlchemy cannot parse."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL; None for other backends and in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def check_reachable(url: str, *, timeout_s: int = 5) -> None:
    """Open one connection, or raise StorageError naming the URL and what to do.

    The connection is made by the dialect's driver itself, not through an engine: a process
    builds one engine for its storage (storage/handle.py), and checking must not add another."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None and not path.parent.is_dir():
            raise StorageError(f"storage URL {url!r}: directory {str(path.parent)!r} does not "
                               "exist; create it or point --storage elsewhere")
    try:
        dialect_cls: Any = parsed.get_dialect()
        dialect = dialect_cls(dbapi=dialect_cls.import_dbapi())
        args, kwargs = dialect.create_connect_args(parsed)
        if backend == "postgresql":
            kwargs["connect_timeout"] = timeout_s
        conn = dialect.connect(*args, **kwargs)
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()
    except Exception as exc:  # driver errors differ per backend; all mean "cannot use it"
        text = str(getattr(exc, "orig", None) or exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise StorageError(f"cannot reach storage {redact(url)!r}: {reason}; check that the "
                           f"server runs and the URL is right (--storage or {ENV_VAR})") from exc


def grpc_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` for a ``grpc://HOST:PORT`` URL; None for any other URL."""
    if not url.startswith("grpc://"):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise StorageError(f"storage URL {url!r} is not grpc://HOST:PORT; e.g. "
                           "grpc://proxy.example:13000 (the address hpsearch proxy listens on)")
    return parts.hostname, port
