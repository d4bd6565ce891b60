"""Apply hpsearch's Alembic migrations to a storage (``hpsearch db upgrade``), on the
process's one engine (storage/handle.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.errors import StorageError
from storage.handle import StorageHandle
from storage.races import retry_schema_race

__all__ = ["VERSION_TABLE", "check_known", "current_revision", "head_revision", "upgrade"]

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


def current_revision(storage: StorageHandle) -> str | None:
    with storage.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def check_known(revision: str | None) -> None:
    """Refuse a database whose hpsearch schema is at a revision this code does not know: a
    newer hpsearch migrated it, and this one would misread or damage its tables."""
    if revision is None:
        return
    scripts = ScriptDirectory.from_config(_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise StorageError(f"the database's hpsearch schema is at revision {revision}, newer "
                           f"than this hpsearch (head {head_revision()}); upgrade hpsearch")


def upgrade(storage: StorageHandle, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``revision``; return (revision before, revision after). A database at a
    revision this code does not know (a newer hpsearch's) is refused before anything runs."""
    before = current_revision(storage)
    check_known(before)

    def run() -> None:
        with storage.engine.begin() as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    retry_schema_race(run, what="migrating hpsearch's tables")
    after = current_revision(storage)
    log.info("migrated %s from %s to %s", storage.redacted, before, after)
    assert after is not None
    return before, after
