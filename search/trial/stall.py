"""A trial whose training stops making progress is failed, not waited on forever.

The trainer reports once per epoch; a worker stuck inside a kernel (oneDNN once spun forever
in a weight-gradient kernel on AVX2-only CPUs) reports nothing and holds its heartbeat alive,
so neither Optuna's heartbeat nor the grace period ever fires. The watchdog measures the wall
time between reports and calls ``on_stall`` once an epoch has taken ``factor`` times the
slowest epoch this worker has seen (at least ``floor_s``). Before the first report of the
worker's first trial there is nothing to measure against, so ``first_epoch_s`` applies; later
trials' first epochs are held to ``factor`` times the slowest first epoch seen, which includes
loading the data and building the model.

A stuck thread cannot be interrupted from Python, so ``on_stall`` ends the process (the
objective records the reason on the trial first); the executor starts a replacement worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["STALLED_EXIT_CODE", "StallLimits", "StallWatchdog"]

log = logging.getLogger(__name__)

# How a worker process ends after failing a stalled trial (the executor then replaces it).
STALLED_EXIT_CODE = 4


@dataclass(frozen=True)
class StallLimits:
    factor: float = 10.0  # an epoch may take this many times the slowest one seen
    floor_s: float = 120.0  # but is never held to less than this
    first_epoch_s: float = 3600.0  # before any epoch was ever measured in this worker

    @property
    def enabled(self) -> bool:
        return self.factor > 0


class StallWatchdog:
    """Watches one worker's trials, one at a time: ``begin()`` when a trial starts training,
    ``progress()`` after each of its reports, ``end()`` when it returns."""

    def __init__(self, limits: StallLimits, on_stall: Callable[[str], None], *,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 1.0) -> None:
        self.limits = limits
        self._on_stall = on_stall
        self._clock = clock
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._slowest_epoch_s = 0.0
        self._slowest_first_s = 0.0
        self._since: float | None = None  # when the current epoch began; None: not watching
        self._epochs_this_trial = 0
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        with self._lock:
            self._since = self._clock()
            self._epochs_this_trial = 0
        if self.limits.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="hpsearch-stall-watchdog",
                                            daemon=True)
            self._thread.start()

    def progress(self) -> None:
        with self._lock:
            if self._since is None:
                return
            now = self._clock()
            took = now - self._since
            if self._epochs_this_trial == 0:
                self._slowest_first_s = max(self._slowest_first_s, took)
            else:
                self._slowest_epoch_s = max(self._slowest_epoch_s, took)
            self._epochs_this_trial += 1
            self._since = now

    def end(self) -> None:
        with self._lock:
            self._since = None

    def limit_s(self) -> float:
        """How long the epoch under way may take."""
        with self._lock:
            return self._limit_locked()

    def _limit_locked(self) -> float:
        if self._epochs_this_trial == 0:  # includes loading the data and building the model
            reference = self._slowest_first_s
        else:
            reference = self._slowest_epoch_s or self._slowest_first_s
        if reference == 0.0:
            return self.limits.first_epoch_s
        return max(self.limits.floor_s, self.limits.factor * reference)

    def check(self) -> str | None:
        """The reason to fail the trial now, or None."""
        with self._lock:
            if self._since is None or not self.limits.enabled:
                return None
            waited = self._clock() - self._since
            limit = self._limit_locked()
            if waited <= limit:
                return None
            epoch = self._epochs_this_trial + 1
            self._since = None  # fire once
        return (f"stalled: epoch {epoch} made no progress for {waited:.0f} s (limit {limit:.0f}"
                f" s: {self.limits.factor:g}x the slowest epoch this worker measured, at least "
                f"{self.limits.floor_s:g} s; fault_tolerance.stall_factor sets it, 0 turns "
                "it off)")

    def _watch(self) -> None:
        while True:  # a daemon thread: it ends with its worker process
            time.sleep(self._poll_s)
            reason = self.check()
            if reason is not None:
                log.error("%s", reason)
                self._on_stall(reason)
