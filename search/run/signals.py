"""The launcher stops the same way whatever stops it: Ctrl-C (SIGINT), ``kill``/``timeout``/
systemd/Kubernetes/Slurm (SIGTERM), or a closed terminal or SSH session (SIGHUP).

Inside ``stop_on_signals()`` SIGTERM and SIGHUP raise ``LauncherStopped``, a
``KeyboardInterrupt``, so every ``except KeyboardInterrupt``/``BaseException`` path that handles
Ctrl-C handles them too: the executor stops its workers and the launcher fails their running
trials and re-queues them. Once one of these signals arrived, later ones (a second Ctrl-C
included) are logged and ignored, so the clean-up is not itself interrupted; it is bounded
(a local worker that does not stop in time is killed), and SIGKILL always works.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["LauncherStopped", "stop_on_signals"]

log = logging.getLogger(__name__)

_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LauncherStopped(KeyboardInterrupt):
    """The launcher got SIGTERM or SIGHUP; handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by the signal: 128 + its number."""
        return 128 + self.signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``LauncherStopped``, SIGINT ``KeyboardInterrupt``, once; the
    previous handlers come back on exit. Outside the main thread (where Python cannot set
    signal handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _STOPPING}
    stopping: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping:
            log.warning("got %s while stopping; finishing the clean-up first (SIGKILL ends "
                        "it at once, leaving running trials to the heartbeat)",
                        signal.Signals(signum).name)
            return
        stopping.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise LauncherStopped(signum)

    for s in _STOPPING:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
