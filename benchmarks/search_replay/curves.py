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

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.search_replay.grid_space import GridSpace

__all__ = ["EpochAgreement", "early_rank_agreement", "spearman"]


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / (va * vb) ** 0.5 if va and vb else float("nan")


@dataclass(frozen=True)
class EpochAgreement:
    epoch: int
    spearman: float  # validation accuracy at this epoch vs the configuration's worth
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
        out.append(EpochAgreement(epoch=e + 1, spearman=spearman(at, worth),
                                  top_kept=sum(at[i] >= cut for i in best), top=len(best)))
    return out
