"""What the test trainers (tests/search/failing_trainer.py, hanging_trainer.py) share: a config
with the contract's fields and one tunable learning rate, the declaration that goes with it and
a preflight that accepts everything. Each trainer module subclasses ``ToyConfig`` as its own
``Config`` (its own model name, its own knobs) and re-exports ``SEARCH`` and ``preflight``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from trainers.contract import TrainerInfo
from trainers.dataset_keys import dataset_key

__all__ = ["SEARCH", "ToyConfig", "preflight"]

_C = TypeVar("_C", bound="ToyConfig")


@dataclass(frozen=True)
class ToyConfig:
    model: str = "toy"
    optimizer: str = "sgd"
    dataset: str = "none"
    lr: float = 0.01
    epochs: int = 3
    seed: int = 0
    checkpoint_dir: str | None = None

    def replace(self: _C, **changes: Any) -> _C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SEARCH = TrainerInfo(
    tunable_fields=("lr",), metrics=("best_val_acc",), reports=("val_acc",),
    default_metric="best_val_acc", default_report="val_acc",
    key_fields=("model", "optimizer", "dataset"), regime_fields=("epochs",),
    dataset_key=lambda cfg: dataset_key(cfg.dataset))


def preflight(cfg: ToyConfig) -> None:
    return None
