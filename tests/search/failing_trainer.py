"""A trainer whose every run fails after its first epoch, as one with a bug or a broken kernel
does. Named in specs as ``trainer: tests.search.failing_trainer``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainers.contract import TrainerInfo
from trainers.dataset_keys import dataset_key
from trainers.reporter import NullReporter, Reporter

__all__ = ["SEARCH", "Config", "preflight", "train"]


@dataclass(frozen=True)
class Config:
    model: str = "failing"
    optimizer: str = "sgd"
    dataset: str = "none"
    lr: float = 0.01
    epochs: int = 3
    seed: int = 0
    checkpoint_dir: str | None = None

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SEARCH = TrainerInfo(
    tunable_fields=("lr",), metrics=("best_val_acc",), reports=("val_acc",),
    default_metric="best_val_acc", default_report="val_acc",
    key_fields=("model", "optimizer", "dataset"), regime_fields=("epochs",),
    dataset_key=lambda cfg: dataset_key(cfg.dataset))


def preflight(cfg: Config) -> None:
    return None


def train(cfg: Config, reporter: Reporter | None = None) -> dict[str, Any]:
    (reporter or NullReporter()).report(1, {"val_acc": cfg.lr})
    raise RuntimeError(f"kernel_xyz failed at lr {cfg.lr:.3g}")
