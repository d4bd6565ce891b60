"""hpsearch's own tables. Optuna owns its tables; ours are prefixed ``hps_`` and migrated by
Alembic.

Tuned defaults are append-only: a promotion inserts a row and moves the ``is_current`` flag; a
partial unique index allows one current row per (trainer, model, optimizer, dataset, regime).
Registry versions are immutable; aliases live in their own table because they move.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["METADATA", "TABLE_PREFIX", "registry_aliases", "registry_versions", "tuned_defaults"]

TABLE_PREFIX = "hps_"
METADATA = sa.MetaData()

tuned_defaults = sa.Table(
    "hps_tuned_defaults",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trainer", sa.String(64), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("optimizer", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(255), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("metric", sa.String(64), nullable=True),
    sa.Column("metric_value", sa.Float, nullable=True),
    sa.Column("n_seeds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("source", sa.String(16), nullable=False),  # "documented" or "measured"
    sa.Column("study_name", sa.String(512), nullable=True),
    sa.Column("trial_number", sa.Integer, nullable=True),
    sa.Column("code_version", sa.String(128), nullable=True),
    sa.Column("library_versions", sa.JSON, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("is_current", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The regime the row was measured in (JSON) and its canonical text; NULL/'' for rows
    # measured before regimes were recorded (migration 0003).
    sa.Column("regime", sa.JSON, nullable=True),
    sa.Column("regime_key", sa.String(1024), nullable=False, server_default=""),
)
sa.Index(
    "hps_tuned_defaults_one_current",
    tuned_defaults.c.trainer, tuned_defaults.c.model, tuned_defaults.c.optimizer,
    tuned_defaults.c.dataset, tuned_defaults.c.regime_key,
    unique=True,
    sqlite_where=tuned_defaults.c.is_current,
    postgresql_where=tuned_defaults.c.is_current,
)

registry_versions = sa.Table(
    "hps_registry_versions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("trainer", sa.String(64), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("seeds", sa.JSON, nullable=False),
    sa.Column("study_name", sa.String(512), nullable=True),
    sa.Column("trial_number", sa.Integer, nullable=True),
    sa.Column("code_version", sa.String(128), nullable=True),
    sa.Column("library_versions", sa.JSON, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", "version", name="hps_registry_versions_name_version"),
)

registry_aliases = sa.Table(
    "hps_registry_aliases",
    METADATA,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
