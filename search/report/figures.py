"""The HTML report's interactive figures (plotly): hover a point to see its trial, zoom, click
a legend entry to hide pruned trials.

Optuna's own figures (``optuna.visualization``) are used where Optuna has the plot: the
optimization history, parallel coordinates and the slice plot. Their points carry no trial
hover text (Optuna 5 shows x and y only), so each point of the history and slice plots is given
one: the trial, its state and value, its parameters in the units a person uses.
Learning curves by trial state, the train-validation gap and the importance bars are drawn with
plotly directly (the bars from the importances the Markdown report shows, computed once).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["Figure", "interactive_figures"]

log = logging.getLogger(__name__)

_STATE_STYLE = {  # legend group: colour, line dash, opacity
    "complete": ("#1f77b4", "solid", 0.9),
    "early-stopped": ("#17becf", "solid", 0.9),
    "pruned": ("#ff7f0e", "dot", 0.55),
    "running": ("#2ca02c", "dash", 0.9),
    "failed": ("#d62728", "dot", 0.5),
}


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str
    figure: Any | None  # a plotly Figure; None when there is only the caption to show


def interactive_figures(study: optuna.Study, trials: Sequence[FrozenTrial], metric: str,
                        hover: Callable[[FrozenTrial], str],
                        importances: Mapping[str, float] | None, importance_note: str | None
                        ) -> list[Figure]:
    import optuna.visualization as ov

    by_number = {t.number: t for t in trials}
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    figures = [
        _optuna("history", "Optimization history", lambda: ov.plot_optimization_history(
            study, target_name=metric), by_number, hover),
        Figure("learning_curves", "Learning curves (click a legend entry to hide a state)",
               _curves(trials, hover)),
        _optuna("parallel", "Parallel coordinates (milestones as fractions of the epoch budget)",
                lambda: ov.plot_parallel_coordinate(study, target_name=metric), by_number,
                hover),
        _optuna("slice", f"Each parameter against {metric}",
                lambda: ov.plot_slice(study, target_name=metric), by_number, hover),
        Figure("gap_vs_wd", "Train-validation gap against weight decay", _gap(done, hover)),
    ]
    if importances is None:
        figures.append(Figure("importances", f"Parameter importances: {importance_note}", None))
    else:
        figures.append(Figure("importances", "Parameter importances (fANOVA)",
                              _bars(importances)))
    return figures


def _optuna(name: str, caption: str, make: Callable[[], Any], by_number: Mapping[int, FrozenTrial],
            hover: Callable[[FrozenTrial], str]) -> Figure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            fig = make()
        except (ValueError, RuntimeError) as exc:  # e.g. no completed trial, one parameter
            return Figure(name, f"{caption}: not drawn ({exc})", None)
    for trace in fig.data:
        numbers = _trial_numbers(trace, by_number)
        if numbers is not None:
            trace.customdata = numbers
            trace.hovertext = [hover(by_number[n]) for n in numbers]
            trace.hovertemplate = "%{hovertext}<extra></extra>"
    _style(fig)
    return Figure(name, caption, fig)


def _trial_numbers(trace: Any, by_number: Mapping[int, FrozenTrial]) -> list[int] | None:
    """The trial behind each point of one of Optuna's marker traces: the slice plot colours
    its points by trial number, the history plot puts trials on x. None for other traces
    (lines, the parallel coordinates' per-axis hover, which already names each value)."""
    if "markers" not in str(getattr(trace, "mode", "") or "") or trace.hoverinfo == "skip":
        return None
    for candidate in (getattr(trace.marker, "color", None), trace.x):
        if candidate is None or isinstance(candidate, str):
            continue
        values = list(candidate)
        if values and len(values) == len(trace.x) and all(
                isinstance(v, int) and not isinstance(v, bool) and v in by_number
                for v in values):
            return values
    return None


def _curves(trials: Sequence[FrozenTrial], hover: Callable[[FrozenTrial], str]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    shown: set[str] = set()
    for t in sorted(trials, key=lambda t: t.number):
        if not t.intermediate_values:
            continue
        group = _state(t)
        colour, dash, opacity = _STATE_STYLE[group]
        steps = sorted(t.intermediate_values)
        fig.add_trace(go.Scatter(
            x=steps, y=[t.intermediate_values[s] for s in steps], mode="lines+markers",
            name=group, legendgroup=group, showlegend=group not in shown,
            line={"color": colour, "dash": dash, "width": 1.5}, marker={"size": 4},
            opacity=opacity, customdata=[t.number] * len(steps),
            hovertext=[hover(t)] * len(steps),
            hovertemplate="%{hovertext}<br>epoch %{x}: %{y:.4f}<extra></extra>"))
        shown.add(group)
    fig.update_layout(xaxis_title="epoch", yaxis_title="reported value",
                      legend={"title": {"text": "trial state"}, "groupclick": "togglegroup"})
    _style(fig)
    return fig


def _gap(done: Sequence[FrozenTrial], hover: Callable[[FrozenTrial], str]) -> Any | None:
    import plotly.graph_objects as go

    pts = [t for t in done if isinstance(t.params.get("weight_decay"), int | float)
           and isinstance(t.user_attrs.get("best_train_val_gap"), int | float)]
    if not pts:
        return None
    fig = go.Figure(go.Scatter(
        x=[t.params["weight_decay"] for t in pts],
        y=[t.user_attrs["best_train_val_gap"] for t in pts], mode="markers",
        marker={"size": 9, "color": [float(t.value) for t in pts],  # type: ignore[arg-type]
                "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "value"}},
        customdata=[t.number for t in pts], hovertext=[hover(t) for t in pts],
        hovertemplate="%{hovertext}<br>gap %{y:.4f}<extra></extra>"))
    fig.update_layout(xaxis={"title": "weight_decay", "type": "log"},
                      yaxis_title="train-validation gap")
    _style(fig)
    return fig


def _bars(importances: Mapping[str, float]) -> Any:
    import plotly.graph_objects as go

    names = list(importances)[::-1]
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(xaxis_title="importance")
    _style(fig)
    return fig


def _state(t: FrozenTrial) -> str:
    if t.state == TrialState.COMPLETE:
        return "early-stopped" if t.user_attrs.get("stop_reason") == "early_stopped" \
            else "complete"
    return {TrialState.PRUNED: "pruned", TrialState.RUNNING: "running"}.get(t.state, "failed")


def _style(fig: Any) -> None:
    # width None: the page sets it (Optuna's slice plot asks for 300 px a parameter)
    fig.update_layout(template="plotly_white", height=420, width=None, autosize=True,
                      margin={"l": 60, "r": 20, "t": 40, "b": 50},
                      hoverlabel={"align": "left"})
