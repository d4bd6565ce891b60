"""Tuned defaults remember the regime they were measured in.

Adds ``regime`` (JSON: model width, data sizes, epoch budget, batch size, ... as the trainer
declares them) and ``regime_key`` (its canonical text), and allows one current row per
(trainer, model, optimizer, dataset, regime) instead of one per key, so a default measured in a
small regime no longer replaces the one for a full run. The documented rows get the regime
their documents describe; measured rows from before this revision keep no regime (NULL), and
resolution skips them, saying so.

The values are written out here, not imported, so this migration means the same forever.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MARK = "seeded by migration 0002"
# The round-2 ResNet-18 CIFAR-10 proposal: full width, the 45,000/5,000 split, 250 epochs.
_CIFAR_REGIME = {"model": "resnet18", "width": 1.0, "num_classes": 10, "augment": True,
                 "epochs": 250, "batch_size": 96, "val_size": 5000, "train_limit": None}


def _multitask_regime(model: str) -> dict[str, object]:
    """The two-model document's setting: from scratch, 1000 classes, 224/320 px, batch 8."""
    return {"model": model, "pretrained": False, "num_classes": 1000, "cls_image_size": 224,
            "seg_image_size": 320, "epochs": 5, "steps_per_epoch": None, "batch_size": 8,
            "train_limit": None, "val_limit": None}


def _key(regime: dict[str, object]) -> str:
    return json.dumps(regime, sort_keys=True, default=str)


def upgrade() -> None:
    with op.batch_alter_table("hps_tuned_defaults") as batch:
        batch.add_column(sa.Column("regime", sa.JSON, nullable=True))
        batch.add_column(sa.Column("regime_key", sa.String(1024), nullable=False,
                                   server_default=""))
        batch.drop_index("hps_tuned_defaults_one_current")
    conn = op.get_bind()
    documented = conn.execute(sa.text(
        "SELECT id, trainer, model FROM hps_tuned_defaults WHERE source = 'documented' "
        f"AND note LIKE '%{_MARK}'")).all()
    for row_id, trainer, model in documented:
        regime = _CIFAR_REGIME if trainer == "cifar" else _multitask_regime(model)
        conn.execute(sa.text("UPDATE hps_tuned_defaults SET regime = :regime, "
                             "regime_key = :key WHERE id = :id"),
                     {"regime": json.dumps(regime), "key": _key(regime), "id": row_id})
    op.create_index(
        "hps_tuned_defaults_one_current", "hps_tuned_defaults",
        ["trainer", "model", "optimizer", "dataset", "regime_key"], unique=True,
        sqlite_where=sa.text("is_current"), postgresql_where=sa.text("is_current"))


def downgrade() -> None:
    op.drop_index("hps_tuned_defaults_one_current", table_name="hps_tuned_defaults")
    with op.batch_alter_table("hps_tuned_defaults") as batch:
        batch.drop_column("regime_key")
        batch.drop_column("regime")
    op.create_index(
        "hps_tuned_defaults_one_current", "hps_tuned_defaults",
        ["trainer", "model", "optimizer", "dataset"], unique=True,
        sqlite_where=sa.text("is_current"), postgresql_where=sa.text("is_current"))
