"""From many traces to the figures the benchmark prints.

For each strategy over its repetitions: the compute until what it would return is worth at least
the target (0.5 points below the reference, see ``GridSpace.reference``; median and
interquartile range, in units of one full run; a repetition that never gets there within the
horizon counts as never, so a median can be "never"), how many repetitions got there, the regret
at a fixed budget (the table's best minus the worth of what the strategy would return then, in
points) and how many were at the target then, and the regret over compute for the plot.
Before a strategy's first completed trial it has nothing to return and is charged the regret of
a chance-level answer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.search_replay.grid_space import CHANCE_ACC, GridSpace
from benchmarks.search_replay.trace import Trace

__all__ = ["StrategySummary", "median_ratio_interval", "quantile", "regret_curve", "summarize"]

NEVER = math.inf


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile with linear interpolation; ``inf`` (never) sorts last, and a quantile
    that touches it is ``inf``."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(xs[lo]) or math.isinf(xs[hi]):
        return NEVER
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class StrategySummary:
    name: str
    repetitions: int
    to_target: tuple[float, ...]  # per repetition, in full runs (inf: never)
    regret_at_budget: tuple[float, ...]  # per repetition, in points
    at_target_at_budget: int  # repetitions whose returned configuration met the target then
    trials: float  # mean number of trials started
    completed: float  # mean number of trials that trained every epoch
    off_grid: int  # suggestions answered by a neighbour (a partly recorded table)

    @property
    def reached(self) -> int:
        """Repetitions that reached the target inside the horizon."""
        return sum(not math.isinf(x) for x in self.to_target)

    @property
    def median_to_target(self) -> float:
        return quantile(self.to_target, 0.5)

    @property
    def iqr_to_target(self) -> tuple[float, float]:
        return quantile(self.to_target, 0.25), quantile(self.to_target, 0.75)

    @property
    def median_regret(self) -> float:
        return quantile(self.regret_at_budget, 0.5)

    @property
    def iqr_regret(self) -> tuple[float, float]:
        return quantile(self.regret_at_budget, 0.25), quantile(self.regret_at_budget, 0.75)

    @property
    def mean_regret(self) -> float:
        return sum(self.regret_at_budget) / len(self.regret_at_budget)


def summarize(name: str, traces: Sequence[Trace], grid: GridSpace, *, budget_runs: float,
              target: float) -> StrategySummary:
    """``target``: the worth (holdout accuracy, a fraction) that counts as found."""
    unit = grid.full_run_cpu_seconds
    best = grid.best[1]
    to_target, regrets, hits = [], [], 0
    for trace in traces:
        reach = trace.compute_to_reach(target)
        to_target.append(NEVER if reach is None else reach / unit)
        worth = trace.worth_at(budget_runs * unit, before_any=CHANCE_ACC)
        regrets.append(100.0 * (best - worth))
        hits += worth >= target
    n = len(traces)
    return StrategySummary(
        name=name, repetitions=n, to_target=tuple(to_target), regret_at_budget=tuple(regrets),
        at_target_at_budget=hits,
        trials=sum(len(t.trials) for t in traces) / n,
        completed=sum(sum(r.state == "complete" for r in t.trials) for t in traces) / n,
        off_grid=sum(sum(not r.on_grid for r in t.trials) for t in traces))


def regret_curve(traces: Sequence[Trace], grid: GridSpace, xs_runs: Sequence[float]
                 ) -> list[list[float]]:
    """Regret in points at each compute in ``xs_runs`` (full runs), one row per trace."""
    unit = grid.full_run_cpu_seconds
    best = grid.best[1]
    return [[100.0 * (best - t.worth_at(x * unit, before_any=CHANCE_ACC)) for x in xs_runs]
            for t in traces]


def median_ratio_interval(a: Sequence[float], b: Sequence[float], *, level: float = 0.95,
                          draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval of ``median(a) / median(b)``: both samples resampled with
    replacement ``draws`` times, the ratio's central ``level`` quantiles. A median that is
    never (inf) makes the ratio inf (``a``) or 0 (``b``); a draw where both are never is left
    out, and an interval with no draws left is (nan, nan)."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        ma = quantile([rng.choice(a) for _ in a], 0.5)
        mb = quantile([rng.choice(b) for _ in b], 0.5)
        if math.isinf(ma) and math.isinf(mb):
            continue
        ratios.append(NEVER if math.isinf(ma) else 0.0 if math.isinf(mb) else ma / mb)
    if not ratios:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    return quantile(ratios, tail), quantile(ratios, 1.0 - tail)
