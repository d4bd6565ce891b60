"""Running trials whose heartbeat went stale, with the grace period given per call, and
failing and re-queueing a trial whose worker is gone.

Optuna's ``RDBStorage`` answers this with the one grace period it was opened with. The gRPC
proxy (storage/grpc_proxy.py) serves many studies, each with the grace period of its own spec,
so it asks here: one statement, the database's clock on both sides of the comparison.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from storage.optuna_internals import trial_tables

__all__ = ["fail_and_requeue", "heartbeat_ages", "reclaim_stale_trials", "stale_trial_ids"]


def stale_trial_ids(rdb: Any, study_id: int, grace_period_s: float) -> list[int]:
    """Ids of ``study_id``'s RUNNING trials whose last heartbeat is older than the grace
    period. ``rdb``: an RDBStorage. Unlike Optuna's own check, a trial that never beat is stale
    too, once twice the grace period has passed since it started: a worker beats right after
    creating its trial (after sampling, which may take a while), so one without a beat by then
    lost its worker before the first (killed, or a disk that filled between creating the trial
    and recording the beat), and would otherwise hold its budget slot, and every worker waiting
    on it, forever."""
    return [trial_id for trial_id, (age, beat) in _ages(rdb, study_id).items()
            if age > (grace_period_s if beat else 2 * grace_period_s)]


def heartbeat_ages(rdb: Any, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each of ``study_id``'s RUNNING trials, by trial id
    (since its start for one that never beat)."""
    return {trial_id: age for trial_id, (age, _) in _ages(rdb, study_id).items()}


def _ages(rdb: Any, study_id: int) -> dict[int, tuple[float, bool]]:
    """(age in seconds, whether it ever beat) of each RUNNING trial: since the last heartbeat
    on the database's clock, which also stamps the beats; a trial that never beat is aged from
    its start instead, on this machine's clock, which stamped that start (Optuna writes
    ``datetime_start`` from the creating process's local time)."""
    trials, _, beats = trial_tables()
    query = (sqlalchemy.select(trials.c.trial_id, beats.c.heartbeat, trials.c.datetime_start)
             .outerjoin(beats, beats.c.trial_id == trials.c.trial_id)
             .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING))
    with rdb.engine.connect() as conn:
        db_now = _timestamp(conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one())
        rows = conn.execute(query).all()
    local_now = datetime.now()
    ages: dict[int, tuple[float, bool]] = {}
    for trial_id, beat, started in rows:
        if beat is not None:
            ages[trial_id] = ((db_now - _timestamp(beat)).total_seconds(), True)
        elif started is not None:
            ages[trial_id] = ((local_now - _timestamp(started)).total_seconds(), False)
    return ages


def _timestamp(value: Any) -> datetime:
    """A naive datetime (SQLite hands CURRENT_TIMESTAMP back as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


def fail_and_requeue(study: optuna.Study, trial_id: int, max_retries: int
                     ) -> FrozenTrial | None:
    """Fail a RUNNING trial of a worker that is gone and queue its retry with the same
    parameters (up to ``max_retries`` retries), as Optuna's heartbeat does: the failed trial,
    or None when it finished meanwhile or another process failed it first."""
    storage = study._storage  # the public Study API cannot fail another process's trial
    try:
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            return None
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    trial = storage.get_trial(trial_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=max_retries, inherit_intermediate_values=False)
    retry(study, trial)
    return trial


def reclaim_stale_trials(study: optuna.Study, rdb: Any, grace_period_s: float,
                         max_retries: int) -> list[int]:
    """Fail and re-queue ``study``'s stale RUNNING trials (``stale_trial_ids``: those that
    never beat included); the numbers of the trials this call failed."""
    failed = (fail_and_requeue(study, trial_id, max_retries)
              for trial_id in stale_trial_ids(rdb, study._study_id, grace_period_s))
    return [t.number for t in failed if t is not None]
