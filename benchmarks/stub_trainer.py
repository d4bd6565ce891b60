"""A trainer that trains nothing: it reports ``epochs`` values of a smooth learning curve whose
height depends on lr and weight decay, at once. benchmarks/orchestration.py runs studies on it
to measure what the orchestration itself costs. It follows the trainer contract
(trainers/contract.py) exactly and is named in a spec as ``trainer: benchmarks.stub_trainer``:
nothing in search/ knows of it, which is the proof that a new trainer needs no edit there."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any

from trainers.contract import TrainerInfo
from trainers.dataset_keys import dataset_key
from trainers.reporter import NullReporter, Reporter

__all__ = ["SEARCH", "Config", "curve_height", "preflight", "train"]


@dataclass(frozen=True)
class Config:
    model: str = "stub"
    optimizer: str = "sgd"
    dataset: str = "none"
    lr: float = 0.01
    weight_decay: float = 1e-4
    epochs: int = 10
    seed: int = 0
    checkpoint_dir: str | None = None
    seed_noise: float = 0.0  # each seed shifts the curve by up to this much, reproducibly
    early_noise: float = 0.0  # epoch e dips by up to this x exp(1 - e): early ranks are noise

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dataset_key(cfg: Config) -> str:
    return dataset_key(cfg.dataset)


SEARCH = TrainerInfo(
    tunable_fields=("lr", "weight_decay", "epochs"),
    metrics=("best_val_acc", "epochs_run"),
    reports=("val_acc",),
    default_metric="best_val_acc",
    default_report="val_acc",
    key_fields=("model", "optimizer", "dataset"),
    regime_fields=("epochs",),
    dataset_key=_dataset_key,
    regime_scaled=("epochs",),
)


def curve_height(lr: float, weight_decay: float) -> float:
    """Best near lr 0.05 and weight decay 5e-4, like the round-2 analysis' proposal."""
    return math.exp(-(math.log10(lr / 0.05) ** 2) - 0.3 * math.log10(weight_decay / 5e-4) ** 2)


def preflight(cfg: Config) -> None:
    return None


def train(cfg: Config, reporter: Reporter | None = None) -> dict[str, Any]:
    reporter = reporter or NullReporter()
    height = curve_height(cfg.lr, cfg.weight_decay)
    height += cfg.seed_noise * random.Random(cfg.seed).uniform(-1.0, 1.0)
    best = 0.0
    for epoch in range(1, cfg.epochs + 1):
        value = height * (1 - math.exp(-epoch / 3))
        if cfg.early_noise:
            jitter = random.Random(f"{cfg.lr!r}:{cfg.seed}:{epoch}").uniform(-1.0, 0.0)
            value += cfg.early_noise * jitter * math.exp(1 - epoch)
        best = max(best, value)
        reporter.report(epoch, {"val_acc": value})
        if reporter.should_stop():
            return {"stop_reason": "pruned", "epochs_run": epoch, "best_val_acc": best}
    return {"stop_reason": "completed", "epochs_run": cfg.epochs, "best_val_acc": best}
