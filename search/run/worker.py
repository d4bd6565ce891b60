"""A worker: joins a study and runs trials until the shared budget is spent or a stop rule
fires.

Each trial runs through ``study.optimize`` (one trial per call) so Optuna's heartbeat covers it;
the check-and-create step runs under the study lock so the budget is never overshot. Before it,
trials whose heartbeat went stale (their worker died) are failed and re-queued with the same
parameters. A trial that raises is recorded FAIL with its reason and the worker goes on; a
worker whose trials fail ``max_consecutive_failures`` times in a row gives up with the last
reason. The worker's storage, lock and tuned-defaults lookups share one pool of at most two
database connections.

With a ``grpc://`` storage the worker holds no database connection: the gRPC proxy
(storage/grpc_proxy.py) guards the budget and fails stale trials, and tuned defaults come from
the snapshot the launcher stored on the study.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import WorkerError
from search.run.budget import budget_left
from search.run.stop_rules import stop_reason
from search.study.samplers import build_pruner, build_sampler, with_first_decision
from search.study.study_spec import StudySpec
from search.trial.objective import Objective
from search.tuning.resolve import TunedLookup, TunedSnapshot
from storage import StorageError, StudyLock
from storage.attrs import (
    FAIL_KIND_ATTR,
    FAIL_REASON_ATTR,
    NODE_ATTR,
    PRUNER_FLOOR_ATTR,
    TUNED_SNAPSHOT_ATTR,
    WORKER_ATTR,
)
from storage.grpc_client import is_budget_spent
from storage.handle import OptunaSettings, StorageHandle
from storage.own_trials import OwnTrialsStorage
from storage.stale_trials import reclaim_stale_trials

__all__ = ["WorkerSummary", "optuna_settings", "run_worker", "worker_identity"]

log = logging.getLogger(__name__)

_MAX_CONSECUTIVE_OOM = 10


@dataclass(frozen=True)
class WorkerSummary:
    worker_index: int
    trials_run: int
    states: Mapping[str, int]
    stop_reason: str | None = None  # a study-level stop rule that ended the worker


def worker_identity(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def optuna_settings(spec: StudySpec) -> OptunaSettings:
    """The heartbeat and retries of the spec's fault tolerance, as the storage takes them."""
    ft = spec.fault_tolerance
    return OptunaSettings(ft.heartbeat_interval_s, ft.grace_period_s, ft.max_retries)


