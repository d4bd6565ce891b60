"""Fail a gone worker's running trials now, and re-queue each with the same parameters, as the
heartbeat would after its grace period. The launcher does it for a worker that died or that it
stopped; a local worker does it for itself when its launcher died (search/run/lifeline.py)."""

from __future__ import annotations

import logging
import warnings

import optuna
from optuna.trial import TrialState

from storage.attrs import FAIL_REASON_ATTR, WORKER_ATTR

__all__ = ["fail_trials_of"]

log = logging.getLogger(__name__)


def fail_trials_of(study: optuna.Study, identity: str, reason: str, max_retries: int
                   ) -> list[int]:
    """Fail the RUNNING trials whose worker is ``identity`` (host:pid) with ``reason`` and
    re-queue them (up to ``max_retries`` retries per trial); returns their numbers. A trial
    finished meanwhile (by its worker, or by whoever else reclaimed it) is left alone."""
    storage = study._storage  # the public Study API cannot fail another process's trial
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
    failed: list[int] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(WORKER_ATTR) != identity:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, FAIL_REASON_ATTR, reason)
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                retry(study, storage.get_trial(t._trial_id))
                failed.append(t.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.info("trial %d finished meanwhile; not failing it", t.number)
    return failed
