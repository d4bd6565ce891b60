"""``RayExecutor``: each worker is a Ray task placed anywhere in a cluster.

A task runs ``run_worker`` (the same loop as a local worker process: the study from the
database, sampler and pruner rebuilt from the spec and seeded by the worker's index, the shared
budget, the stop rules), with ``num_gpus``/``num_cpus`` from ``--gpus-per-trial`` /
``--cpus-per-trial``: Ray sets CUDA_VISIBLE_DEVICES and packs fractional GPUs. Ray holds no
search state; everything goes through the database.

A task whose worker process or node dies is resubmitted by Ray (``max_retries``); one that
still fails is resubmitted here, up to ``max_restarts`` times. The RUNNING trial it left is
failed by the heartbeat after the grace period and re-queued with the same parameters, and the
retry resumes from the trial's checkpoint. A worker that gave up (its trials kept failing)
is reported, not resubmitted.

Without ``address`` a local Ray instance is started; with one (``auto`` or ``HOST:PORT``) the
launcher joins that cluster, whose nodes must have hpsearch installed (docker/Dockerfile).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from search.errors import HpsearchError
from search.run.executor import ExecutionReport
from search.study.study_spec import StudySpec

__all__ = ["RayExecutor"]

log = logging.getLogger(__name__)


def _ray_task(spec: StudySpec, storage_url: str, index: int,
              threads: int) -> dict[str, Any]:
    """The body of one worker task, on whichever node Ray chose: its own storage handle (one
    engine per process) from the URL."""
    import ray

    from search.errors import HpsearchError
    from search.run.worker import run_worker
    from storage import StorageError, open_storage

    logging.basicConfig(level=logging.WARNING,
                        format=f"[ray worker {index}] %(levelname)s %(message)s")
    node = ray.get_runtime_context().get_node_id()
    try:
        summary = run_worker(spec, open_storage(storage_url, allow_grpc=True),
                             worker_index=index, threads=threads, node=node)
    except (HpsearchError, StorageError) as exc:
        return {"error": str(exc), "node": node}
    return {"trials_run": summary.trials_run, "node": node, "stop_reason": summary.stop_reason}


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int, *, address: str | None = None,
                 gpus_per_trial: float = 0.0, cpus_per_trial: float = 1.0,
                 max_retries: int = 3, max_restarts: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if gpus_per_trial < 0 or cpus_per_trial <= 0:
            raise HpsearchError(f"--gpus-per-trial must be >= 0 and --cpus-per-trial > 0, got "
                                f"{gpus_per_trial} and {cpus_per_trial}")
        self.workers = workers
        self.address = address
        self.gpus = gpus_per_trial
        self.cpus = cpus_per_trial
        self.max_retries = max_retries
        self.max_restarts = workers if max_restarts is None else max_restarts
        self._started_here = False  # this executor called ray.init, so it shuts Ray down

    def describe(self) -> str:
        where = f"Ray cluster at {self.address}" if self.address else "a local Ray instance"
        gpus = f", {self.gpus:g} GPU" if self.gpus else ""
        return f"{self.workers} Ray workers on {where} ({self.cpus:g} CPU{gpus} each)"

    def prepare(self) -> None:
        """Reach the cluster (or start a local instance) and check it has the resources one
        trial asks for, before the study is created."""
        import ray

        self._init(ray)

    def run(self, spec: StudySpec, storage_url: str, *,
            on_tick: Callable[[], None] = lambda: None,
            on_worker_lost: Callable[[int, int], None] = lambda pid, code: None,
            tick_s: float = 1.0) -> ExecutionReport:
        import ray

        self._init(ray)
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.max_retries,
                          retry_exceptions=False)(_ray_task)
        threads = max(1, int(self.cpus))
        pending: dict[Any, int] = {}

        def submit(index: int) -> None:
            ref = task.remote(spec, storage_url, index, threads)
            pending[ref] = index

        for i in range(self.workers):
            submit(i)
        errors: list[str] = []
        lost: list[str] = []
        trials_run = 0
        restarts = 0
        next_index = self.workers
        nodes: set[str] = set()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=tick_s)
                on_tick()
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        out = ray.get(ref)
                    except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError,
                            ray.exceptions.NodeDiedError, ray.exceptions.TaskCancelledError,
                            ray.exceptions.ObjectLostError) as exc:
                        lost.append(f"Ray worker {index}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:300]}")
                        if restarts < self.max_restarts:
                            restarts += 1
                            submit(next_index)
                            next_index += 1
                        continue
                    nodes.add(str(out.get("node")))
                    if "error" in out:
                        errors.append(f"Ray worker {index}: {out['error']}")
                    else:
                        trials_run += int(out["trials_run"])
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if self._started_here:
                ray.shutdown()
        on_tick()
        log.info("Ray workers ran on %d node(s)", len(nodes))
        return ExecutionReport(tuple(errors), tuple(lost), trials_run)

    def _init(self, ray: Any) -> None:
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise HpsearchError(f"cannot reach the Ray cluster at {self.address!r}: {exc}; "
                                    "start one with `ray start --head`, or leave --address out "
                                    "for a local instance") from None
            self._started_here = True
        resources = ray.cluster_resources()
        for kind, need in (("CPU", self.cpus), ("GPU", self.gpus)):
            have = float(resources.get(kind, 0.0))
            if need and have < need:
                if self._started_here:  # a local instance started for nothing: stop it
                    ray.shutdown()
                    self._started_here = False
                raise HpsearchError(f"each trial asks for {need:g} {kind} but the Ray cluster has "
                                    f"{have:g}; lower --{kind.lower()}s-per-trial or add nodes "
                                    f"with {kind}s")
