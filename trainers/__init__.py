"""Training only: torch and torchvision. Knows nothing of Optuna, Ray or SQL.

Contract: ``train(cfg, reporter=NullReporter()) -> dict`` reports after every evaluation,
stops when ``reporter.should_stop()``, and returns final metrics with ``epochs_run`` and
``stop_reason``; it never raises to stop. Trainers: ``trainers.cifar`` and
``trainers.multitask``, imported on first use (so ``python -m trainers.cifar`` and the reporter
contract do not pull in a trainer they do not need). What the search side needs of a trainer
module (``Config``, ``train``, ``preflight`` and its ``SEARCH`` declaration) is written down in
``trainers.contract``.
"""

from __future__ import annotations

from typing import Any

from trainers.reporter import NullReporter, RecordingReporter, Reporter

__all__ = ["CifarConfig", "MultitaskConfig", "NullReporter", "RecordingReporter", "Reporter",
           "train_cifar", "train_multitask"]

_LAZY = {"CifarConfig": ("trainers.cifar", "CifarConfig"),
         "train_cifar": ("trainers.cifar", "train"),
         "MultitaskConfig": ("trainers.multitask", "MultitaskConfig"),
         "train_multitask": ("trainers.multitask", "train")}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'trainers' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