class _ProxyGuardsTheBudget:
    """The lock's place behind a gRPC proxy, which creates a trial only within the budget."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


def _others_running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _stay_for_others(study: optuna.Study, lock: StudyLock | _ProxyGuardsTheBudget,
                     heartbeat_interval_s: int) -> bool:
    """The budget is spent: whether to stay (after a moment's wait, lock released). Trials still
    running elsewhere may belong to a dead worker; a worker stays until each finishes or goes
    stale and comes back as a retry to run here."""
    if not _others_running(study):
        return False
    lock.release()
    time.sleep(min(1.0, heartbeat_interval_s))
    return True


def _budget_left_after_stale(joined: _Joined, spec: StudySpec) -> bool:
    """Fail trials whose worker died (their heartbeat went stale, or never came) and re-queue
    them, then look at the budget again: a dead worker's RUNNING trial may be what holds the
    last slot. Optuna's own check (``study.optimize`` runs it before each trial) skips a trial
    that never beat, which a worker killed, or a disk that filled, right after creating it
    leaves; with the budget spent, every worker would wait on it forever."""
    assert joined.rdb is not None  # behind a proxy, the proxy reclaims (never called)
    ft = spec.fault_tolerance
    failed = reclaim_stale_trials(joined.study, joined.rdb, ft.grace_period_s, ft.max_retries)
    if failed:
        log.warning("failed and re-queued trial(s) %s: their workers are gone (no heartbeat "
                    "for %d s)", failed, ft.grace_period_s)
    return budget_left(joined.study, spec.n_trials)


@dataclass
class _Joined:
    """A worker's place in its study: the study, the budget lock, the tuned defaults."""

    study: optuna.Study
    lock: StudyLock | _ProxyGuardsTheBudget
    tuned: TunedLookup
    rdb: Any  # the RDBStorage under the study's storage; None behind a gRPC proxy
    pruner_floor: int | None = None  # the first decision the launcher's pruning check set

    @property
    def behind_proxy(self) -> bool:
        return self.rdb is None


def _join_study(spec: StudySpec, storage: StorageHandle, worker_index: int) -> _Joined:
    optuna_storage: Any = storage.optuna(optuna_settings(spec))
    study = optuna.load_study(study_name=spec.name, storage=optuna_storage,
                              sampler=build_sampler(spec.sampler, seed_offset=worker_index),
                              pruner=build_pruner(spec.pruner))
    if not storage.is_proxy:
        lock = StudyLock(storage.url, spec.name, engine=storage.engine)
        return _Joined(study, lock, TunedLookup(storage), rdb=storage.rdb())
    snapshot = optuna_storage.get_study_system_attrs(study._study_id).get(TUNED_SNAPSHOT_ATTR)
    if snapshot is None:
        raise WorkerError(f"study {spec.name!r} has no tuned-defaults snapshot for workers "
                          "behind a gRPC proxy; start it with hpsearch launch, which "
                          "stores one")
    return _Joined(study, _ProxyGuardsTheBudget(), TunedSnapshot(snapshot), rdb=None)


class _FailureStreak:
    """Trials failing in a row: a worker gives up after ``max_failures`` (its reason is the
    last one), or after ``_MAX_CONSECUTIVE_OOM`` out-of-memory trials (the configuration was
    too big, not the worker broken: it goes on, unless every proposal is)."""

    def __init__(self, worker_index: int, max_failures: int) -> None:
        self.worker_index = worker_index
        self.max_failures = max_failures
        self.failures = self.oom = 0

    def record(self, last: FrozenTrial) -> None:
        if last.state == TrialState.FAIL and last.user_attrs.get(FAIL_KIND_ATTR) == "out_of_memory":
            self.oom += 1
            log.warning("trial %d ran out of memory; the worker goes on", last.number)
            if self.oom >= _MAX_CONSECUTIVE_OOM:
                raise WorkerError(f"worker {self.worker_index}: {self.oom} trials in a row "
                                  "ran out of memory; shrink the search space's batch or "
                                  "image sizes, or give each trial more GPU memory")
        elif last.state == TrialState.FAIL:
            self.failures += 1
            reason = last.user_attrs.get(FAIL_REASON_ATTR) or "unknown"
            log.warning("trial %d failed: %s", last.number, reason)
            if self.failures >= self.max_failures:
                raise WorkerError(f"worker {self.worker_index}: {self.failures} trials in a "
                                  f"row failed; last (trial {last.number}): {reason}")
        else:
            self.failures = self.oom = 0


_RAN, _WAIT, _DONE = "ran", "wait", "done"


def _follow_pruner_floor(joined: _Joined, spec: StudySpec) -> None:
    """The launcher's pruning check may have moved the pruner's first decision (the spec opted
    in): rebuild the pruner with it."""
    floor = joined.study.user_attrs.get(PRUNER_FLOOR_ATTR)
    if floor is None or floor == joined.pruner_floor:
        return
    joined.study.pruner = build_pruner(with_first_decision(spec.pruner, int(floor)))
    joined.pruner_floor = int(floor)
    log.info("pruner now first decides at epoch %d (pruning check)", floor)


def _next_trial(joined: _Joined, spec: StudySpec, objective: Objective,
                finished: list[FrozenTrial], worker_index: int) -> tuple[str, str | None]:
    """Take the lock, check the budget and the stop rules, and run one trial. Returns what
    happened (ran one, waited for others, or done) and the stop rule that fired, if one did."""
    study, lock = joined.study, joined.lock
    heartbeat_s = spec.fault_tolerance.heartbeat_interval_s
    lock.acquire()
    try:
        # Behind a proxy the proxy is the budget's judge (a refused trial below); asking here
        # as well would cost a read of the study per trial.
        if not joined.behind_proxy and not budget_left(study, spec.n_trials) \
                and not _budget_left_after_stale(joined, spec):
            return (_WAIT if _stay_for_others(study, lock, heartbeat_s) else _DONE), None
        stopped = stop_reason(study, spec)
        if stopped is not None:
            log.info("worker %d stops: %s", worker_index, stopped)
            return _DONE, stopped
        if spec.raise_min_resource:
            _follow_pruner_floor(joined, spec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                study.optimize(objective, n_trials=1, catch=(Exception,),
                               callbacks=[lambda _s, t: finished.append(t)])
            except Exception as exc:
                if not is_budget_spent(exc):
                    raise
                # The proxy refused a new trial: the budget is spent (it re-queues a dead
                # worker's trial, and a queued trial is taken past the budget).
                log.info("worker %d: the proxy says the budget is spent", worker_index)
                return (_WAIT if _stay_for_others(study, lock, heartbeat_s) else _DONE), None
        refused = getattr(study._storage, "write_failure", None)
        if refused is not None:  # the database is full or read-only: no trial can be recorded
            raise StorageError(refused)
        return _RAN, None
    finally:
        lock.release()


def run_worker(spec: StudySpec, storage: StorageHandle, *, worker_index: int = 0,
               threads: int | None = None, max_consecutive_failures: int = 3,
               node: str | None = None) -> WorkerSummary:
    """``storage``: this process's handle (a worker process opens its own from the URL).
    ``node``: where the worker runs (a Ray node id), recorded on each trial."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    joined = _join_study(spec, storage, worker_index)
    identity = worker_identity()
    lock = joined.lock
    optuna_storage = joined.study._storage
    if isinstance(optuna_storage, OwnTrialsStorage):
        # The trial exists (RUNNING) the moment the storage creates or dequeues it: the budget
        # lock is released there, before Optuna reads the trial back and starts its heartbeat.
        optuna_storage.on_trial_taken = lambda _trial_id: lock.release()

    def on_trial_start(trial: optuna.Trial) -> dict[str, Any]:
        lock.release()  # already released by the storage; kept for any other storage
        return {WORKER_ATTR: identity} if node is None else {WORKER_ATTR: identity,
                                                             NODE_ATTR: node}

    objective = Objective(spec, on_trial_start=on_trial_start, tuned_lookup=joined.tuned)
    finished: list[FrozenTrial] = []
    streak = _FailureStreak(worker_index, max_consecutive_failures)
    stopped: str | None = None
    try:
        while True:
            outcome, stopped = _next_trial(joined, spec, objective, finished, worker_index)
            if outcome == _DONE:
                break
            if outcome == _RAN and finished:
                streak.record(finished[-1])
    finally:
        lock.close()
    states: dict[str, int] = {}
    for t in finished:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return WorkerSummary(worker_index, len(finished), states, stopped)
