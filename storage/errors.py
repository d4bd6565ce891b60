"""Errors the storage layer raises with a message fit for one line on a terminal."""

from __future__ import annotations

__all__ = ["StorageError"]


class StorageError(RuntimeError):
    """The storage URL is malformed, unreachable, or the schema is not what we need."""
