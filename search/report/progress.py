"""What a study looks like right now, read from the database: counts by state, the best
trial, running trials with their epoch, and an ETA. Used by ``launch`` (live) and ``status``.

The ETA counts epochs, not trials, so it moves while trials run rather than only when one
finishes. Optuna keeps no timestamp per intermediate value, so the pace is measured from what
it does keep:

- seconds per epoch: finished trials' durations over the epochs they ran (``epochs_run``, else
  their last reported step); before any trial finishes, running trials' elapsed time over the
  epochs they have reported;
- a running trial's remaining epochs: the epochs that finished trials which got as far as it
  did went on to run (pruning and early stopping end most trials before their budget), else
  its budget (``epochs`` of the config stored when it started); its remaining time is that
  many epochs' worth less the time it has already run, never below the epochs it has not
  started;
- a trial not started yet: the mean epochs finished trials ran (else the budget of a running
  one);
- the work is shared by the workers, and the study ends no sooner than its longest running
  trial.

Every read recomputes it against the clock, so between two reported epochs it counts down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.attrs import CONFIG_ATTR, IMPORTED_ATTR

__all__ = [
    "StudyProgress",
    "describe_trial",
    "estimate_eta",
    "format_config",
    "format_params",
    "format_progress",
    "metric_names",
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
    metric: str = "value"  # the objective's name ("a,b" for several)
    epoch_budgets: Mapping[int, int] = dataclasses.field(default_factory=dict)  # running

    @property
    def done(self) -> int:
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)


def read_progress(study: optuna.Study, *, budget: int | None = None, workers: int = 1,
                  metric: str | None = None,
                  now: Callable[[], dt.datetime] = dt.datetime.now) -> StudyProgress:
    """``metric`` names the objective (else the names stored on the study, else "value");
    ``now`` is the clock Optuna's trial timestamps are read against (local, naive)."""
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {s.name: 0 for s in _ORDER}
    imported = [t for t in trials if IMPORTED_ATTR in t.user_attrs]
    trials = [t for t in trials if IMPORTED_ATTR not in t.user_attrs]
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    if imported:
        counts["IMPORTED"] = len(imported)
    finished = tuple(t for t in trials if t.state.is_finished())
    running_trials = [t for t in trials if t.state == TrialState.RUNNING]
    running = tuple((t.number, _epochs_done(t)) for t in running_trials)
    budgets = {t.number: b for t in running_trials if (b := _epoch_budget(t)) is not None}
    multi = len(study.directions) > 1
    best = None if multi else _best_trial(study)
    pareto = tuple(study.best_trials) if multi else ()
    eta = None
    if budget is not None:
        remaining = max(0, budget - counts["COMPLETE"] - counts["PRUNED"] - len(running_trials))
        eta = estimate_eta(finished, running_trials, remaining, workers=workers, now=now())
    direction = ", ".join(d.name.lower() for d in study.directions)
    name = metric or ",".join(metric_names(study) or ["value"])
    return StudyProgress(study.study_name, direction, budget, counts, best, running, eta,
                         finished, pareto, name, budgets)


def metric_names(study: optuna.Study) -> list[str] | None:
    """The objective names stored on the study (``Study.set_metric_names``), if any."""
    with warnings.catch_warnings():  # experimental in Optuna 3.2-5.0; the names are stable
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        names = study.metric_names
    return list(names) if names else None


def estimate_eta(finished: Sequence[FrozenTrial], running: Sequence[FrozenTrial],
                 not_started: int, *, workers: int, now: dt.datetime) -> float | None:
    """Seconds until ``running`` and ``not_started`` more trials are done (the module's
    docstring says how); None until a pace can be measured."""
    ran = [(seconds, e) for t in finished
           if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
           and (seconds := _duration_s(t)) is not None and (e := _epochs_done(t)) > 0]
    if ran:
        per_epoch = sum(s for s, _ in ran) / sum(e for _, e in ran)
    else:
        going = [(_elapsed(t, now), _epochs_done(t)) for t in running]
        going = [(s, e) for s, e in going if e > 0]
        if not going:
            return None
        per_epoch = sum(s for s, _ in going) / sum(e for _, e in going)
    finished_epochs = [e for _, e in ran]
    budgets = [b for t in running if (b := _epoch_budget(t)) is not None]
    per_trial = (sum(finished_epochs) / len(finished_epochs) if finished_epochs
                 else max(budgets, default=None))
    if per_trial is None:
        return None
    longest, work = 0.0, not_started * per_trial * per_epoch
    for t in running:
        done = _epochs_done(t)
        survivors = [e for e in finished_epochs if e >= done]
        planned = _epoch_budget(t) or per_trial
        expected = sum(survivors) / len(survivors) if survivors else planned
        expected = max(expected, done)
        left = max(expected * per_epoch - _elapsed(t, now), (expected - done - 1) * per_epoch,
                   0.0)
        longest, work = max(longest, left), work + left
    return max(work / max(1, workers), longest)


def _epochs_done(t: FrozenTrial) -> int:
    """Epochs a trial ran: its recorded ``epochs_run``, else its last reported step."""
    run = t.user_attrs.get("epochs_run")
    if isinstance(run, int) and not isinstance(run, bool):
        return run
    return max(t.intermediate_values, default=0)


def _epoch_budget(t: FrozenTrial) -> int | None:
    epochs = (t.user_attrs.get(CONFIG_ATTR) or {}).get("epochs")
    return int(epochs) if isinstance(epochs, int | float) and epochs > 0 else None


def _duration_s(t: FrozenTrial) -> float | None:
    if t.datetime_start is None or t.datetime_complete is None:
        return None
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _elapsed(t: FrozenTrial, now: dt.datetime) -> float:
    return max(0.0, (now - t.datetime_start).total_seconds()) if t.datetime_start else 0.0


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
        parts.append(f"best {p.best.value:.4f} ({p.metric}, trial {p.best.number})")
    if p.pareto:
        parts.append(f"pareto front {len(p.pareto)} trials "
                     f"({', '.join(str(t.number) for t in p.pareto[:8])})")
    if p.running:
        parts.append("running " + ", ".join(
            f"#{n}@epoch {e}" + (f"/{p.epoch_budgets[n]}" if n in p.epoch_budgets else "")
            for n, e in p.running))
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
