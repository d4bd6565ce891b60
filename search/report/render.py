"""``hpsearch report``: an interactive, self-contained HTML report (plotly figures, plotly.js
embedded once, so it works offline and from a file:// URL), the same content as Markdown with
PNG plots beside it (for places that run no JavaScript), and the next round's spec as YAML.

Sections: summary (best parameters in the units a person uses: milestones in epochs), the
comparison with the previous round, overfitting, optimization, what early stopping and pruning
made moot, the top trials ranked at a common fidelity, the narrowed next round.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from search.errors import StudyError
from search.report.analysis import TOP_K, RoundAnalysis, analyse
from search.report.figures import interactive_figures
from search.report.page import Table, html_page
from search.report.pngs import png_plots
from search.report.ranking import Ranked
from search.report.units import shown_params
from search.tuning.promote import best_finished_trial

__all__ = ["ReportFiles", "load_previous", "write_report"]

log = logging.getLogger(__name__)

TABLE_ROWS = 10
RANKING_RULE = (
    "Ranked at a common fidelity: two trials that finished compare by their final value; "
    "otherwise they compare at the last epoch both reached (a pruned trial counts at the epoch "
    "it was pruned), by the best value each had reported by then. Score: trials beaten minus "
    "trials lost to. The top {k} shape the next round.")


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
    title = f"Study {study.study_name}: round analysis"
    subtitle = (f"{spec.get('trainer', '?')} trainer, {_direction(spec)} {metric}, "
                f"{len(trials)} trials")
    sections = _sections(study, spec, analysis, metric)
    table = _top_table(analysis.ranking, spec, metric)
    importances = _importances(study, analysis.importance_note)
    note = analysis.importance_note or "not computable"
    next_yaml = yaml.safe_dump(analysis.next_spec, sort_keys=False)

    def hover(t: FrozenTrial) -> str:
        return _hover(t, spec, metric)

    md = [f"# {title}", "", subtitle, ""]
    for heading, lines in sections:
        md += [f"## {heading}", "", *(f"- {line}" for line in lines), ""]
    md += ["## Top trials", "", table.caption, "", "| " + " | ".join(table.header) + " |",
           "|" + "|".join("---:" if i in table.numeric else "---"
                          for i in range(len(table.header))) + "|",
           *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
             for row in table.rows), ""]
    md += ["## Next round spec", "", "```yaml", next_yaml.rstrip(), "```", ""]
    md += ["## Plots", ""]
    for name, caption, png in png_plots(study, trials, metric, importances, note):
        if png is None:
            md += [f"- {caption}", ""]
            continue
        (out / f"{name}.png").write_bytes(png)
        md += [f"### {caption}", "", f"![{caption}]({name}.png)", ""]
    figures = interactive_figures(study, trials, metric, hover, importances, note)
    html_path, md_path, spec_path = out / "report.html", out / "report.md", out / "next_round.yaml"
    html_path.write_text(html_page(title, subtitle, sections, table, next_yaml, figures))
    md_path.write_text("\n".join(md))
    spec_path.write_text(next_yaml)
    return ReportFiles(html_path, md_path, spec_path, analysis)


def _direction(spec: dict[str, Any]) -> str:
    return str(spec.get("objective", {}).get("direction", "maximize"))


def _sections(study: optuna.Study, spec: dict[str, Any], a: RoundAnalysis, metric: str
              ) -> list[tuple[str, list[str]]]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    shown = shown_params(a.best, spec.get("space", {}), _epochs(spec))
    summary = [f"{sum(counts.values())} trials: " + ", ".join(f"{v} {k}" for k, v in
                                                             sorted(counts.items())),
               f"best trial {a.best.number}: {metric} = {a.best.value:.4f}",
               "best parameters: " + shown.line(), *shown.notes]
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
    sections.append(("What early stopping and pruning made moot", list(a.moot) or
                     ["nothing found: the best trial reached its milestones, and patience and "
                      "pruning left the schedules room"]))
    sections.append(("Next round: narrowed search space", list(a.next_reasons)))
    if a.importance_note is not None:
        sections.append(("Parameter importances", [a.importance_note]))
    return sections


def _epochs(spec: dict[str, Any]) -> int | None:
    epochs = spec.get("config", {}).get("epochs")
    return int(epochs) if isinstance(epochs, int) else None


def _top_table(ranking: Sequence[Ranked], spec: dict[str, Any], metric: str) -> Table:
    rows, classes = [], []
    for i, r in enumerate(ranking[:TABLE_ROWS], 1):
        t = r.trial
        config = t.user_attrs.get("config") or {}
        budget = config.get("epochs", _epochs(spec))
        state = _state_label(t, r)
        epochs = f"{r.reached}/{budget}" if budget else str(r.reached)
        params = shown_params(t, spec.get("space", {}), _epochs(spec)).line()
        rows.append((str(i), str(t.number), state, epochs, f"{r.value:.4f}", f"{r.score:+d}",
                     params))
        classes.append("pruned" if t.state == TrialState.PRUNED else "")
    header = ("rank", "trial", "state", "epochs", metric, "score", "parameters")
    return Table(RANKING_RULE.format(k=TOP_K), header, tuple(rows), tuple(classes),
                 frozenset({0, 1, 3, 4, 5}), frozenset({2}))


def _state_label(t: FrozenTrial, r: Ranked) -> str:
    if t.state == TrialState.PRUNED:
        label = f"pruned at epoch {r.reached}"
    elif t.user_attrs.get("stop_reason") == "early_stopped":
        label = "early-stopped"
    else:
        label = "complete"
    baseline = t.user_attrs.get("hps_baseline")
    return f"{label}, baseline {baseline}" if baseline else label


def _hover(t: FrozenTrial, spec: dict[str, Any], metric: str) -> str:
    head = f"trial {t.number} ({t.state.name.lower()})"
    if t.state == TrialState.COMPLETE and t.value is not None:
        head += f"<br>{metric} {t.value:.4f}"
    shown = shown_params(t, spec.get("space", {}), _epochs(spec))
    return head + "".join(f"<br>{k}={v}" for k, v in shown.values)


def _importances(study: optuna.Study, note: str | None) -> dict[str, float] | None:
    if note is not None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError) as exc:  # e.g. a parameter with one distinct value
            log.info("parameter importances not computable: %s", exc)
            return None


def load_previous(storage: optuna.storages.BaseStorage, name: str | None
                  ) -> optuna.Study | None:
    if name is None:
        return None
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise StudyError(f"--previous: no study {name!r} in this storage; studies: "
                         f"{optuna.get_all_study_names(storage)}") from None
