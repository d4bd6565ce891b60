"""The reporting side of the trainer contract.

A trainer calls ``reporter.report(epoch, metrics)`` after every evaluation and then stops
(returning normally, never raising) when ``reporter.should_stop()`` says so. The search side
adapts this to Optuna's ``trial.report``/``trial.should_prune``; trainers never see Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["NullReporter", "RecordingReporter", "Reporter"]


@runtime_checkable
class Reporter(Protocol):
    def report(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def should_stop(self) -> bool: ...


class NullReporter:
    """Reports nowhere and never stops training: the standalone default."""

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        return None

    def should_stop(self) -> bool:
        return False


class RecordingReporter:
    """Keeps every report in memory; stops after ``stop_after_epoch`` when it is given.

    Useful for tests and for callers that want the learning curve without a database.
    """

    def __init__(self, *, stop_after_epoch: int | None = None) -> None:
        self.history: list[tuple[int, dict[str, float]]] = []
        self._stop_after_epoch = stop_after_epoch

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.history.append((epoch, dict(metrics)))

    def should_stop(self) -> bool:
        if self._stop_after_epoch is None or not self.history:
            return False
        return self.history[-1][0] >= self._stop_after_epoch
