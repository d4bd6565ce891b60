"""Running trials whose heartbeat went stale, with the grace period given per call.

Optuna's ``RDBStorage`` answers this with the one grace period it was opened with. The gRPC
proxy (storage/grpc_proxy.py) serves many studies, each with the grace period of its own spec,
so it asks here: one statement, the database's clock on both sides of the comparison.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy
from optuna.trial import TrialState

from storage.optuna_internals import trial_tables

__all__ = ["heartbeat_ages", "stale_trial_ids"]


def stale_trial_ids(rdb: Any, study_id: int, grace_period_s: float) -> list[int]:
    """Ids of ``study_id``'s RUNNING trials whose last heartbeat is older than the grace
    period. ``rdb``: an RDBStorage. Unlike Optuna's own check, a trial that never beat counts
    from its start: a worker beats the moment its trial starts, so a trial without a beat after
    the grace period lost its worker before the first one (killed, or a disk that filled
    between creating the trial and recording the beat), and would otherwise hold its budget
    slot, and every worker waiting on it, forever."""
    return [trial_id for trial_id, age in heartbeat_ages(rdb, study_id).items()
            if age > grace_period_s]


def heartbeat_ages(rdb: Any, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each of ``study_id``'s RUNNING trials, by trial id:
    measured on the database's clock, which also stamps the beats. A trial that never beat is
    aged from its start instead, on this machine's clock, which stamped that start (Optuna
    writes ``datetime_start`` from the creating process's local time)."""
    trials, _, beats = trial_tables()
    query = (sqlalchemy.select(trials.c.trial_id, beats.c.heartbeat, trials.c.datetime_start)
             .outerjoin(beats, beats.c.trial_id == trials.c.trial_id)
             .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING))
    with rdb.engine.connect() as conn:
        db_now = _timestamp(conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one())
        rows = conn.execute(query).all()
    local_now = datetime.now()
    ages: dict[int, float] = {}
    for trial_id, beat, started in rows:
        if beat is not None:
            ages[trial_id] = (db_now - _timestamp(beat)).total_seconds()
        elif started is not None:
            ages[trial_id] = (local_now - _timestamp(started)).total_seconds()
    return ages


def _timestamp(value: Any) -> datetime:
    """A naive datetime (SQLite hands CURRENT_TIMESTAMP back as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


def reclaim_stale_trials(study: Any, rdb: Any, grace_period_s: float,
                         max_retries: int) -> list[int]:
    """Fail ``study``'s stale RUNNING trials (``stale_trial_ids``: those that never beat
    included) and re-queue each as Optuna's stale-trial retry does; the numbers of the trials
    this call failed (one another worker failed first is left to it)."""
    import warnings

    import optuna

    storage = study._storage
    failed = []
    for trial_id in stale_trial_ids(rdb, study._study_id, grace_period_s):
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            continue
        trial = storage.get_trial(trial_id)
        failed.append(trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=max_retries, inherit_intermediate_values=False)
        retry(study, trial)
    return failed
