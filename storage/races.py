"""Schema creation that tolerates another process creating the same schema at the same time.

Two launchers started together on a fresh database both try to create Optuna's tables and
ours; the loser's CREATE fails with "already exists" (or, on PostgreSQL, a duplicate key in
the catalog). Its retry finds the tables in place and does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy

__all__ = ["retry_schema_race"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_MARKERS = ("already exists", "duplicate key", "unique constraint failed")


def retry_schema_race(action: Callable[[], T], *, what: str, attempts: int = 5) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except sqlalchemy.exc.DBAPIError as exc:
            if attempt == attempts or not any(m in str(exc).lower() for m in _MARKERS):
                raise
            log.info("%s raced another process (%s); retrying", what,
                     str(exc.orig).strip().splitlines()[0])
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")
