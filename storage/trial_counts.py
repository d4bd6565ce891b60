"""Trial counts by state, counted by the database: one statement, where reading the study
(Optuna's cache refresh, then a walk over every trial in Python) costs milliseconds per call
once a study holds thousands of trials. Workers count under the budget lock before every
trial."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy
from optuna.trial import TrialState

from storage.optuna_internals import trial_tables

__all__ = ["count_by_state"]


def count_by_state(rdb: Any, study_id: int, *,
                   without_user_attr: str | None = None) -> Counter[TrialState]:
    """Trials of ``study_id`` per state, leaving out trials that carry the user attribute
    ``without_user_attr`` (if given). ``rdb``: Optuna's RDBStorage (its tables and engine)."""
    trials, attrs, _ = trial_tables()
    query = sqlalchemy.select(trials.c.state, sqlalchemy.func.count()).where(
        trials.c.study_id == study_id)
    if without_user_attr is not None:
        query = query.where(~sqlalchemy.exists().where(attrs.c.trial_id == trials.c.trial_id,
                                                       attrs.c.key == without_user_attr))
    query = query.group_by(trials.c.state)
    with rdb.engine.connect() as conn:
        return Counter({TrialState[s] if isinstance(s, str) else s: int(n)
                        for s, n in conn.execute(query)})
