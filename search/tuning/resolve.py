"""Resolution of a trainer config from its layers, with the source of every value.

Order, later wins: trainer code defaults (for optimizer settings: the optimizer-settings
document) < the tuned default for (trainer, model, optimizer, dataset) measured in the run's
regime < explicit values (a study's config and suggestions, or command-line flags).

A key has one current row per regime (the trainer's model width, data sizes, epoch budget,
batch size, ...). A row applies only where its regime matches the run's (search/tuning/regime.py:
equal entries, sizes within 2x); of several, the closest. Every row skipped is named in a note
with the reason, and with none left the code defaults apply.

When the batch size is set above the tuned-default layer but the learning rate comes from it,
the learning rate follows a scaling rule (linear by default, square root, or none) and a note
says so. When the epoch budget is set above it, the fields the trainer counts in epochs
(milestones, patience, warmup, ...) keep their fractions of the budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search.errors import SpecError
from search.study.space import rescale_epoch_fields
from search.study.trainers import TrainerEntry
from search.tuning.regime import describe_regime, regime_distance, regime_mismatches
from storage.handle import StorageHandle

__all__ = [
    "SCALING_RULES",
    "Resolution",
    "TunedLookup",
    "TunedRow",
    "TunedSnapshot",
    "resolve_config",
    "resolve_tuned",
    "row_in_force",
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
    if "epochs" in explicit and "epochs" in (tuned or {}):
        rescale_epoch_fields(entry, layer, int(tuned["epochs"]),  # type: ignore[index]
                              int(explicit["epochs"]), notes)
    code_defaults = entry.build_config()  # optimizer settings there are None: "unset"
    # The code's own milestones, patience, ... are fractions of its own epoch budget too.
    budget = int(explicit.get("epochs", layer.get("epochs", code_defaults.epochs)))
    rescaled = {name: getattr(code_defaults, name) for name in entry.info.epoch_fields
                if name not in explicit and name not in layer}
    rescale_epoch_fields(entry, rescaled, int(code_defaults.epochs), budget, notes,
                          source="code default")
    rescaled = {k: v for k, v in rescaled.items() if v != getattr(code_defaults, k)}
    cfg = entry.build_config(rescaled, layer, explicit)
    resolved = cfg.resolved() if hasattr(cfg, "resolved") else cfg
    sources: dict[str, str] = {}
    for f in dataclasses.fields(resolved):
        if f.name in explicit:
            sources[f.name] = EXPLICIT
        elif f.name in rescaled:
            sources[f.name] = f"{CODE} (rescaled to {budget} epochs)"
        elif f.name in layer:
            sources[f.name] = f"{tuned_label} (row {tuned_row_id})" if tuned_row_id else \
                tuned_label
        elif getattr(code_defaults, f.name) is None and getattr(resolved, f.name) is not None:
            sources[f.name] = DOCUMENT
        else:
            sources[f.name] = CODE
    return Resolution(resolved, sources, tuple(notes), tuned_row_id if layer else None)


@dataclass(frozen=True)
class TunedRow:
    """A current tuned-defaults row as resolution sees it."""

    id: int
    params: Mapping[str, Any]
    regime: Mapping[str, Any] | None  # None: measured before regimes were recorded
    source: str  # "documented" or "measured"


def resolve_tuned(entry: TrainerEntry, explicit: Mapping[str, Any],
                  lookup: TunedLookup | None, *, scaling_rule: str = "linear") -> Resolution:
    """``explicit`` over the tuned default measured in the run's regime over code defaults.

    Each current row of the key is tried as the middle layer; it applies if the regime of the
    config it produces matches the row's. Of the rows that apply, the closest regime wins (the
    newest on a tie); the others, and every row that does not apply, are named in the notes."""
    rows = lookup.rows(entry, explicit) if lookup is not None else []
    fits: list[tuple[float, int, Resolution]] = []
    skipped: list[str] = []
    scaled = entry.info.regime_scaled
    for row in rows:
        if row.regime is None:
            skipped.append(f"skipped tuned row {row.id}: it was measured before hpsearch "
                           "recorded regimes, so nothing says where it holds; promote a study "
                           "again to replace it")
            continue
        attempt = resolve_config(entry, explicit=explicit, tuned=row.params,
                                 tuned_row_id=row.id, scaling_rule=scaling_rule)
        run = entry.info.regime_of(attempt.config)
        problems = regime_mismatches(run, row.regime, scaled)
        if problems:
            skipped.append(f"skipped tuned row {row.id} ({row.source}, measured at "
                           f"{describe_regime(row.regime)}): {'; '.join(problems)}")
            continue
        fits.append((regime_distance(run, row.regime, scaled), -row.id, attempt))
    if not fits:
        base = resolve_config(entry, explicit=explicit, tuned=None, scaling_rule=scaling_rule)
        notes = (*skipped, "no tuned default was measured in this regime: code defaults apply"
                 ) if skipped else base.notes
        return dataclasses.replace(base, notes=tuple(notes))
    fits.sort(key=lambda f: (f[0], f[1]))
    best = fits[0][2]
    others = [f"tuned row {f[2].tuned_row_id} also fits; row {best.tuned_row_id} was measured "
              "in a closer regime" for f in fits[1:]]
    return dataclasses.replace(best, notes=(*skipped, *others, *best.notes))


def row_in_force(entry: TrainerEntry, rows: list[TunedRow],
                 regime: Mapping[str, Any]) -> TunedRow | None:
    """The row that resolution would apply to a run in ``regime``: the closest that fits."""
    scaled = entry.info.regime_scaled
    fits = [(regime_distance(regime, r.regime, scaled), -r.id, r) for r in rows
            if r.regime is not None and not regime_mismatches(regime, r.regime, scaled)]
    return min(fits, key=lambda f: (f[0], f[1]))[2] if fits else None


class TunedLookup:
    """Finds the current tuned-defaults row for a config's key, once per key per process.

    A storage without hpsearch's tables (never ran ``hpsearch db upgrade``) has no tuned
    defaults: that is logged once and the code defaults apply.
    """

    def __init__(self, storage: StorageHandle | None) -> None:
        """``storage``: where the table is; its engine's pool is borrowed (a worker's is
        Optuna's, so lookups add no connection). None: no tuned defaults."""
        self._storage = storage
        self._cache: dict[tuple[str, str, str, str], list[TunedRow]] = {}
        self._missing_logged = False

    def rows(self, entry: TrainerEntry, explicit: Mapping[str, Any]) -> list[TunedRow]:
        """The current rows (one per regime) for the key of ``explicit``."""
        if self._storage is None:
            return []
        key = _lookup_key(entry, explicit)
        if key not in self._cache:
            self._cache[key] = self._fetch(key)
        return self._cache[key]

    def _fetch(self, key: tuple[str, str, str, str]) -> list[TunedRow]:
        from storage import StorageError
        from storage.defaults import DefaultsKey, current_rows

        assert self._storage is not None  # rows() answers [] without a storage
        try:
            found = current_rows(self._storage.engine, DefaultsKey(*key))
        except StorageError as exc:
            if not self._missing_logged:
                log.info("no tuned defaults (%s); code defaults apply", exc)
                self._missing_logged = True
            return []
        return [TunedRow(r.id, dict(r.params), r.regime, r.source) for r in found]


