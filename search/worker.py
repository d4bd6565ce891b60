"""A worker: joins a study and runs trials until the shared budget is spent.

Each trial runs through ``study.optimize`` (one trial per call) so Optuna's heartbeat covers it;
the check-and-create step runs under the study lock so the budget is never overshot.
A trial that raises is recorded FAIL with its reason and the worker goes on; a worker whose
trials fail ``max_consecutive_failures`` times in a row gives up with the last reason.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.budget import budget_left
from search.defaults import TunedLookup
from search.errors import WorkerError
from search.objective import Objective
from search.samplers import build_pruner, build_sampler
from search.spec import StudySpec, parse_spec
from storage import StudyLock, open_optuna_storage

__all__ = ["WORKER_ATTR", "WorkerSummary", "run_worker", "worker_identity"]

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"


@dataclass(frozen=True)
class WorkerSummary:
    worker_index: int
    trials_run: int
    states: Mapping[str, int]


def worker_identity(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def run_worker(spec_dict: Mapping[str, Any], storage_url: str, *, worker_index: int = 0,
               threads: int | None = None, max_consecutive_failures: int = 3) -> WorkerSummary:
    spec: StudySpec = parse_spec(dict(spec_dict), source=f"spec of study {spec_dict.get('name')!r}")
    if threads:
        import torch

        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_optuna_storage(storage_url)
    study = optuna.load_study(study_name=spec.name, storage=storage,
                              sampler=build_sampler(spec.sampler, seed_offset=worker_index),
                              pruner=build_pruner(spec.pruner))
    lock = StudyLock(storage_url, spec.name)
    identity = worker_identity()

    def on_trial_start(trial: optuna.Trial) -> None:
        lock.release()
        trial.set_user_attr(WORKER_ATTR, identity)

    objective = Objective(spec, on_trial_start=on_trial_start,
                          tuned_lookup=TunedLookup(storage_url))
    finished: list[FrozenTrial] = []
    consecutive_failures = 0
    try:
        while True:
            lock.acquire()
            try:
                if not budget_left(study, spec.n_trials):
                    break
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.optimize(objective, n_trials=1, catch=(Exception,),
                                   callbacks=[lambda _s, t: finished.append(t)])
            finally:
                lock.release()
            last = finished[-1] if finished else None
            if last is not None and last.state == TrialState.FAIL:
                consecutive_failures += 1
                reason = last.user_attrs.get("fail_reason") or last.system_attrs.get(
                    "fail_reason", "unknown")
                log.warning("trial %d failed: %s", last.number, reason)
                if consecutive_failures >= max_consecutive_failures:
                    raise WorkerError(f"worker {worker_index}: {consecutive_failures} trials in a "
                                      f"row failed; last (trial {last.number}): {reason}")
            else:
                consecutive_failures = 0
    finally:
        lock.close()
    states: dict[str, int] = {}
    for t in finished:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return WorkerSummary(worker_index, len(finished), states)
