"""The study's global trial budget, shared by every worker of every launcher.

A study of N trials ends with N finished (COMPLETE or PRUNED) trials however many workers
joined. FAIL trials do not count: a failure re-queued by the heartbeat comes back as WAITING,
and WAITING trials (baselines, retries) count because a worker will run them.
Workers check and create their next trial under a StudyLock, so two workers never both take
the last slot.
"""

from __future__ import annotations

from collections import Counter
from typing import cast

import optuna
from optuna.trial import TrialState

from storage.attrs import IMPORTED_ATTR

__all__ = ["budget_left", "count_states"]



def count_states(study: optuna.Study) -> Counter[TrialState]:
    """Trial counts by state; trials imported by a warm start are history, not budget. Counted
    by the database where the storage can (one statement), else from the study's trials."""
    count = getattr(study._storage, "count_trials_by_state", None)
    counts = count(study._study_id, without_user_attr=IMPORTED_ATTR) if count else None
    if counts is not None:
        return cast(Counter[TrialState], counts)
    return Counter(t.state for t in study.get_trials(deepcopy=False)
                   if IMPORTED_ATTR not in t.user_attrs)


def budget_left(study: optuna.Study, n_trials: int) -> bool:
    counts = count_states(study)
    if counts[TrialState.WAITING]:
        return True  # the next trial takes a queued one; the total does not grow
    taken = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] + counts[TrialState.RUNNING]
    return taken < n_trials
