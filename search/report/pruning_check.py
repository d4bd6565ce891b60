"""Does the rung the pruner decides at predict where trials end up?

As trials complete, the value each reported at epoch e is ranked against its final value
(Spearman's rank correlation over the completed trials that reached e). Where the pruner makes
its first decision (Hyperband's and successive halving's ``min_resource``, the median or
percentile pruner's first step after ``n_warmup_steps``), a low correlation means pruning there
decides on noise: early epochs of different learning rates all sit near chance, and a trial
that would have won is cut. The check says so once ``MIN_TRIALS`` trials completed, names the
earliest epoch that does predict (correlation of at least ``MIN_RHO``), and a spec that opts in
(``pruning_check: {raise_min_resource: true}``) has its workers move the first decision there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState

__all__ = ["MIN_RHO", "MIN_TRIALS", "PruningCheck", "check_pruning", "decision_epoch",
           "spearman"]

MIN_TRIALS = 8
MIN_RHO = 0.5


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation with average ranks for ties; None when a side is constant
    or there are fewer than 3 pairs."""
    if len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    order = arr.argsort(kind="mergesort")
    ranks = np.empty(len(arr))
    ranks[order] = np.arange(len(arr), dtype=float)
    for value in np.unique(arr):  # ties share their average rank
        tied = arr == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def decision_epoch(pruner: str, options: dict[str, object]) -> int | None:
    """The first epoch at which the pruner can stop a trial; None for no pruner."""
    if pruner in ("hyperband", "successive_halving"):
        value = options.get("min_resource", 1)
        return int(value) if isinstance(value, int | float) else 1
    if pruner in ("median", "percentile", "threshold"):
        warmup = options.get("n_warmup_steps", 0)
        return (int(warmup) if isinstance(warmup, int | float) else 0) + 1
    if pruner == "patient":
        wrapped = options.get("wrapped")
        if isinstance(wrapped, dict):
            return decision_epoch(str(wrapped.get("name")),
                                  {k: v for k, v in wrapped.items() if k != "name"})
        return None
    return None


@dataclass(frozen=True)
class PruningCheck:
    decision_epoch: int | None
    rho_by_epoch: tuple[tuple[int, float | None, int], ...]  # (epoch, rho, trials)
    completed: int

    @property
    def decision_rho(self) -> float | None:
        return next((rho for e, rho, _ in self.rho_by_epoch if e == self.decision_epoch), None)

    @property
    def informative(self) -> bool | None:
        """None: too few completed trials (or no pruner) to say."""
        if self.decision_epoch is None or self.completed < MIN_TRIALS:
            return None
        rho = self.decision_rho
        return rho is not None and rho >= MIN_RHO

    @property
    def first_informative_epoch(self) -> int | None:
        return next((e for e, rho, n in self.rho_by_epoch
                     if rho is not None and rho >= MIN_RHO and n >= MIN_TRIALS), None)

    def describe(self) -> str:
        if self.decision_epoch is None:
            return "no pruner: nothing to check"
        if self.completed < MIN_TRIALS:
            return (f"pruning check: {self.completed} of the {MIN_TRIALS} completed trials it "
                    "needs")
        rho = self.decision_rho
        shown = "undefined" if rho is None else f"{rho:.2f}"
        head = (f"pruning check: values at epoch {self.decision_epoch}, where the pruner first "
                f"decides, rank the final ones with Spearman {shown} over {self.completed} "
                "completed trials")
        if self.informative:
            return f"{head}: informative"
        better = self.first_informative_epoch
        where = (f"; epoch {better} is the first that predicts (>= {MIN_RHO})" if better
                 else f"; no epoch reaches {MIN_RHO} yet")
        return f"{head}: pruning there decides on noise{where}"


def check_pruning(trials: Sequence[FrozenTrial], *, decision: int | None) -> PruningCheck:
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value) and t.intermediate_values]
    last = max((max(t.intermediate_values) for t in done), default=0)
    rows = []
    for epoch in range(1, last + 1):
        pairs = [(float(t.intermediate_values[epoch]), float(t.value or 0.0)) for t in done
                 if epoch in t.intermediate_values
                 and math.isfinite(t.intermediate_values[epoch])]
        rho = spearman([p[0] for p in pairs], [p[1] for p in pairs])
        rows.append((epoch, rho, len(pairs)))
    return PruningCheck(decision, tuple(rows), len(done))
