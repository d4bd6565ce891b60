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
from dataclasses import dataclass
from typing import Any

from search.study.study_spec import StudySpec

__all__ = ["ExecutionReport", "LocalExecutor"]

log = logging.getLogger(__name__)

_EXIT_GAVE_UP = 3


@dataclass(frozen=True)
class ExecutionReport:
    errors: tuple[str, ...]  # workers that gave up, with their reasons
    lost: tuple[str, ...]  # workers that died (signal, crash), one line each
    trials_run: int


def _process_main(spec: StudySpec, storage_url: str, index: int, threads: int,
                  results: mp.Queue) -> None:
    """A worker process: its own storage handle (one engine per process) from the URL."""
    from search.errors import HpsearchError
    from search.run.worker import run_worker
    from storage import StorageError, open_storage

    logging.basicConfig(level=logging.WARNING, format=f"[worker {index}] %(levelname)s %(message)s")
    try:
        summary = run_worker(spec, open_storage(storage_url, allow_grpc=True),
                             worker_index=index, threads=threads)
    except (HpsearchError, StorageError) as exc:
        results.put(("error", index, str(exc)))
        raise SystemExit(_EXIT_GAVE_UP) from None
    results.put(("done", index, summary.trials_run))


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int, *, threads_per_worker: int | None = None,
                 max_restarts: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        self.max_restarts = workers if max_restarts is None else max_restarts

    def describe(self) -> str:
        return f"{self.workers} local workers"

    def run(self, spec: StudySpec, storage_url: str, *,
            on_tick: Callable[[], None] = lambda: None,
            on_worker_lost: Callable[[int, int], None] = lambda pid, code: None,
            tick_s: float = 1.0) -> ExecutionReport:
        ctx = mp.get_context("spawn")
        results: mp.Queue = ctx.Queue()
        procs: dict[int, Any] = {}

        def start(index: int) -> None:
            proc = ctx.Process(target=_process_main, name=f"hpsearch-worker-{index}",
                               args=(spec, storage_url, index, self.threads, results))
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
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.join(timeout=10)
                on_worker_lost(proc.pid, proc.exitcode if proc.exitcode is not None else -15)
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
