"""A study's spec as stored on the study: written once by the launcher that creates it, read
back as a ``StudySpec`` by every command and worker that joins it.

``load_study`` opens a study by name, failing in one line that lists the studies there. The
stored form is ``StudySpec.to_dict()``; nothing outside this module reads or writes it as a
dict. The trial budget of the latest launch (which may have raised it with ``--trials``) is
stored beside it, and a spec read back carries that budget.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from search.errors import StudyError
from search.study.study_spec import StudySpec, parse_spec
from storage.attrs import BUDGET_ATTR, SPEC_ATTR
from storage.handle import StorageHandle

__all__ = ["has_spec", "load_study", "read_spec", "read_spec_or_none", "same_space",
           "store_spec"]


def load_study(storage: StorageHandle, name: str) -> optuna.Study:
    """The study ``name`` in ``storage``, or a StudyError listing the studies there."""
    optuna_storage = storage.optuna()
    try:
        return optuna.load_study(study_name=name, storage=optuna_storage)
    except KeyError:
        names = optuna.get_all_study_names(optuna_storage)
        raise StudyError(f"no study {name!r} in {storage.redacted}; studies there: "
                         f"{names or 'none'}") from None


def store_spec(study: optuna.Study, spec: StudySpec) -> None:
    study.set_user_attr(SPEC_ATTR, spec.to_dict())


def has_spec(study: optuna.Study) -> bool:
    return SPEC_ATTR in study.user_attrs


def read_spec_or_none(study: optuna.Study) -> StudySpec | None:
    """The study's spec, or None for a study not created by ``hpsearch launch``."""
    raw: Any = study.user_attrs.get(SPEC_ATTR)
    if not raw:
        return None
    spec = parse_spec(raw, source=f"spec stored on study {study.study_name!r}")
    budget = study._storage.get_study_system_attrs(study._study_id).get(BUDGET_ATTR)
    if budget is not None and int(budget) != spec.n_trials:
        spec = dataclasses.replace(spec, n_trials=int(budget))
    return spec


def read_spec(study: optuna.Study, *, where: str = "") -> StudySpec:
    """The study's spec; a StudyError when it has none. ``where``: the storage, for the
    message."""
    spec = read_spec_or_none(study)
    if spec is None:
        place = f" in {where}" if where else ""
        raise StudyError(f"study {study.study_name!r}{place} was not created by hpsearch launch "
                         "(it has no spec); launch it first")
    return spec


def same_space(study: optuna.Study, spec: StudySpec) -> bool:
    """Whether the study's stored search space is ``spec``'s (True when none is stored)."""
    raw: Any = study.user_attrs.get(SPEC_ATTR)
    return raw is None or raw.get("space") == spec.to_dict()["space"]
