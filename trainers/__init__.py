"""Training only: torch and torchvision. Knows nothing of Optuna, Ray or SQL.

Contract: ``train(cfg, reporter=NullReporter()) -> dict`` reports after every evaluation,
stops when ``reporter.should_stop()``, and returns final metrics with ``epochs_run`` and
``stop_reason``; it never raises to stop.
"""

from __future__ import annotations

from trainers.cifar import CifarConfig
from trainers.cifar import train as train_cifar
from trainers.reporter import NullReporter, RecordingReporter, Reporter

__all__ = ["CifarConfig", "NullReporter", "RecordingReporter", "Reporter", "train_cifar"]
