"""``hpsearch report``: a self-contained HTML report (plots inlined) and the same content as
Markdown (plots beside it as PNG files), plus the next round's spec as YAML."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from search.errors import StudyError
from search.report.analysis import RoundAnalysis, analyse
from search.tuning.promote import best_finished_trial

__all__ = ["ReportFiles", "load_previous", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    next_spec: Path
    analysis: RoundAnalysis


def write_report(study: optuna.Study, spec: dict[str, Any], out_dir: str | Path, *,
                 previous: optuna.Study | None = None) -> ReportFiles:
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    best = best_finished_trial(study)
    previous_best = best_finished_trial(previous) if previous is not None else None
    analysis = analyse(spec, trials, best, previous_best)
    metric = spec.get("objective", {}).get("metric", "value")
    plots = _plots(study, trials, metric)
    title = f"Study {study.study_name}: round analysis"
    sections = _sections(study, spec, analysis, metric)

    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, lines in sections:
        md += [f"## {heading}", "", *(f"- {line}" for line in lines), ""]
        body.append(f"<h2>{html.escape(heading)}</h2><ul>"
                    + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
    next_yaml = yaml.safe_dump(analysis.next_spec, sort_keys=False)
    md += ["## Next round spec", "", "```yaml", next_yaml.rstrip(), "```", ""]
    body.append(f"<h2>Next round spec</h2><pre>{html.escape(next_yaml)}</pre>")
    md += ["## Plots", ""]
    body.append("<h2>Plots</h2>")
    for name, caption, png in plots:
        if png is None:
            md += [f"- {caption}", ""]
            body.append(f"<p>{html.escape(caption)}</p>")
            continue
        (out / f"{name}.png").write_bytes(png)
        md += [f"### {caption}", "", f"![{caption}]({name}.png)", ""]
        body.append(f"<h3>{html.escape(caption)}</h3><img alt=\"{html.escape(caption)}\" "
                    f"src=\"data:image/png;base64,{base64.b64encode(png).decode()}\">")
    html_path, md_path, spec_path = out / "report.html", out / "report.md", out / "next_round.yaml"
    html_path.write_text("<!doctype html><html><head><meta charset=\"utf-8\"><title>"
                         f"{html.escape(title)}</title><style>body{{font-family:sans-serif;"
                         "max-width:60em;margin:2em auto}img{max-width:100%}</style></head>"
                         f"<body>{''.join(body)}</body></html>\n")
    md_path.write_text("\n".join(md))
    spec_path.write_text(next_yaml)
    return ReportFiles(html_path, md_path, spec_path, analysis)


def _sections(study: optuna.Study, spec: dict[str, Any], a: RoundAnalysis, metric: str
              ) -> list[tuple[str, list[str]]]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    summary = [f"{sum(counts.values())} trials: " + ", ".join(f"{v} {k}" for k, v in
                                                             sorted(counts.items())),
               f"best trial {a.best.number}: {metric} = {a.best.value:.4f}",
               "best parameters: " + ", ".join(f"{k}={_short(v)}"
                                               for k, v in a.best.params.items())]
    target = spec.get("success", {}).get("target")
    if target is not None and a.best.value is not None:
        summary.append(f"target {target}: {'reached' if a.best.value >= target else 'not reached'}")
    sections = [("Summary", summary)]
    if a.reference is not None:
        sections.append((f"Performance against the {a.reference_label}",
                         [c.line() for c in a.comparisons] or ["no metrics in common"]))
    sections.append(("Overfitting indicators", list(a.overfitting) or ["none found"]))
    sections.append(("Optimization analysis", list(a.optimization) or
                     ["no learning-rate schedule recorded for the best trial"]))
    sections.append(("Next round: narrowed search space", list(a.next_reasons)))
    return sections


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _plots(study: optuna.Study, trials: Sequence[FrozenTrial], metric: str
           ) -> list[tuple[str, str, bytes | None]]:
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
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few trials, or a single distinct value
        out.append(("importances", f"Parameter importances: not computable ({exc})", None))
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


def load_previous(storage: optuna.storages.BaseStorage, name: str | None
                  ) -> optuna.Study | None:
    if name is None:
        return None
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise StudyError(f"--previous: no study {name!r} in this storage; studies: "
                         f"{optuna.get_all_study_names(storage)}") from None
