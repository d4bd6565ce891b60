"""The Markdown report's plots as PNG files (matplotlib), for places that run no JavaScript.

The history, parallel coordinates and learning-rate slice are Optuna's own matplotlib figures
(``optuna.visualization.matplotlib``); the learning curves by state, the gap scatter and the
importance bars (from the importances computed once for both reports) are drawn here.
The HTML report draws the same plots as interactive figures (figures.py). PNGs stay with
matplotlib rather than plotly's image export (kaleido), which drives a Chrome browser: a report
on a headless training server should not need one.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["png_plots"]


def png_plots(study: optuna.Study, trials: Sequence[FrozenTrial], metric: str,
              importances: dict[str, float] | None, importance_note: str | None
              ) -> list[tuple[str, str, bytes | None]]:
    """(file stem, caption, PNG bytes or None when there is only the caption to show)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import optuna.visualization.matplotlib as om

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    out: list[tuple[str, str, bytes | None]] = [
        _optuna("history", "Optimization history",
                lambda: om.plot_optimization_history(study, target_name=metric)),
        ("learning_curves", "Intermediate values (learning curves)",
         _render(lambda ax: _curves(ax, trials))),
        _optuna("parallel", "Parallel coordinates (milestones as fractions of the epoch budget)",
                lambda: om.plot_parallel_coordinate(study, target_name=metric)),
    ]
    if any("lr" in t.params for t in done):
        out.append(_optuna("lr_vs_score", f"Learning rate against {metric}",
                           lambda: om.plot_slice(study, params=["lr"], target_name=metric)))
    out.append(("gap_vs_wd", "Train-validation gap against weight decay",
                _render(lambda ax: _scatter(ax, done, "weight_decay",
                                            lambda t: t.user_attrs.get("best_train_val_gap"),
                                            "train-validation gap", logx=True))))
    if importances is None:
        out.append(("importances", f"Parameter importances: {importance_note}", None))
    else:
        out.append(("importances", "Parameter importances",
                    _render(lambda ax: _bars(ax, importances))))
    return out


def _optuna(name: str, caption: str, make: Callable[[], Any]) -> tuple[str, str, bytes | None]:
    """One of Optuna's matplotlib figures (experimental in Optuna 3-5), as PNG bytes."""
    import matplotlib.pyplot as plt
    import numpy as np

    with warnings.catch_warnings(), plt.rc_context({"figure.figsize": (10, 4.5)}):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a parameter every trial shares: matplotlib widens its axis itself, and says so
        warnings.filterwarnings("ignore", message="Attempting to set identical",
                                category=UserWarning)
        try:
            axes = make()
        except (ValueError, RuntimeError) as exc:  # e.g. no completed trial
            return name, f"{caption}: not drawn ({exc})", None
    fig = (axes.flat[0] if isinstance(axes, np.ndarray) else axes).figure
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        return name, caption, buf.getvalue()
    finally:
        plt.close(fig)


def _render(draw: Callable[[Any], None]) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=90)
    try:
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def _curves(ax: Any, trials: Sequence[FrozenTrial]) -> None:
    for t in trials:
        if t.intermediate_values:
            steps = sorted(t.intermediate_values)
            ax.plot(steps, [t.intermediate_values[s] for s in steps], lw=1,
                    alpha=0.9 if t.state == TrialState.COMPLETE else 0.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("reported value")


def _scatter(ax: Any, done: list[FrozenTrial], param: str, y_of: Callable[[FrozenTrial], Any],
             ylabel: str, *, logx: bool) -> None:
    pts = [(t.params[param], y_of(t)) for t in done
           if param in t.params and isinstance(y_of(t), int | float)]
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=16)
        if logx and all(p[0] > 0 for p in pts):
            ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(ylabel)


def _bars(ax: Any, importances: dict[str, float]) -> None:
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance")
