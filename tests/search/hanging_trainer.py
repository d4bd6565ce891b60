"""A trainer that stops making progress at ``hang_at_epoch``, as a worker stuck inside a kernel
does: no report, no return, the process alive. Named in specs as
``trainer: tests.search.hanging_trainer``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.search.toy_trainers import SEARCH, ToyConfig, preflight
from trainers.reporter import NullReporter, Reporter

__all__ = ["SEARCH", "Config", "preflight", "train"]


@dataclass(frozen=True)
class Config(ToyConfig):
    model: str = "hang"
    epochs: int = 4
    epoch_s: float = 0.2
    hang_at_epoch: int = 0  # 0: never


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
