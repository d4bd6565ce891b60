"""Apply hpsearch's Alembic migrations to a storage URL (``hpsearch db upgrade``)."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.races import retry_schema_race
from storage.url import check_reachable, redact

__all__ = ["VERSION_TABLE", "current_revision", "head_revision", "upgrade"]

log = logging.getLogger(__name__)

VERSION_TABLE = "hps_alembic_version"
_SCRIPTS = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "storage/migrations has no revisions"
    return head


def current_revision(url: str) -> str | None:
    check_reachable(url)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``revision``; return (revision before, revision after)."""
    before = current_revision(url)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def run() -> None:
        with engine.begin() as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    try:
        retry_schema_race(run, what="migrating hpsearch's tables")
    finally:
        engine.dispose()
    after = current_revision(url)
    log.info("migrated %s from %s to %s", redact(url), before, after)
    assert after is not None
    return before, after
