"""Persistence: storage URL resolution, Optuna's storage, hpsearch's own tables and migrations."""

from __future__ import annotations

from storage.errors import StorageError
from storage.handle import OptunaSettings, StorageHandle, open_storage
from storage.locks import StudyLock
from storage.migrate import current_revision, head_revision, upgrade
from storage.optuna_storage import open_optuna_storage
from storage.url import DEFAULT_STORAGE, ENV_VAR, check_reachable, redact, resolve_storage_url

__all__ = [
    "DEFAULT_STORAGE",
    "ENV_VAR",
    "OptunaSettings",
    "StorageError",
    "StorageHandle",
    "StudyLock",
    "check_reachable",
    "current_revision",
    "head_revision",
    "open_optuna_storage",
    "open_storage",
    "redact",
    "resolve_storage_url",
    "upgrade",
]
