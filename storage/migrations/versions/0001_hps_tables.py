"""Create hps_tuned_defaults, hps_registry_versions and hps_registry_aliases.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hps_tuned_defaults",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trainer", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("optimizer", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(255), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metric", sa.String(64), nullable=True),
        sa.Column("metric_value", sa.Float, nullable=True),
        sa.Column("n_seeds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("study_name", sa.String(512), nullable=True),
        sa.Column("trial_number", sa.Integer, nullable=True),
        sa.Column("code_version", sa.String(128), nullable=True),
        sa.Column("library_versions", sa.JSON, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("is_current", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "hps_tuned_defaults_one_current",
        "hps_tuned_defaults",
        ["trainer", "model", "optimizer", "dataset"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "hps_registry_versions",
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
    op.create_table(
        "hps_registry_aliases",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hps_registry_aliases")
    op.drop_table("hps_registry_versions")
    op.drop_index("hps_tuned_defaults_one_current", table_name="hps_tuned_defaults")
    op.drop_table("hps_tuned_defaults")
