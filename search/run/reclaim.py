"""Fail a gone worker's running trials now, and re-queue each with the same parameters, as the
heartbeat would after its grace period. The launcher does it for a worker that died or that it
stopped; a local worker does it for itself when its launcher died (search/run/lifeline.py)."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState

from storage.attrs import FAIL_REASON_ATTR, WORKER_ATTR
from storage.stale_trials import fail_and_requeue

__all__ = ["fail_trials_of"]

log = logging.getLogger(__name__)


def fail_trials_of(study: optuna.Study, identity: str, reason: str, max_retries: int
                   ) -> list[int]:
    """Fail the RUNNING trials whose worker is ``identity`` (host:pid) with ``reason`` and
    re-queue them (up to ``max_retries`` retries per trial); returns their numbers. A trial
    finished meanwhile (by its worker, or by whoever else reclaimed it) is left alone."""
    failed: list[int] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(WORKER_ATTR) != identity:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, FAIL_REASON_ATTR, reason)
            done = fail_and_requeue(study, t._trial_id, max_retries)
        except optuna.exceptions.UpdateFinishedTrialError:
            done = None
        if done is None:
            log.info("trial %d finished meanwhile; not failing it", t.number)
        else:
            failed.append(t.number)
    return failed