def _lookup_key(entry: TrainerEntry, explicit: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return entry.defaults_key(entry.build_config(
        {k: v for k, v in explicit.items() if k in entry.key_fields}))


class TunedSnapshot(TunedLookup):
    """The tuned defaults as the launcher read them (``snapshot_rows``), for workers with no
    SQL connection (a ``grpc://`` storage): the same answers as ``TunedLookup`` at launch."""

    def __init__(self, rows: list[Mapping[str, Any]]) -> None:
        super().__init__(None)
        self._rows: dict[tuple[str, ...], list[TunedRow]] = {}
        for r in rows:
            self._rows.setdefault(tuple(r["key"]), []).append(TunedRow(
                int(r["id"]), dict(r["params"]), r.get("regime"), str(r.get("source", ""))))

    def rows(self, entry: TrainerEntry, explicit: Mapping[str, Any]) -> list[TunedRow]:
        return self._rows.get(_lookup_key(entry, explicit), [])


def snapshot_rows(engine: Any) -> list[dict[str, Any]]:
    """Every current tuned-defaults row, JSON-ready, for ``TunedSnapshot``."""
    from storage.defaults import list_current

    return [{"key": [r.key.trainer, r.key.model, r.key.optimizer, r.key.dataset],
             "params": dict(r.params), "id": r.id, "regime": r.regime, "source": r.source}
            for r in list_current(engine)]
