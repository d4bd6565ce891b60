"""Seed hps_tuned_defaults with the documented (not measured) settings.

- cifar / resnet18 / sgd / cifar10: the round-2 ResNet-18 CIFAR-10 analysis' proposal.
- multitask / {mobilenet_v3_large, resnet18} / 8 optimizers / imagenet1k+coco-voc21: the
  two-model learning-rate table, with each optimizer's settings from the optimizer-settings
  document (batch size 8, 5 epochs).

The values are written out here, not imported, so this migration means the same forever.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MARK = "seeded by migration 0002"
_MULTITASK_DATASET = "imagenet1k+coco-voc21"
_OPTIMIZER_SETTINGS: dict[str, dict[str, object]] = {
    "sgd": {"momentum": 0.9, "weight_decay": 1e-4},
    "nesterov": {"momentum": 0.9, "weight_decay": 1e-4},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "weight_decay": 0.01},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8},
    "adagrad": {"lr_decay": 0.0, "eps": 1e-10},
    "adadelta": {"rho": 0.9, "eps": 1e-6},
    "mtadamv2": {"beta1": 0.9, "beta2": 0.999, "task_weights": [0.5, 0.5]},
}
_TWO_MODEL_LR = {
    "mobilenet_v3_large": {"sgd": 0.01, "nesterov": 0.01, "adam": 0.001, "adamw": 0.001,
                           "rmsprop": 0.001, "adagrad": 0.01, "adadelta": 1.0,
                           "mtadamv2": 0.001},
    "resnet18": {"sgd": 0.01, "nesterov": 0.01, "adam": 0.005, "adamw": 0.005,
                 "rmsprop": 0.005, "adagrad": 0.02, "adadelta": 1.0, "mtadamv2": 0.005},
}


def _rows() -> list[dict[str, object]]:
    now = datetime.now(timezone.utc)
    base = {"metric": None, "metric_value": None, "n_seeds": 0, "source": "documented",
            "study_name": None, "trial_number": None, "code_version": None,
            "library_versions": None, "is_current": True, "created_at": now}
    rows: list[dict[str, object]] = [{
        **base, "trainer": "cifar", "model": "resnet18", "optimizer": "sgd",
        "dataset": "cifar10",
        "params": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 96,
                   "schedule": "multistep", "milestones": [60, 120, 160], "gamma": 0.2,
                   "epochs": 250, "patience": 35, "min_delta": 0.0005},
        "note": f"round-2 ResNet-18 CIFAR-10 analysis proposal (round 1 measured 83.29% test "
                f"accuracy at lr 0.01); {_MARK}",
    }]
    for model, lrs in _TWO_MODEL_LR.items():
        for optimizer, lr in lrs.items():
            rows.append({
                **base, "trainer": "multitask", "model": model, "optimizer": optimizer,
                "dataset": _MULTITASK_DATASET,
                "params": {"lr": lr, **_OPTIMIZER_SETTINGS[optimizer], "batch_size": 8,
                           "epochs": 5},
                "note": f"two-model learning-rate table and optimizer-settings document; "
                        f"{_MARK}",
            })
    return rows


def upgrade() -> None:
    table = sa.table(
        "hps_tuned_defaults",
        *(sa.column(name) for name in ("trainer", "model", "optimizer", "dataset", "metric",
                                        "metric_value", "n_seeds", "source", "study_name",
                                        "trial_number", "code_version", "note", "is_current",
                                        "created_at")),
        sa.column("params", sa.JSON), sa.column("library_versions", sa.JSON),
    )
    conn = op.get_bind()
    for row in _rows():
        # Do not shadow a measured row somebody promoted before upgrading.
        taken = conn.execute(sa.text(
            "SELECT 1 FROM hps_tuned_defaults WHERE trainer = :trainer AND model = :model "
            "AND optimizer = :optimizer AND dataset = :dataset AND is_current"), row).first()
        if taken is None:
            op.bulk_insert(table, [row])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM hps_tuned_defaults WHERE source = 'documented' "
                       f"AND note LIKE '%{_MARK}'"))
