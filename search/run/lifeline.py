"""A local worker lives as long as its launcher, unless told to outlive it.

A worker process spawned by ``LocalExecutor`` that outlived its launcher (kill -9, an OOM kill,
a crashed terminal) would keep training as an orphan no hpsearch command can stop, holding its
trial RUNNING. So each worker:

- asks Linux to send it ``ORPHAN_SIGNAL`` when its launcher dies (``prctl(PR_SET_PDEATHSIG)``;
  a signal of its own, not SIGTERM: a launcher's other threads may outlive its main thread for
  a moment, and the worker's parent pid then still looks alive), and also polls its parent pid
  (other systems, and a main thread stuck in a kernel, where a Python signal handler would not
  run);
- once orphaned, stops its own storage calls (``freeze``: no new trial is started meanwhile),
  fails its running trials and re-queues them (search/run/reclaim.py) within
  ``cleanup_timeout_s``, and exits with ``ORPHANED_EXIT_CODE``;
- keeps SIGTERM's and SIGHUP's default action (exit at once): the launcher sends SIGTERM when
  it stops, and a closed terminal's hang-up reaches the whole process group; the launcher then
  fails and re-queues the worker's trials, as it does for any worker that dies;
- ignores SIGINT: Ctrl-C in a terminal reaches every process in the foreground group, and the
  launcher is the one that stops the study (it then stops the workers).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["ORPHANED_EXIT_CODE", "ORPHAN_SIGNAL", "set_parent_death_signal", "tie_to_launcher"]

log = logging.getLogger(__name__)

# How a worker whose launcher died ends (after failing and re-queueing its trials).
ORPHANED_EXIT_CODE = 5
# What the kernel sends a worker when its launcher dies.
ORPHAN_SIGNAL = signal.SIGUSR2

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only);
    whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def tie_to_launcher(launcher_pid: int, on_orphaned: Callable[[str], None], *,
                    freeze: Callable[[], None] = lambda: None, poll_s: float = 1.0,
                    cleanup_timeout_s: float = 30.0,
                    exit: Callable[[int], None] = os._exit) -> threading.Thread:
    """Tie this process (a worker) to its launcher, ``launcher_pid``; call from the main
    thread. When the launcher is gone, ``freeze()`` runs (the worker's own storage stops
    answering), then ``on_orphaned(reason)`` (in a thread, at most ``cleanup_timeout_s``),
    and the process exits with ``ORPHANED_EXIT_CODE``. Returns the watching thread."""
    orphaned = threading.Event()
    signal.signal(ORPHAN_SIGNAL, lambda signum, frame: orphaned.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal(ORPHAN_SIGNAL)

    def watch() -> None:
        while not orphaned.wait(poll_s):
            if os.getppid() != launcher_pid:
                break
        reason = (f"worker {os.getpid()} lost its launcher (pid {launcher_pid}), which exited "
                  "without stopping it")
        log.error("%s; failing its running trials and exiting", reason)
        _quietly(lambda _reason: freeze(), reason)
        cleanup = threading.Thread(target=_quietly, args=(on_orphaned, reason),
                                   name="hpsearch-orphan-cleanup", daemon=True)
        cleanup.start()
        cleanup.join(cleanup_timeout_s)
        if cleanup.is_alive():
            log.error("gave up failing the trials after %.0f s; the heartbeat will",
                      cleanup_timeout_s)
        exit(ORPHANED_EXIT_CODE)

    watcher = threading.Thread(target=watch, name="hpsearch-lifeline", daemon=True)
    watcher.start()
    return watcher


def _quietly(fn: Callable[[str], None], reason: str) -> None:
    try:
        fn(reason)
    except Exception:  # the process exits next either way; say why the trials stay RUNNING
        log.exception("could not fail this worker's running trials")
