"""Regret against compute, one line (median) and band (interquartile range) per strategy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.search_replay.metrics import quantile

__all__ = ["plot_regret"]


def plot_regret(curves: Mapping[str, Sequence[Sequence[float]]], xs_runs: Sequence[float],
                out: Path, *, title: str, xlabel: str, budget_runs: float,
                target_regret: float) -> None:
    """``curves[strategy]``: regret in points per repetition (rows) at each of ``xs_runs``;
    dotted: the budget; dashed: the target's regret."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for name, rows in curves.items():
        columns = list(zip(*rows, strict=True))
        med = [quantile(c, 0.5) for c in columns]
        lo = [quantile(c, 0.25) for c in columns]
        hi = [quantile(c, 0.75) for c in columns]
        (line,) = ax.plot(xs_runs, med, label=name, linewidth=1.6)
        ax.fill_between(xs_runs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axvline(budget_runs, color="grey", linestyle=":", linewidth=1)
    ax.axhline(target_regret, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, max(xs_runs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("regret (points of holdout accuracy below the table's best)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
