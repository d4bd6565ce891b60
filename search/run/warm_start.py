"""Warm starts: what a new study queues or imports before its own search begins.

- the current tuned default for the study's key, re-measured as a first trial;
- registry versions the spec pins (``pins: [NAME@production]``), likewise;
- finished trials of an earlier round (``--warm-start STUDY``), imported as history the sampler
  learns from. Imported trials are marked and do not count toward the new study's budget.

A config only becomes a trial when every search parameter has a value inside the new space;
otherwise it is skipped with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from search.errors import StudyError
from search.study.model import ParamSpec, StudySpec
from search.study.space import OutsideSpace, to_optuna_params
from storage.attrs import IMPORTED_ATTR

__all__ = ["check_source", "config_to_params", "import_trials"]

log = logging.getLogger(__name__)



def config_to_params(spec: StudySpec, config: Mapping[str, Any]) -> tuple[dict[str, Any] | None,
                                                                            str]:
    """Optuna parameters that reproduce ``config`` in ``spec``'s space, or (None, why not)."""
    try:
        return to_optuna_params(spec.space, config,
                                int(config.get("epochs", spec.epochs()))), ""
    except OutsideSpace as exc:
        return None, str(exc)


def _distributions(space: tuple[ParamSpec, ...]) -> dict[str, BaseDistribution]:
    dists: dict[str, BaseDistribution] = {}
    for p in space:
        if p.type == "categorical":
            dists[p.name] = optuna.distributions.CategoricalDistribution(list(p.choices))
        elif p.type == "milestones":
            assert p.low is not None and p.high is not None
            for name in p.optuna_names():
                dists[name] = optuna.distributions.FloatDistribution(p.low, p.high)
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            dists[p.name] = optuna.distributions.IntDistribution(
                int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            assert p.low is not None and p.high is not None
            dists[p.name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log,
                                                                   step=p.step)
    return dists


def check_source(storage: optuna.storages.BaseStorage, source_name: str,
                 direction: str) -> optuna.Study:
    """The earlier round to import from; it must exist and optimise in the same direction."""
    try:
        source = optuna.load_study(study_name=source_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise StudyError(f"--warm-start: no study {source_name!r} in this storage; studies: "
                         f"{names}") from None
    if source.direction.name.lower() != direction:
        raise StudyError(f"--warm-start: study {source_name!r} is "
                         f"{source.direction.name.lower()}, this one {direction}; their values "
                         "do not compare")
    return source


def import_trials(target: optuna.Study, spec: StudySpec, source_name: str,
                  emit: Callable[[str], None] = log.info) -> int:
    """Copy ``source_name``'s finished trials whose parameters fit ``spec``'s space."""
    source = check_source(target._storage, source_name, spec.direction)
    dists = _distributions(spec.space)
    copied, skipped = 0, 0
    for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if set(t.params) != set(dists) or not all(
                dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in t.params.items()):
            skipped += 1
            continue
        target.add_trial(optuna.trial.create_trial(
            state=t.state, value=t.value if t.state == TrialState.COMPLETE else None,
            params=dict(t.params), distributions=dists,
            intermediate_values=dict(t.intermediate_values),
            user_attrs={**t.user_attrs, IMPORTED_ATTR: f"{source_name}#{t.number}"},
            system_attrs={k: v for k, v in t.system_attrs.items()
                          if k.startswith("constraints")}))
        copied += 1
    emit(f"warm start: imported {copied} finished trials of {source_name!r}"
         + (f" ({skipped} did not fit this search space)" if skipped else ""))
    return copied
