"""A trainer that stops making progress at ``hang_at_epoch``, as a worker stuck inside a kernel
does: no report, no return, the process alive. Named in specs as
``trainer: tests.search.hanging_trainer``."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from trainers.contract import TrainerInfo
from trainers.dataset_keys import dataset_key
from trainers.reporter import NullReporter, Reporter

__all__ = ["SEARCH", "Config", "preflight", "train"]


@dataclass(frozen=True)
class Config:
    model: str = "hang"
    optimizer: str = "sgd"
    dataset: str = "none"
    lr: float = 0.01
    epochs: int = 4
    seed: int = 0
    checkpoint_dir: str | None = None
    epoch_s: float = 0.2
    hang_at_epoch: int = 0  # 0: never

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
    reporter = reporter or NullReporter()
    for epoch in range(1, cfg.epochs + 1):
        if epoch == cfg.hang_at_epoch:
            while True:  # stuck: only the process's end stops this
                time.sleep(0.05)
        time.sleep(cfg.epoch_s)
        reporter.report(epoch, {"val_acc": cfg.lr * epoch})
    return {"stop_reason": "completed", "epochs_run": cfg.epochs,
            "best_val_acc": cfg.lr * cfg.epochs}
