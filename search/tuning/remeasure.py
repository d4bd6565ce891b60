"""Train a handful of configs on several seeds at once: the re-measurement behind promotion.

Jobs run in spawned processes (a crash or a leak stays there), as many at a time as the study
has workers, each with its share of the machine's cores, and a line is emitted as each one
finishes, so minutes of re-measurement are never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from trainers.runtime import machine_cores

__all__ = ["Job", "JobResult", "run_jobs", "threads_per_job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    label: str  # "candidate" or "row 4": who is measured
    trainer: str  # the trainer's registry name or module path
    config: Mapping[str, Any]  # the whole config, seed included
    seed: int


@dataclass(frozen=True)
class JobResult:
    job: Job
    result: Mapping[str, Any]


def _train(trainer: str, config: Mapping[str, Any], threads: int) -> dict[str, Any]:
    import torch

    from search.study.trainers import get_trainer

    torch.set_num_threads(threads)
    entry = get_trainer(trainer)
    return dict(entry.train(entry.build_config(config)))


def threads_per_job(workers: int, jobs: int, threads: int | None = None) -> int:
    """The torch threads each of ``jobs`` runs get with ``workers`` at a time: ``threads`` if
    given, else the machine's cores shared among the runs going at once."""
    return threads or max(1, machine_cores() // max(1, min(workers, jobs)))


def run_jobs(jobs: Sequence[Job], *, workers: int, threads: int | None = None,
             emit: Callable[[str], None] = log.info,
             describe: Callable[[JobResult], str] = lambda r: "") -> list[JobResult]:
    """Every job's result, in the order of ``jobs``; ``threads`` each (default: the machine's
    cores shared among ``workers``)."""
    if not jobs:
        return []
    threads = threads_per_job(workers, len(jobs), threads)
    workers = max(1, min(workers, len(jobs)))
    import multiprocessing as mp

    results: dict[int, JobResult] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        pending: dict[Future[dict[str, Any]], int] = {
            pool.submit(_train, job.trainer, dict(job.config), threads): i
            for i, job in enumerate(jobs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                results[i] = JobResult(jobs[i], future.result())
                emit(f"re-measured {jobs[i].label} with seed {jobs[i].seed}"
                     f"{describe(results[i])} ({len(results)}/{len(jobs)})")
    return [results[i] for i in range(len(jobs))]
