"""Where workers run. ``LocalExecutor``: worker processes on this machine (spawned, so a trial
that crashes, leaks or segfaults takes down its process, never the launcher).

The launcher passes two hooks: ``on_tick`` (called about once a second, for progress) and
``on_worker_lost`` (a worker died mid-study: its RUNNING trial must be failed now rather than
after the heartbeat grace period). A lost worker is replaced, up to ``max_restarts`` times.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from typing import Any

from search.run.executor import ExecutionReport
from search.study.study_spec import StudySpec
from trainers.runtime import machine_cores

__all__ = ["ExecutionReport", "LocalExecutor"]

log = logging.getLogger(__name__)

_EXIT_GAVE_UP = 3


def _process_main(spec: StudySpec, storage_url: str, index: int, threads: int,
                  results: mp.Queue, launcher_pid: int | None = None) -> None:
    """A worker process: its own storage handle (one engine per process) from the URL.
    ``launcher_pid``: the launcher it dies with (search/run/lifeline.py); None: it outlives
    the launcher."""
    from search.errors import HpsearchError
    from search.run.worker import run_worker
    from storage import StorageError, open_storage

    logging.basicConfig(level=logging.WARNING, format=f"[worker {index}] %(levelname)s %(message)s")
    try:
        storage = open_storage(storage_url, allow_grpc=True)
        if launcher_pid is not None:
            from search.run.lifeline import tie_to_launcher

            tie_to_launcher(launcher_pid,
                            lambda reason: _fail_own_trials(spec, storage_url, reason),
                            freeze=storage.freeze)
        summary = run_worker(spec, storage, worker_index=index, threads=threads)
    except (HpsearchError, StorageError) as exc:
        results.put(("error", index, str(exc)))
        raise SystemExit(_EXIT_GAVE_UP) from None
    results.put(("done", index, summary.trials_run))


def _fail_own_trials(spec: StudySpec, storage_url: str, reason: str) -> None:
    """This worker's launcher died: fail and re-queue this process's running trials (on a
    storage of its own: the worker's may be in the middle of a call)."""
    import optuna

    from search.run.reclaim import fail_trials_of
    from search.run.worker import worker_identity
    from storage import open_storage

    handle = open_storage(storage_url, allow_grpc=True)
    try:
        study = optuna.load_study(study_name=spec.name, storage=handle.optuna())
        failed = fail_trials_of(study, worker_identity(), reason,
                                spec.fault_tolerance.max_retries)
        log.error("failed and re-queued trial(s) %s", failed or "none")
    finally:
        handle.close()


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int, *, threads_per_worker: int | None = None,
                 max_restarts: int | None = None, outlive_launcher: bool = False,
                 stop_timeout_s: float = 10.0) -> None:
        """``outlive_launcher``: workers keep running if the launcher process dies (by
        default they fail and re-queue their trials and exit). ``stop_timeout_s``: how long a
        worker asked to stop (SIGTERM) has before it is killed."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads_per_worker or max(1, machine_cores() // workers)
        self.max_restarts = workers if max_restarts is None else max_restarts
        self.outlive_launcher = outlive_launcher
        self.stop_timeout_s = stop_timeout_s

    def describe(self) -> str:
        return f"{self.workers} local workers"

    def prepare(self) -> None:
        """Nothing to reach: the launcher's checks covered the machine's cores."""

    def run(self, spec: StudySpec, storage_url: str, *,
            on_tick: Callable[[], None] = lambda: None,
            on_worker_lost: Callable[[int, int], None] = lambda pid, code: None,
            tick_s: float = 1.0) -> ExecutionReport:
        ctx = mp.get_context("spawn")
        results: mp.Queue = ctx.Queue()
        procs: dict[int, Any] = {}

        def start(index: int) -> None:
            proc = ctx.Process(target=_process_main, name=f"hpsearch-worker-{index}",
                               args=(spec, storage_url, index, self.threads, results,
                                     None if self.outlive_launcher else os.getpid()))
            proc.start()
            procs[index] = proc
            log.info("started worker %d (pid %s, %d threads)", index, proc.pid, self.threads)

        for i in range(self.workers):
            start(i)
        errors: list[str] = []
        lost: list[str] = []
        trials_run = 0
        restarts = 0
        next_index = self.workers
        try:
            while procs:
                time.sleep(tick_s)
                on_tick()
                for index, proc in list(procs.items()):
                    if proc.is_alive():
                        continue
                    proc.join()
                    del procs[index]
                    code = proc.exitcode
                    if code in (0, _EXIT_GAVE_UP):
                        continue
                    lost.append(f"worker {index} (pid {proc.pid}) exited with code {code}")
                    on_worker_lost(proc.pid, code)
                    if restarts < self.max_restarts:
                        restarts += 1
                        start(next_index)
                        next_index += 1
        except BaseException:
            self._stop(procs.values(), on_worker_lost)
            raise
        finally:
            while True:
                try:
                    kind, index, payload = results.get_nowait()
                except queue.Empty:
                    break
                if kind == "error":
                    errors.append(str(payload))
                else:
                    trials_run += int(payload)
        on_tick()
        return ExecutionReport(tuple(errors), tuple(lost), trials_run)

    def _stop(self, procs: Any, on_worker_lost: Callable[[int, int], None]) -> None:
        """Stop the workers (the launcher is stopping): SIGTERM, then SIGKILL for any still
        alive after ``stop_timeout_s`` (a main thread stuck in a kernel never runs its signal
        handler); then their running trials are failed and re-queued."""
        procs = list(procs)
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker pid %s did not stop within %.0f s; killing it", proc.pid,
                            self.stop_timeout_s)
                proc.kill()
                proc.join(timeout=5)
        for proc in procs:
            on_worker_lost(proc.pid, proc.exitcode if proc.exitcode is not None else -15)
