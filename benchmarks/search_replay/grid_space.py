"""The replay's search space and how a suggestion lands on a recorded configuration.

Strategies search the round-2 style space (``examples/round2.yaml``) over the table's range:
learning rate and weight decay as log-scaled floats, batch size as a categorical, gamma as a
float. Each suggestion is snapped to the nearest grid point: log distance for learning rate,
weight decay and batch size, plain distance for gamma. A table that is only partly recorded
may lack that grid point; the suggestion then goes to the nearest recorded configuration,
distances counted in grid steps, and the replay counts how often that happened.

What a configuration is worth is its holdout accuracy, averaged over its recorded seeds: what a
user who re-trains the returned configuration gets on average. A run that never finished an
epoch has no holdout accuracy and counts as chance (10 classes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from benchmarks.search_table.table import ConfigValues, Table

__all__ = ["CHANCE_ACC", "GridSpace", "fixed_values", "replay_space"]

CHANCE_ACC = 0.1


def replay_space(table: Table) -> dict[str, dict[str, Any]]:
    """The spec's ``space`` section for ``table``: its grid's range, round-2 style. An axis with
    one value is left out (``fixed_values`` holds it)."""
    g = table.header.grid
    space: dict[str, dict[str, Any]] = {
        "lr": {"type": "float", "low": min(g.lrs), "high": max(g.lrs), "log": True},
        "weight_decay": {"type": "float", "low": min(g.weight_decays),
                         "high": max(g.weight_decays), "log": True},
        "batch_size": {"type": "categorical", "choices": sorted(g.batch_sizes)},
        "gamma": {"type": "float", "low": min(g.gammas), "high": max(g.gammas)},
    }
    return {k: v for k, v in space.items() if k not in fixed_values(table)}


def fixed_values(table: Table) -> dict[str, float | int]:
    """The grid's axes that hold a single value, as fixed trainer settings."""
    g = table.header.grid
    axes: dict[str, tuple[float, ...] | tuple[int, ...]] = {
        "lr": g.lrs, "weight_decay": g.weight_decays, "batch_size": g.batch_sizes,
        "gamma": g.gammas}
    return {k: v[0] for k, v in axes.items() if len(set(v)) == 1}


def _nearest_index(values: Sequence[float], x: float, *, log: bool) -> int:
    key = (lambda v: abs(math.log(v) - math.log(x))) if log else (lambda v: abs(v - x))
    return min(range(len(values)), key=lambda i: (key(values[i]), i))


@dataclass(frozen=True)
class GridSpace:
    """Snapping onto ``table``'s grid and the worth of its configurations."""

    table: Table

    @cached_property
    def _axes(self) -> tuple[tuple[float, ...], ...]:
        g = self.table.header.grid
        return (tuple(sorted(g.lrs)), tuple(sorted(g.weight_decays)),
                tuple(float(b) for b in sorted(g.batch_sizes)), tuple(sorted(g.gammas)))

    @cached_property
    def _recorded(self) -> frozenset[ConfigValues]:
        return frozenset(self.table.configs)

    def _indices(self, config: ConfigValues) -> tuple[int, ...]:
        values = (config.lr, config.weight_decay, float(config.batch_size), config.gamma)
        return tuple(_nearest_index(axis, v, log=i < 3)
                     for i, (axis, v) in enumerate(zip(self._axes, values, strict=True)))

    def _config(self, idx: Sequence[int]) -> ConfigValues:
        lrs, wds, bss, gammas = self._axes
        return ConfigValues(lr=lrs[idx[0]], weight_decay=wds[idx[1]],
                            batch_size=int(bss[idx[2]]), gamma=gammas[idx[3]])

    def snap(self, params: Mapping[str, Any]) -> tuple[ConfigValues, bool]:
        """The recorded configuration for ``params`` and whether it is the nearest grid point
        itself (False: that point is not recorded; the recorded configuration fewest grid steps
        away stands in, the nearer to ``params`` on a tie)."""
        wanted = ConfigValues.from_mapping({**fixed_values(self.table), **params})
        idx = self._indices(wanted)
        config = self._config(idx)
        if config in self._recorded:
            return config, True
        if not self._recorded:
            raise ValueError("the table holds no runs")

        def distance(c: ConfigValues) -> tuple[int, float, ConfigValues]:
            steps = sum((a - b) ** 2 for a, b in zip(self._indices(c), idx, strict=True))
            near = (abs(math.log(c.lr / wanted.lr))
                    + abs(math.log(c.weight_decay / wanted.weight_decay))
                    + abs(math.log(c.batch_size / wanted.batch_size))
                    + abs(c.gamma - wanted.gamma))
            return steps, near, c

        return min(self._recorded, key=distance), False

    @cached_property
    def worth(self) -> Mapping[ConfigValues, float]:
        """Each configuration's holdout accuracy, averaged over its recorded seeds."""
        by_config: dict[ConfigValues, list[float]] = {}
        for run in self.table.runs:
            acc = CHANCE_ACC if run.holdout_acc is None else run.holdout_acc
            by_config.setdefault(run.config, []).append(acc)
        return {c: sum(v) / len(v) for c, v in by_config.items()}

    @cached_property
    def best(self) -> tuple[ConfigValues, float]:
        """The configuration with the highest worth (first in order on a tie) and its worth."""
        config = max(sorted(self.worth), key=lambda c: self.worth[c])
        return config, self.worth[config]

    @cached_property
    def exhaustive_pick(self) -> tuple[ConfigValues, float]:
        """What trying every configuration once (its first recorded seed) and keeping the best
        by validation returns, and its worth: the most that selection by validation can be
        counted on to find in this table (it may rank the best configuration below another)."""
        runs = [self.table.lookup(c, self.table.seeds(c)[0]) for c in self.table.configs]
        runs = [r for r in runs if not r.diverged and r.epochs]
        pick = max(runs, key=lambda r: (r.best_val_acc, -self.worth[r.config])).config
        return pick, self.worth[pick]

    def reference(self, kind: str) -> float:
        """The worth a target is measured from: ``best``, the table's best configuration, or
        ``selectable``, the lower of that and what exhaustive selection by validation returns."""
        if kind == "best":
            return self.best[1]
        if kind == "selectable":
            return min(self.best[1], self.exhaustive_pick[1])
        raise ValueError(f"unknown reference {kind!r}; use 'best' or 'selectable'")

    @cached_property
    def full_run_cpu_seconds(self) -> float:
        """The cost of one full run: the mean over the table's completed runs of the sum of
        their epochs' CPU seconds (the unit the benchmark reports compute in)."""
        full = [sum(r.cpu_seconds) for r in self.table.runs if not r.diverged and r.epochs]
        if not full:
            raise ValueError("the table holds no completed run")
        return sum(full) / len(full)
