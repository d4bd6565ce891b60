"""Orchestration: study specs, search spaces, the objective adapter, executors and the CLI."""

from __future__ import annotations

from search.errors import HpsearchError, SpecError, StudyError, WorkerError
from search.study.study_spec import StudySpec, load_spec, parse_spec

__all__ = ["HpsearchError", "SpecError", "StudyError", "StudySpec", "WorkerError", "load_spec",
           "parse_spec"]
