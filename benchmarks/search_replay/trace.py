"""What one simulated study did, in the same form for every strategy (ours and the peers').

A trace holds every epoch charged (which worker ran it, when it started and ended on the
simulated clock, its recorded CPU seconds), every trial (its configuration, seed and how it
ended), and the incumbent over compute: the configuration the strategy would return at that
moment, which is its best *completed* trial by validation accuracy (a pruned or diverged trial
is never returned, as in hpsearch, where the best trial is the best COMPLETE one).

Compute is counted as the workers' busy CPU time: workers never idle in the simulation, so by
simulated time ``t`` the study has spent ``workers * t`` CPU seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.search_table.table import ConfigValues

__all__ = ["EpochCharge", "IncumbentStep", "Trace", "TrialRecord"]


@dataclass(frozen=True)
class EpochCharge:
    trial: int
    epoch: int  # 1-based; 0 for the part of an epoch a diverging run trained before it stopped
    worker: int
    start: float  # simulated seconds
    end: float
    cpu_seconds: float  # what the epoch cost: its recorded CPU seconds


@dataclass(frozen=True)
class TrialRecord:
    number: int
    worker: int
    config: ConfigValues
    seed: int
    on_grid: bool  # False: the nearest grid point was not recorded; a neighbour stood in
    start: float
    end: float | None  # None: still running when the budget ran out
    epochs_run: int
    state: str  # "complete", "pruned", "diverged" or "cut" (running when the budget ran out)
    best_val_acc: float | None


@dataclass(frozen=True)
class IncumbentStep:
    time: float  # simulated seconds
    compute: float  # CPU seconds spent by all workers by then
    trial: int
    config: ConfigValues
    best_val_acc: float
    worth: float  # the configuration's holdout accuracy (mean over its seeds)


@dataclass(frozen=True)
class Trace:
    strategy: str
    repetition: int
    workers: int
    horizon_cpu_seconds: float
    charges: tuple[EpochCharge, ...]
    trials: tuple[TrialRecord, ...]
    incumbents: tuple[IncumbentStep, ...]  # each change of the returned configuration

    @property
    def charged_cpu_seconds(self) -> float:
        return sum(c.cpu_seconds for c in self.charges)

    def worth_at(self, compute: float, *, before_any: float) -> float:
        """The worth of what the strategy would return after ``compute`` CPU seconds;
        ``before_any`` until its first trial completes."""
        worth = before_any
        for step in self.incumbents:
            if step.compute > compute:
                break
            worth = step.worth
        return worth

    def compute_to_reach(self, worth: float) -> float | None:
        """The compute at which the returned configuration is first worth at least ``worth``;
        None if it never is within the horizon."""
        for step in self.incumbents:
            if step.worth >= worth:
                return step.compute
        return None
