"""The Markdown report's plots as PNG files (matplotlib), for places that run no JavaScript.

The HTML report draws the same plots as interactive figures (figures.py). PNGs stay with
matplotlib rather than plotly's image export (kaleido), which drives a Chrome browser: a report
on a headless training server should not need one.
"""

from __future__ import annotations

import io
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
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    makers: list[tuple[str, str, Callable[[Any], None]]] = [
        ("history", "Optimization history", lambda ax: _history(ax, done, study, metric)),
        ("learning_curves", "Intermediate values (learning curves)",
         lambda ax: _curves(ax, trials)),
        ("parallel", "Parallel coordinates", lambda ax: _parallel(ax, done, metric)),
        ("lr_vs_score", f"Learning rate against {metric}",
         lambda ax: _scatter(ax, done, "lr", lambda t: t.value, metric, logx=True)),
        ("gap_vs_wd", "Train-validation gap against weight decay",
         lambda ax: _scatter(ax, done, "weight_decay",
                             lambda t: t.user_attrs.get("best_train_val_gap"),
                             "train-validation gap", logx=True)),
    ]
    out: list[tuple[str, str, bytes | None]] = [(n, c, _render(f)) for n, c, f in makers]
    if importances is None:
        out.append(("importances", f"Parameter importances: {importance_note}", None))
    else:
        out.append(("importances", "Parameter importances",
                    _render(lambda ax: _bars(ax, importances))))
    return out


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


def _history(ax: Any, done: list[FrozenTrial], study: optuna.Study, metric: str) -> None:
    xs = [t.number for t in done]
    ys = [float(t.value) for t in done]  # type: ignore[arg-type]
    ax.scatter(xs, ys, s=14, label="trial")
    best, running = [], None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    for y in ys:
        running = y if running is None else pick(running, y)
        best.append(running)
    ax.step(xs, best, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.legend()


def _curves(ax: Any, trials: Sequence[FrozenTrial]) -> None:
    for t in trials:
        if t.intermediate_values:
            steps = sorted(t.intermediate_values)
            ax.plot(steps, [t.intermediate_values[s] for s in steps], lw=1,
                    alpha=0.9 if t.state == TrialState.COMPLETE else 0.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("reported value")


def _parallel(ax: Any, done: list[FrozenTrial], metric: str) -> None:
    import math

    names = sorted({k for t in done for k in t.params})
    if not done or not names:
        return
    values = [float(t.value) for t in done]  # type: ignore[arg-type]
    lo_v, hi_v = min(values), max(values)
    cmap = __import__("matplotlib").colormaps["viridis"]
    columns = []
    for n in names:
        raw = [t.params.get(n) for t in done]
        nums = [float(v) if isinstance(v, int | float) else float(sorted(
            {str(x) for x in raw}).index(str(v))) for v in raw]
        if all(isinstance(v, float) and v > 0 for v in raw) and max(nums) / min(nums) > 20:
            nums = [math.log10(v) for v in nums]
        lo, hi = min(nums), max(nums)
        columns.append([(v - lo) / (hi - lo) if hi > lo else 0.5 for v in nums])
    for i, value in enumerate(values):
        colour = cmap((value - lo_v) / (hi_v - lo_v) if hi_v > lo_v else 0.5)
        ax.plot(range(len(names)), [col[i] for col in columns], color=colour, lw=1)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_title(f"colour: {metric} (yellow is high)")


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
