"""The study-level stop rules of a spec, checked by every worker before it starts a trial.

- ``at_target``: a finished trial reached ``success.target`` (feasible trials only);
- ``no_improvement_trials: K``: the last K finished trials (COMPLETE or PRUNED, in completion
  order) brought no new best;
- ``wall_clock_s``: that many seconds have passed since the study was created (the creation
  time is stored in the study, so every launcher and worker measures from the same moment).

Trials already running when a rule fires finish normally; no new ones start.
"""

from __future__ import annotations

import datetime as dt
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study.study_spec import StudySpec
from storage.attrs import CREATED_AT_ATTR, IMPORTED_ATTR

__all__ = ["stop_reason"]



def stop_reason(study: optuna.Study, spec: StudySpec) -> str | None:
    """Why the study should start no more trials, or None."""
    rules = spec.stop
    if rules.wall_clock_s is not None:
        elapsed = time.time() - _created_at(study)
        if elapsed >= rules.wall_clock_s:
            return f"wall-clock budget of {rules.wall_clock_s:g} s spent ({elapsed:.0f} s)"
    if not (rules.at_target or rules.no_improvement_trials) or spec.multi_objective:
        return None
    finished = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                       and IMPORTED_ATTR not in t.user_attrs),
                      key=lambda t: (t.datetime_complete or dt.datetime.min, t.number))
    maximize = spec.direction == "maximize"
    best: float | None = None
    best_at = -1
    for i, t in enumerate(finished):
        if t.state != TrialState.COMPLETE or t.value is None or not _feasible(t):
            continue
        if best is None or (t.value > best if maximize else t.value < best):
            best, best_at = t.value, i
    if rules.at_target and best is not None and spec.target is not None \
            and (best >= spec.target if maximize else best <= spec.target):
        return f"target {spec.target} reached ({spec.metric} = {best:.4f})"
    k = rules.no_improvement_trials
    if k is not None and len(finished) - 1 - best_at >= k:
        return f"no improvement in the last {k} finished trials"
    return None


def _feasible(t: FrozenTrial) -> bool:
    return all(v <= 0 for v in (t.constraints or {}).values())


def _created_at(study: optuna.Study) -> float:
    stamp = study.user_attrs.get(CREATED_AT_ATTR)
    if stamp is not None:
        return float(stamp)
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    return min(starts).timestamp() if starts else time.time()
