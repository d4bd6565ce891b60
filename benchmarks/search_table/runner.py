"""Train one run of the grid with the project's CIFAR trainer and time every epoch.

Timing: the reporter reads ``time.process_time()`` at every report, so ``cpu_seconds`` of an
epoch is the process CPU time since the previous report (epoch 1: since ``train`` was called,
so it includes the run's set-up: loading the cached tensors and building the model). CPU time is
what a replay charges, because wall time stretches when other work shares the machine; the
trainer's own ``epoch_seconds`` (training + validation wall time) is kept beside it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from benchmarks.search_table.grid import RunSpec
from trainers.cifar import CifarConfig, train

__all__ = ["TimingReporter", "run_one"]

_EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm")


class TimingReporter:
    """Keeps each epoch's metrics with the CPU seconds spent since the last report; never stops
    a run. ``pause_s``: sleep after each report (a testing aid, so a kill can land mid-run;
    sleeping costs no CPU time and falls outside the trainer's epoch wall time)."""

    def __init__(self, *, pause_s: float = 0.0) -> None:
        self.epochs: list[dict[str, float]] = []
        self.started_cpu = time.process_time()
        self.started_wall = time.perf_counter()
        self._last_cpu = self.started_cpu
        self._first_report_wall: float | None = None
        self._pause_s = pause_s

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        cpu = time.process_time()
        if self._first_report_wall is None:
            self._first_report_wall = time.perf_counter()
        row = {"epoch": epoch, **{k: float(metrics[k]) for k in _EPOCH_METRICS},
               "wall_seconds": float(metrics["epoch_seconds"]),
               "cpu_seconds": cpu - self._last_cpu}
        self.epochs.append(row)
        if self._pause_s > 0:
            time.sleep(self._pause_s)
        self._last_cpu = time.process_time()

    def should_stop(self) -> bool:
        return False

    def setup_wall_seconds(self) -> float | None:
        """Wall time before the first epoch started (set-up), when an epoch finished."""
        if self._first_report_wall is None:
            return None
        return self._first_report_wall - self.started_wall - self.epochs[0]["wall_seconds"]


def run_one(spec: RunSpec, base: CifarConfig, *, milestones: tuple[int, ...],
            pause_s: float = 0.0) -> dict[str, Any]:
    """Train ``spec`` on ``base`` and return its record (one line of a shard file)."""
    cfg = base.replace(lr=spec.config.lr, weight_decay=spec.config.weight_decay,
                       batch_size=spec.config.batch_size, gamma=spec.config.gamma,
                       milestones=milestones, seed=spec.seed)
    started_unix = time.time()
    reporter = TimingReporter(pause_s=pause_s)
    result = train(cfg, reporter)
    run_cpu = time.process_time() - reporter.started_cpu
    run_wall = time.perf_counter() - reporter.started_wall
    epoch_cpu = sum(e["cpu_seconds"] for e in reporter.epochs)
    holdout_acc = result.get("test_acc")
    return {
        "key": spec.key,
        "config": spec.config.as_dict(),
        "seed": spec.seed,
        "milestones": list(milestones),
        "epochs": reporter.epochs,
        "stop_reason": result["stop_reason"],
        "diverged_epoch": result.get("diverged_epoch"),
        "epochs_run": result["epochs_run"],
        "best_val_acc": result["best_val_acc"],
        "best_epoch": result["best_epoch"],
        "holdout_acc": holdout_acc,
        "holdout_loss": result.get("test_loss") if holdout_acc is not None else None,
        "run_cpu_seconds": run_cpu,
        "run_wall_seconds": run_wall,
        "tail_cpu_seconds": run_cpu - epoch_cpu,
        "setup_wall_seconds": reporter.setup_wall_seconds(),
        "started_unix": started_unix,
        "finished_unix": time.time(),
    }
