"""A trainer whose every run fails after its first epoch, as one with a bug or a broken kernel
does. Named in specs as ``trainer: tests.search.failing_trainer``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.search.toy_trainers import SEARCH, ToyConfig, preflight
from trainers.reporter import NullReporter, Reporter

__all__ = ["SEARCH", "Config", "preflight", "train"]


@dataclass(frozen=True)
class Config(ToyConfig):
    model: str = "failing"


def train(cfg: Config, reporter: Reporter | None = None) -> dict[str, Any]:
    (reporter or NullReporter()).report(1, {"val_acc": cfg.lr})
    raise RuntimeError(f"kernel_xyz failed at lr {cfg.lr:.3g}")
