"""Orchestration: study specs, search spaces, the objective adapter, executors and the CLI.

The Python API (search/api.py) is re-exported here: ``launch``, ``load_study_result``,
``resolve_config``, ``promote``, ``load_spec`` and ``StudyResult``. Importing ``search`` loads
no torch, Optuna or database driver; each function imports what it needs when called.
"""

from __future__ import annotations

from search.api import StudyResult, launch, load_study_result, promote, resolve_config
from search.errors import HpsearchError, SpecError, StudyError, WorkerError
from search.study.study_spec import StudySpec, load_spec, parse_spec

__all__ = [
    "HpsearchError",
    "SpecError",
    "StudyError",
    "StudyResult",
    "StudySpec",
    "WorkerError",
    "launch",
    "load_spec",
    "load_study_result",
    "parse_spec",
    "promote",
    "resolve_config",
]
