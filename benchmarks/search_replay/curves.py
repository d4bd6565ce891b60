"""What the table's curves say about deciding early: how well a run's validation accuracy at
epoch ``e`` ranks configurations by what they are finally worth.

A pruner that compares trials at epoch ``e`` keeps the top ``1 / reduction_factor`` of them.
If the configurations that end best are not near the top at ``e`` (a learning rate that is too
high for the first epochs but right after the decay, say), pruning there throws them away. For
each epoch this prints the rank correlation (Spearman) between the seed-0 run's validation
accuracy at that epoch and the configuration's worth, and how many of the best configurations
(by worth) sit in the top third at that epoch, where a reduction factor of 3 keeps them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.search_replay.grid_space import GridSpace
from search.report.pruning_check import spearman

__all__ = ["EpochAgreement", "early_rank_agreement"]


@dataclass(frozen=True)
class EpochAgreement:
    epoch: int
    spearman: float  # validation accuracy at this epoch vs the configuration's worth
    # (nan: one side is constant)
    top_kept: int  # of the ``top`` best configurations, how many are in the top third here
    top: int


def early_rank_agreement(grid: GridSpace, *, top: int = 5, keep: float = 1 / 3
                         ) -> list[EpochAgreement]:
    """Per epoch, over the configurations whose seed-0 run finished every epoch."""
    table = grid.table
    epochs = table.header.grid.epochs
    runs = [table.lookup(c, table.seeds(c)[0]) for c in table.configs]
    runs = [r for r in runs if len(r.epochs) == epochs]
    if len(runs) < 3:
        return []
    worth = [grid.worth[r.config] for r in runs]
    best = sorted(range(len(runs)), key=lambda i: -worth[i])[:top]
    out = []
    for e in range(epochs):
        at = [r.epochs[e].val_acc for r in runs]
        cut = sorted(at, reverse=True)[max(0, int(len(at) * keep) - 1)]
        rho = spearman(at, worth)
        out.append(EpochAgreement(epoch=e + 1, spearman=math.nan if rho is None else rho,
                                  top_kept=sum(at[i] >= cut for i in best), top=len(best)))
    return out
