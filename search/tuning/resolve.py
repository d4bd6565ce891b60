"""Resolution of a trainer config from its layers, with the source of every value.

Order, later wins: trainer code defaults (for optimizer settings: the optimizer-settings
document) < the current tuned default for (trainer, model, optimizer, dataset) < explicit values
(a study's config and suggestions, or command-line flags).

When the batch size is set above the tuned-default layer but the learning rate comes from it,
the learning rate follows a scaling rule (linear by default, square root, or none) and a note
says so. When the epoch budget is set above it but milestones come from it, the milestones keep
their fractions of the budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search.errors import SpecError
from search.study.space import milestone_epochs
from search.study.trainers import TrainerEntry
from storage.handle import StorageHandle

__all__ = [
    "SCALING_RULES",
    "Resolution",
    "TunedLookup",
    "TunedSnapshot",
    "resolve_config",
    "snapshot_rows",
    "tuned_params_from_config",
]

log = logging.getLogger(__name__)

SCALING_RULES = ("linear", "sqrt", "none")
CODE = "code default"
DOCUMENT = "code default (optimizer-settings document)"
EXPLICIT = "explicit"


@dataclass(frozen=True)
class Resolution:
    config: Any
    sources: Mapping[str, str]
    notes: tuple[str, ...]
    tuned_row_id: int | None


def tuned_params_from_config(entry: TrainerEntry, config: Mapping[str, Any]) -> dict[str, Any]:
    """What a tuned-defaults row keeps of ``config``: the trainer's tunable fields."""
    return {k: v for k, v in config.items() if k in entry.tunable_fields}


def resolve_config(entry: TrainerEntry, *, explicit: Mapping[str, Any],
                   tuned: Mapping[str, Any] | None, tuned_row_id: int | None = None,
                   scaling_rule: str = "linear", tuned_label: str = "tuned default",
                   whole_config: bool = False) -> Resolution:
    """``tuned`` is the middle layer: a tuned-defaults row (the trainer's tunable fields apply)
    or, with ``whole_config``, a complete config such as a registry version (every field
    applies)."""
    if scaling_rule not in SCALING_RULES:
        raise SpecError(f"unknown scaling rule {scaling_rule!r}; expected one of "
                        f"{list(SCALING_RULES)}")
    fields = entry.field_names()
    unknown = sorted(set(explicit) - fields)
    if unknown:
        raise SpecError(f"unknown {entry.name} config key(s) {unknown}; valid keys: "
                        f"{sorted(fields)}")
    layer = {k: v for k, v in (tuned or {}).items()
             if k in fields and (whole_config or k in entry.tunable_fields) and k not in explicit}
    notes: list[str] = []
    if "lr" in layer and "batch_size" in explicit and "batch_size" in (tuned or {}):
        old_bs, new_bs = int(tuned["batch_size"]), int(explicit["batch_size"])  # type: ignore[index]
        if old_bs != new_bs and scaling_rule != "none":
            ratio = new_bs / old_bs
            factor = ratio if scaling_rule == "linear" else math.sqrt(ratio)
            notes.append(f"lr {layer['lr']:.6g} -> {layer['lr'] * factor:.6g}: {scaling_rule} "
                         f"scaling for batch size {new_bs} instead of the tuned {old_bs}")
            layer["lr"] = float(layer["lr"]) * factor
    if "milestones" in layer and "epochs" in explicit and "epochs" in (tuned or {}):
        old_epochs, new_epochs = int(tuned["epochs"]), int(explicit["epochs"])  # type: ignore[index]
        if old_epochs != new_epochs:
            scaled = list(milestone_epochs([m / old_epochs for m in layer["milestones"]],
                                           new_epochs))
            notes.append(f"milestones {list(layer['milestones'])} -> {scaled}: same fractions "
                         f"of {new_epochs} epochs as of the tuned {old_epochs}")
            layer["milestones"] = scaled
    cfg = entry.build_config(layer, explicit)
    code_defaults = entry.build_config()  # optimizer settings there are None: "unset"
    resolved = cfg.resolved() if hasattr(cfg, "resolved") else cfg
    sources: dict[str, str] = {}
    for f in dataclasses.fields(resolved):
        if f.name in explicit:
            sources[f.name] = EXPLICIT
        elif f.name in layer:
            sources[f.name] = f"{tuned_label} (row {tuned_row_id})" if tuned_row_id else \
                tuned_label
        elif getattr(code_defaults, f.name) is None and getattr(resolved, f.name) is not None:
            sources[f.name] = DOCUMENT
        else:
            sources[f.name] = CODE
    return Resolution(resolved, sources, tuple(notes), tuned_row_id if layer else None)


class TunedLookup:
    """Finds the current tuned-defaults row for a config's key, once per key per process.

    A storage without hpsearch's tables (never ran ``hpsearch db upgrade``) has no tuned
    defaults: that is logged once and the code defaults apply.
    """

    def __init__(self, storage: StorageHandle | None) -> None:
        """``storage``: where the table is; its engine's pool is borrowed (a worker's is
        Optuna's, so lookups add no connection). None: no tuned defaults."""
        self._storage = storage
        self._cache: dict[tuple[str, str, str, str], tuple[dict[str, Any], int] | None] = {}
        self._missing_logged = False

    def __call__(self, entry: TrainerEntry, explicit: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], int] | None:
        if self._storage is None:
            return None
        key = _lookup_key(entry, explicit)
        if key not in self._cache:
            self._cache[key] = self._fetch(key)
        return self._cache[key]

    def _fetch(self, key: tuple[str, str, str, str]) -> tuple[dict[str, Any], int] | None:
        from storage import StorageError
        from storage.defaults import DefaultsKey, current_default

        assert self._storage is not None  # __call__ answers None without a storage
        try:
            row = current_default(self._storage.engine, DefaultsKey(*key))
        except StorageError as exc:
            if not self._missing_logged:
                log.info("no tuned defaults (%s); code defaults apply", exc)
                self._missing_logged = True
            return None
        return None if row is None else (dict(row.params), row.id)


def _lookup_key(entry: TrainerEntry, explicit: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return entry.defaults_key(entry.build_config(
        {k: v for k, v in explicit.items() if k in entry.key_fields}))


class TunedSnapshot(TunedLookup):
    """The tuned defaults as the launcher read them (``snapshot_rows``), for workers with no
    SQL connection (a ``grpc://`` storage): the same answers as ``TunedLookup`` at launch."""

    def __init__(self, rows: list[Mapping[str, Any]]) -> None:
        super().__init__(None)
        self._rows = {tuple(r["key"]): (dict(r["params"]), int(r["id"])) for r in rows}

    def __call__(self, entry: TrainerEntry, explicit: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], int] | None:
        return self._rows.get(_lookup_key(entry, explicit))


def snapshot_rows(engine: Any) -> list[dict[str, Any]]:
    """Every current tuned-defaults row, JSON-ready, for ``TunedSnapshot``."""
    from storage.defaults import list_current

    return [{"key": [r.key.trainer, r.key.model, r.key.optimizer, r.key.dataset],
             "params": dict(r.params), "id": r.id} for r in list_current(engine)]
