"""Alembic environment for hpsearch's own tables (run through storage.migrate, not the alembic CLI).

Our version table is ``hps_alembic_version`` and autogenerate only sees ``hps_`` tables, so
Optuna's tables and its own ``alembic_version`` are never compared, altered or dropped.
"""

from __future__ import annotations

from alembic import context

from storage.tables import METADATA, TABLE_PREFIX

VERSION_TABLE = "hps_alembic_version"


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    if type_ == "table":
        return bool(name and name.startswith(TABLE_PREFIX))
    return True


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=METADATA,
    version_table=VERSION_TABLE,
    include_object=_ours,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
