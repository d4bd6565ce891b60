"""TrialReporter: the trainer's Reporter, backed by an Optuna trial. The only place that
knows the pruner exists; the objective, not this class, raises ``optuna.TrialPruned``.

Optuna keeps no intermediate values for multi-objective studies (``trial.report`` raises
there), so with ``prune=False`` nothing is reported and the trial never stops early by pruning;
the per-epoch learning curve of the reported metric is kept as the ``curve`` user attribute
instead."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import optuna

__all__ = ["TrialReporter"]


class TrialReporter:
    def __init__(self, trial: optuna.Trial, *, metric: str, prune: bool = True,
                 after_report: Callable[[int], None] | None = None) -> None:
        """``after_report(epoch)`` runs after each report (the checkpoint upload)."""
        self._trial = trial
        self._after_report = after_report
        self._metric = metric
        self._prune = prune
        self.last_epoch = 0
        self.lr_per_epoch: list[float] = []  # the schedule as it ran, for the trial's record
        self.curve: list[float] = []  # the reported metric per epoch

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._metric not in metrics:
            raise KeyError(f"the trainer reported {sorted(metrics)} but the spec prunes on "
                           f"{self._metric!r}; set objective.report to one of those")
        value = float(metrics[self._metric])
        self.curve.append(value)
        if self._prune and math.isfinite(value):
            self._trial.report(value, step=epoch)
        if "lr" in metrics:
            self.lr_per_epoch.append(float(metrics["lr"]))
        self.last_epoch = epoch
        if self._after_report is not None:
            self._after_report(epoch)

    def should_stop(self) -> bool:
        return self._prune and self._trial.should_prune()
