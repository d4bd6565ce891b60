"""Running trials whose heartbeat went stale, with the grace period given per call.

Optuna's ``RDBStorage`` answers this with the one grace period it was opened with. The gRPC
proxy (storage/grpc_proxy.py) serves many studies, each with the grace period of its own spec,
so it asks here: one statement, the database's clock on both sides of the comparison.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from optuna.trial import TrialState

from storage.optuna_internals import trial_tables

__all__ = ["heartbeat_ages", "stale_trial_ids"]


def stale_trial_ids(rdb: Any, study_id: int, grace_period_s: float) -> list[int]:
    """Ids of ``study_id``'s RUNNING trials whose last heartbeat is older than the grace
    period. A trial that never beat is not stale (as in Optuna). ``rdb``: an RDBStorage."""
    return [trial_id for trial_id, age in heartbeat_ages(rdb, study_id).items()
            if age > grace_period_s]


def heartbeat_ages(rdb: Any, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each of ``study_id``'s RUNNING trials that beat at
    least once, by trial id; measured on the database's clock."""
    trials, _, beats = trial_tables()
    query = (sqlalchemy.select(trials.c.trial_id, beats.c.heartbeat)
             .join(beats, beats.c.trial_id == trials.c.trial_id)
             .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING))
    with rdb.engine.connect() as conn:
        now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one()
        rows = conn.execute(query).all()
    if isinstance(now, str):  # SQLite: CURRENT_TIMESTAMP comes back as text
        from datetime import datetime

        now = datetime.fromisoformat(now)
    now = now.replace(tzinfo=None)
    return {trial_id: (now - beat.replace(tzinfo=None)).total_seconds()
            for trial_id, beat in rows}
