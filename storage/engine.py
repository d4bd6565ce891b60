"""SQLAlchemy engines for hpsearch's own tables (Optuna builds its own for its tables)."""

from __future__ import annotations

import sqlalchemy

from storage.url import check_reachable, parse_url

__all__ = ["make_engine"]


def make_engine(url: str) -> sqlalchemy.Engine:
    check_reachable(url)
    kwargs: dict[str, object] = {"pool_pre_ping": True}
    if parse_url(url).get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs.update(pool_size=1, max_overflow=1)
    return sqlalchemy.create_engine(url, **kwargs)
