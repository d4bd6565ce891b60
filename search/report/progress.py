"""What a study looks like right now, read from the database: counts by state, the best
trial, running trials with their epoch, and an ETA. Used by ``launch`` (live) and ``status``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.attrs import IMPORTED_ATTR

__all__ = [
    "StudyProgress",
    "describe_trial",
    "format_config",
    "format_params",
    "format_progress",
    "read_progress",
]

_ORDER = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
          TrialState.WAITING)


@dataclass(frozen=True)
class StudyProgress:
    study_name: str
    direction: str
    budget: int | None
    counts: Mapping[str, int]
    best: FrozenTrial | None
    running: tuple[tuple[int, int], ...]  # (trial number, last reported epoch)
    eta_s: float | None
    finished: tuple[FrozenTrial, ...]
    pareto: tuple[FrozenTrial, ...] = ()  # multi-objective studies: the best trials

    @property
    def done(self) -> int:
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)


def read_progress(study: optuna.Study, *, budget: int | None = None, workers: int = 1
                  ) -> StudyProgress:
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {s.name: 0 for s in _ORDER}
    imported = [t for t in trials if IMPORTED_ATTR in t.user_attrs]
    trials = [t for t in trials if IMPORTED_ATTR not in t.user_attrs]
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    if imported:
        counts["IMPORTED"] = len(imported)
    finished = tuple(t for t in trials if t.state.is_finished())
    running = tuple((t.number, max(t.intermediate_values, default=0))
                    for t in trials if t.state == TrialState.RUNNING)
    multi = len(study.directions) > 1
    best = None if multi else _best_trial(study)
    pareto = tuple(study.best_trials) if multi else ()
    eta = None
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in finished
                 if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                 and t.datetime_start and t.datetime_complete]
    if budget is not None and durations:
        remaining = max(0, budget - counts["COMPLETE"] - counts["PRUNED"])
        eta = sum(durations) / len(durations) * remaining / max(1, workers)
    direction = ", ".join(d.name.lower() for d in study.directions)
    return StudyProgress(study.study_name, direction, budget, counts, best, running, eta,
                         finished, pareto)


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial  # honours constraints: an infeasible trial is never best
    except ValueError:
        return None


def format_progress(p: StudyProgress) -> str:
    budget = f"/{p.budget}" if p.budget is not None else ""
    states = ", ".join(f"{n.lower()} {p.counts[n]}"
                       for n in (*(s.name for s in _ORDER), "IMPORTED") if p.counts.get(n))
    parts = [f"{p.done}{budget} done ({states or 'no trials yet'})"]
    if p.best is not None:
        parts.append(f"best {p.best.value:.4f} (trial {p.best.number})")
    if p.pareto:
        parts.append(f"pareto front {len(p.pareto)} trials "
                     f"({', '.join(str(t.number) for t in p.pareto[:8])})")
    if p.running:
        parts.append("running " + ", ".join(f"#{n}@epoch {e}" for n, e in p.running))
    if p.eta_s is not None and p.budget is not None and p.done < p.budget:
        parts.append(f"eta {_duration(p.eta_s)}")
    return " | ".join(parts)


def describe_trial(t: FrozenTrial, metric: str) -> str:
    """One line for a finished trial: state, value, epochs, why it stopped, its parameters."""
    epochs = t.user_attrs.get("epochs_run", max(t.intermediate_values, default=0))
    head = f"trial {t.number} {t.state.name.lower()}"
    if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) > 1:
        head += " " + " ".join(f"{m}={v:.4f}" for m, v in zip(metric.split(","), t.values,
                                                                 strict=False))
    elif t.state == TrialState.COMPLETE and t.value is not None:
        head += f" {metric}={t.value:.4f}"
    elif t.state == TrialState.PRUNED and t.intermediate_values:
        last = t.intermediate_values[max(t.intermediate_values)]
        head += f" at epoch {max(t.intermediate_values)} (last {last:.4f})"
    elif t.state == TrialState.FAIL:
        head += f": {t.user_attrs.get('fail_reason') or t.system_attrs.get('fail_reason', '?')}"
    reason = t.user_attrs.get("stop_reason")
    extras = [f"epochs {epochs}"] + ([reason] if reason and reason != "pruned" else [])
    if t.user_attrs.get("hps_baseline"):
        extras.append(f"baseline {t.user_attrs['hps_baseline']}")
    if t.constraints and any(v > 0 for v in t.constraints.values()):
        extras.append("infeasible: " + ", ".join(f"{k} over by {v:.3f}"
                                                 for k, v in t.constraints.items() if v > 0))
    return f"{head} [{'; '.join(extras)}] {format_params(t.params)}"


def format_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in params.items())


def format_config(config: Mapping[str, Any], keys: Sequence[str] | None = None) -> list[str]:
    return [f"  {k}: {_short(v)}" for k, v in config.items() if keys is None or k in keys]


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))
