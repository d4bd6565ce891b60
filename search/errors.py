"""Errors the CLI turns into one line on stderr and a non-zero exit."""

from __future__ import annotations

__all__ = ["HpsearchError", "SpecError", "StudyError", "WorkerError"]


class HpsearchError(RuntimeError):
    """A known failure whose message names the bad value and the fix."""


class SpecError(HpsearchError, ValueError):
    """The study spec (YAML) is malformed or inconsistent."""


class StudyError(HpsearchError):
    """The study in the database does not fit what was asked (missing, other direction...)."""


class WorkerError(HpsearchError):
    """Workers could not make progress (every trial failing, processes dying)."""
