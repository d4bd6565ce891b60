"""The config registry: immutable, numbered versions per name, and movable aliases.

A reference is ``NAME`` (the newest version), ``NAME@3`` (a version) or ``NAME@production``
(an alias). Names and aliases are restricted to letters, digits, ``.``, ``_`` and ``-`` so that
they are safe as file names. Version numbers are allocated under a unique constraint: two
exporters racing for the same name both succeed, with consecutive numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from storage.errors import StorageError
from storage.tables import registry_aliases, registry_versions

__all__ = ["RegistryVersion", "create_version", "list_versions", "parse_ref", "resolve",
           "set_alias", "validate_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RETRIES = 5


@dataclass(frozen=True)
class RegistryVersion:
    name: str
    version: int
    trainer: str
    params: Mapping[str, Any]
    config: Mapping[str, Any]
    metrics: Mapping[str, Any]
    seeds: Sequence[int]
    study_name: str | None
    trial_number: int | None
    code_version: str | None
    library_versions: Mapping[str, str] | None
    note: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "hpsearch_registry_version": 1, "name": self.name, "version": self.version,
            "aliases": list(self.aliases), "trainer": self.trainer, "params": dict(self.params),
            "config": dict(self.config), "metrics": dict(self.metrics), "seeds": list(self.seeds),
            "source": {"study": self.study_name, "trial": self.trial_number},
            "code_version": self.code_version,
            "library_versions": dict(self.library_versions or {}),
            "created_at": self.created_at.isoformat(), "note": self.note,
        }


def validate_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise StorageError(f"{kind} {value!r} is not allowed; use letters, digits, '.', '_' "
                           "and '-' (no slashes), starting with a letter or digit")
    return value


def parse_ref(ref: str) -> tuple[str, str | None]:
    name, sep, selector = ref.partition("@")
    validate_name("registry name", name)
    if sep and not selector:
        raise StorageError(f"registry reference {ref!r} ends in '@'; write NAME, NAME@VERSION "
                           "or NAME@ALIAS")
    return name, selector or None


def _require_tables(engine: sa.Engine) -> None:
    if not sa.inspect(engine).has_table(registry_versions.name):
        raise StorageError("the registry tables do not exist in this storage; run "
                           "'hpsearch db upgrade' first")


def _aliases_of(conn: sa.Connection, name: str, version: int) -> tuple[str, ...]:
    a = registry_aliases.c
    rows = conn.execute(sa.select(a.alias).where(a.name == name, a.version == version)
                        .order_by(a.alias))
    return tuple(r.alias for r in rows)


def _version(conn: sa.Connection, r: Any) -> RegistryVersion:
    return RegistryVersion(
        name=r.name, version=r.version, trainer=r.trainer, params=dict(r.params),
        config=dict(r.config), metrics=dict(r.metrics), seeds=list(r.seeds),
        study_name=r.study_name, trial_number=r.trial_number, code_version=r.code_version,
        library_versions=r.library_versions, note=r.note, created_at=r.created_at,
        aliases=_aliases_of(conn, r.name, r.version))


def create_version(engine: sa.Engine, *, name: str, trainer: str, params: Mapping[str, Any],
                   config: Mapping[str, Any], metrics: Mapping[str, Any], seeds: Sequence[int],
                   study_name: str | None, trial_number: int | None, code_version: str | None,
                   library_versions: Mapping[str, str] | None, note: str | None = None,
                   aliases: Sequence[str] = ()) -> RegistryVersion:
    _require_tables(engine)
    validate_name("registry name", name)
    for alias in aliases:
        _check_alias(alias)
    v = registry_versions.c
    for _ in range(_RETRIES):
        try:
            with engine.begin() as conn:
                latest = conn.execute(sa.select(sa.func.max(v.version)).where(v.name == name)
                                      ).scalar()
                version = int(latest or 0) + 1
                conn.execute(registry_versions.insert().values(
                    name=name, version=version, trainer=trainer, params=dict(params),
                    config=dict(config), metrics=dict(metrics), seeds=list(seeds),
                    study_name=study_name, trial_number=trial_number, code_version=code_version,
                    library_versions=dict(library_versions or {}), note=note,
                    created_at=datetime.now(timezone.utc)))
                for alias in aliases:
                    _upsert_alias(conn, name, alias, version)
            return resolve(engine, f"{name}@{version}")
        except sa.exc.IntegrityError:
            continue  # another exporter took this version number: take the next one
    raise StorageError(f"could not allocate a version for {name!r} after {_RETRIES} tries")


def _check_alias(alias: str) -> None:
    validate_name("alias", alias)
    if alias.isdigit():
        raise StorageError(f"alias {alias!r} is a number and would read as a version; "
                           "use a word such as 'production'")


def _upsert_alias(conn: sa.Connection, name: str, alias: str, version: int) -> None:
    a = registry_aliases.c
    conn.execute(registry_aliases.delete().where(a.name == name, a.alias == alias))
    conn.execute(registry_aliases.insert().values(name=name, alias=alias, version=version,
                                                  updated_at=datetime.now(timezone.utc)))


def set_alias(engine: sa.Engine, ref: str, alias: str) -> RegistryVersion:
    """Point ``alias`` at the version ``ref`` names (moving it if it pointed elsewhere)."""
    _check_alias(alias)
    target = resolve(engine, ref)
    with engine.begin() as conn:
        _upsert_alias(conn, target.name, alias, target.version)
    return resolve(engine, target.ref)


def resolve(engine: sa.Engine, ref: str) -> RegistryVersion:
    _require_tables(engine)
    name, selector = parse_ref(ref)
    v, a = registry_versions.c, registry_aliases.c
    with engine.connect() as conn:
        versions = [r.version for r in conn.execute(
            sa.select(v.version).where(v.name == name).order_by(v.version))]
        if not versions:
            names = sorted(r.name for r in conn.execute(sa.select(v.name).distinct()))
            raise StorageError(f"no registry entry named {name!r}; names: {names or 'none'}")
        if selector is None:
            version = versions[-1]
        elif selector.isdigit():
            version = int(selector)
            if version not in versions:
                raise StorageError(f"{name!r} has no version {version}; versions: {versions}")
        else:
            row = conn.execute(sa.select(a.version).where(a.name == name, a.alias == selector)
                               ).first()
            if row is None:
                known = sorted(r.alias for r in conn.execute(
                    sa.select(a.alias).where(a.name == name)))
                raise StorageError(f"{name!r} has no alias {selector!r}; aliases: "
                                   f"{known or 'none'} (set one with 'hpsearch registry alias "
                                   f"{name}@VERSION {selector}')")
            version = int(row.version)
        r = conn.execute(sa.select(registry_versions).where(v.name == name,
                                                            v.version == version)).one()
        return _version(conn, r)


def list_versions(engine: sa.Engine, name: str | None = None) -> list[RegistryVersion]:
    _require_tables(engine)
    v = registry_versions.c
    query = sa.select(registry_versions).order_by(v.name, v.version)
    if name is not None:
        query = query.where(v.name == validate_name("registry name", name))
    with engine.connect() as conn:
        return [_version(conn, r) for r in conn.execute(query)]
