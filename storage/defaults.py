"""The tuned-defaults table: append-only rows keyed by (trainer, model, optimizer, dataset),
each measured in a regime (the trainer's model width, data sizes, epochs, ...): one current row
per key and regime.

Promotion never edits a row's values: it inserts a new row and moves the ``is_current`` flag of
the row for the same regime, in one transaction. Whether a candidate deserves it is decided by
the caller (a paired re-measurement, search/tuning/promote.py), which names the row it beat;
if another promotion made a different row current meanwhile, the values decide, as they do for
racers. Racing promotions stay correct: the current row is locked (``FOR UPDATE`` on
PostgreSQL; SQLite serialises writers), and two racers that both saw no current row collide on
the partial unique index, so the loser retries, sees the winner's row and compares against it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from storage.errors import StorageError
from storage.tables import tuned_defaults

__all__ = ["DefaultsKey", "PromotionOutcome", "TunedDefault", "current_default",
           "current_rows", "default_history", "list_current", "promote", "regime_key"]

log = logging.getLogger(__name__)

_RETRIES = 5


@dataclass(frozen=True)
class DefaultsKey:
    trainer: str
    model: str
    optimizer: str
    dataset: str

    def as_filter(self) -> list[Any]:
        t = tuned_defaults.c
        return [t.trainer == self.trainer, t.model == self.model,
                t.optimizer == self.optimizer, t.dataset == self.dataset]

    def __str__(self) -> str:
        return f"{self.trainer}/{self.model}/{self.optimizer}/{self.dataset}"


@dataclass(frozen=True)
class TunedDefault:
    id: int
    key: DefaultsKey
    params: Mapping[str, Any]
    metric: str | None
    metric_value: float | None
    n_seeds: int
    source: str
    study_name: str | None
    trial_number: int | None
    code_version: str | None
    library_versions: Mapping[str, str] | None
    note: str | None
    is_current: bool
    created_at: datetime
    regime: Mapping[str, Any] | None = None  # None: measured before regimes were recorded


def regime_key(regime: Mapping[str, Any] | None) -> str:
    """The canonical text of a regime: the unique index allows one current row per key and
    regime_key."""
    return "" if regime is None else json.dumps(dict(regime), sort_keys=True, default=str)


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    row: TunedDefault  # the new current row, or the current row that was kept
    previous: TunedDefault | None
    reason: str


def _row(r: Any) -> TunedDefault:
    return TunedDefault(
        id=r.id, key=DefaultsKey(r.trainer, r.model, r.optimizer, r.dataset),
        params=dict(r.params), metric=r.metric, metric_value=r.metric_value, n_seeds=r.n_seeds,
        source=r.source, study_name=r.study_name, trial_number=r.trial_number,
        code_version=r.code_version, library_versions=r.library_versions, note=r.note,
        is_current=bool(r.is_current), created_at=r.created_at,
        regime=None if r.regime is None else dict(r.regime))


def _require_table(engine: sa.Engine) -> None:
    if not sa.inspect(engine).has_table(tuned_defaults.name):
        raise StorageError("the tuned-defaults table does not exist in this storage; run "
                           "'hpsearch db upgrade' first")


def current_default(engine: sa.Engine, key: DefaultsKey,
                    regime: Mapping[str, Any] | None = None) -> TunedDefault | None:
    """The current row of ``key`` measured in exactly ``regime`` (None: the row without one)."""
    _require_table(engine)
    with engine.connect() as conn:
        r = conn.execute(sa.select(tuned_defaults).where(
            *key.as_filter(), tuned_defaults.c.is_current,
            tuned_defaults.c.regime_key == regime_key(regime))).first()
    return None if r is None else _row(r)


def current_rows(engine: sa.Engine, key: DefaultsKey) -> list[TunedDefault]:
    """Every current row of ``key``, one per regime, oldest first."""
    _require_table(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tuned_defaults).where(
            *key.as_filter(), tuned_defaults.c.is_current).order_by(tuned_defaults.c.id))
        return [_row(r) for r in rows]


def list_current(engine: sa.Engine, **filters: str | None) -> list[TunedDefault]:
    _require_table(engine)
    query = sa.select(tuned_defaults).where(tuned_defaults.c.is_current)
    for name, value in filters.items():
        if value is not None:
            query = query.where(tuned_defaults.c[name] == value)
    query = query.order_by(tuned_defaults.c.trainer, tuned_defaults.c.model,
                           tuned_defaults.c.optimizer, tuned_defaults.c.dataset)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def default_history(engine: sa.Engine, key: DefaultsKey) -> list[TunedDefault]:
    _require_table(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tuned_defaults).where(*key.as_filter())
                            .order_by(tuned_defaults.c.id))
        return [_row(r) for r in rows]


def promote(engine: sa.Engine, key: DefaultsKey, *, params: Mapping[str, Any], metric: str,
            value: float, n_seeds: int, study_name: str | None, trial_number: int | None,
            code_version: str | None, library_versions: Mapping[str, str] | None,
            higher_is_better: bool = True, force: bool = False, note: str | None = None,
            regime: Mapping[str, Any] | None = None, beats: int | None = None
            ) -> PromotionOutcome:
    """Insert a measured row for ``regime`` and make it current if it beats the current row of
    that regime: ``beats`` names the row the caller's own comparison beat (then it is replaced);
    any other current row is compared on the same metric's value. ``force`` replaces it
    regardless."""
    _require_table(engine)
    for attempt in range(_RETRIES):
        try:
            return _promote_once(engine, key, params=params, metric=metric, value=value,
                                 n_seeds=n_seeds, study_name=study_name,
                                 trial_number=trial_number, code_version=code_version,
                                 library_versions=library_versions,
                                 higher_is_better=higher_is_better, force=force, note=note,
                                 regime=regime, beats=beats)
        except sa.exc.IntegrityError:
            log.info("promotion of %s raced another one (attempt %d); retrying", key, attempt + 1)
    raise StorageError(f"promotion of {key} lost {_RETRIES} races in a row; try again")


def _promote_once(engine: sa.Engine, key: DefaultsKey, *, params: Mapping[str, Any],
                  metric: str, value: float, n_seeds: int, study_name: str | None,
                  trial_number: int | None, code_version: str | None,
                  library_versions: Mapping[str, str] | None, higher_is_better: bool,
                  force: bool, note: str | None, regime: Mapping[str, Any] | None,
                  beats: int | None) -> PromotionOutcome:
    t = tuned_defaults
    rkey = regime_key(regime)
    with engine.begin() as conn:
        query = sa.select(t).where(*key.as_filter(), t.c.is_current, t.c.regime_key == rkey)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        current = conn.execute(query).first()
        previous = None if current is None else _row(current)
        decided = previous is not None and beats is not None and previous.id == beats
        if previous is not None and not force and not decided and previous.metric == metric \
                and previous.metric_value is not None:
            better = (value > previous.metric_value if higher_is_better
                      else value < previous.metric_value)
            if not better:
                return PromotionOutcome(False, previous, previous,
                                        f"{metric} {value:.4f} does not beat the current "
                                        f"{previous.metric_value:.4f} (row {previous.id}); "
                                        "use --force to promote anyway")
        if previous is not None:
            conn.execute(t.update().where(t.c.id == previous.id).values(is_current=False))
        new_id = conn.execute(t.insert().values(
            trainer=key.trainer, model=key.model, optimizer=key.optimizer, dataset=key.dataset,
            params=dict(params), metric=metric, metric_value=value, n_seeds=n_seeds,
            source="measured", study_name=study_name, trial_number=trial_number,
            code_version=code_version, library_versions=dict(library_versions or {}),
            note=note, is_current=True, created_at=datetime.now(timezone.utc),
            regime=None if regime is None else dict(regime), regime_key=rkey,
        ).returning(t.c.id)).scalar_one()
        row = _row(conn.execute(sa.select(t).where(t.c.id == new_id)).one())
    if previous is None:
        reason = "no current row: promoted"
    elif force:
        reason = f"forced over row {previous.id}"
    elif decided:
        reason = f"beats row {previous.id} measured on the same seeds"
    elif previous.metric_value is None:
        reason = f"replaces the {previous.source} row {previous.id}, which has no measurement"
    else:
        reason = (f"{metric} {value:.4f} beats {previous.metric_value:.4f} "
                  f"(row {previous.id})")
    return PromotionOutcome(True, row, previous, reason)
