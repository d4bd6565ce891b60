"""Patience-based early stopping on a metric that should increase."""

from __future__ import annotations

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stops when ``metric`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    An improvement must beat the best value so far by strictly more than ``min_delta``; epochs
    that improve by less count toward the patience, so a slow crawl does not run forever.
    """

    def __init__(self, *, patience: int, min_delta: float) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.epochs_without_improvement = 0

    def update(self, epoch: int, metric: float) -> bool:
        """Record ``metric`` for ``epoch``; return True when training should stop."""
        if self.best is None or metric > self.best + self.min_delta:
            self.best = metric
            self.best_epoch = epoch
            self.epochs_without_improvement = 0
            return False
        self.epochs_without_improvement += 1
        return self.epochs_without_improvement >= self.patience

    def state_dict(self) -> dict[str, float | int | None]:
        return {"best": self.best, "best_epoch": self.best_epoch,
                "epochs_without_improvement": self.epochs_without_improvement}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = int(state["best_epoch"] or 0)
        self.epochs_without_improvement = int(state["epochs_without_improvement"] or 0)
