"""What the launcher needs of an executor: where workers run (local processes or Ray tasks).

``prepare`` checks everything the executor needs before the study is created or joined (a Ray
cluster reachable with the resources a trial asks for), so a bad setting leaves nothing
behind; ``run`` starts the workers and returns when they are done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from search.study.model import StudySpec

__all__ = ["ExecutionReport", "Executor"]


@dataclass(frozen=True)
class ExecutionReport:
    errors: tuple[str, ...]  # workers that gave up, with their reasons
    lost: tuple[str, ...]  # workers that died (signal, crash), one line each
    trials_run: int


@runtime_checkable
class Executor(Protocol):
    name: str
    workers: int

    def describe(self) -> str:
        """Where the workers run, for the launcher's first line."""
        ...

    def prepare(self) -> None:
        """Check what the executor needs; raise HpsearchError with one line if it cannot run."""
        ...

    def run(self, spec: StudySpec, storage_url: str, *,
            on_tick: Callable[[], None] = ...,
            on_worker_lost: Callable[[int, int], None] = ...,
            tick_s: float = 1.0) -> ExecutionReport:
        """Run workers on the study until its budget is spent or a stop rule fires."""
        ...
