"""Samplers and pruners built from a spec's ``{name, ...options}``. A spec's options are checked
when it is read, never first in a worker after the study exists: each name against the Optuna
constructor (a typo), each value against its type (the constructor's default's type) and, for
counts of trials and steps, its least sensible value (``n_startup_trials: x``,
``reduction_factor: -2``); then ``rehearse`` runs both on a few throw-away in-memory trials
of the study's space, since Optuna checks some options only when it first samples or prunes."""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from search.errors import SpecError
from search.study.model import ComponentSpec, ParamSpec
from storage.optuna_internals import IN_MEMORY_STORAGE_LOGGER

__all__ = ["PRUNER_NAMES", "SAMPLER_NAMES", "build_pruner", "build_sampler", "rehearse",
           "with_first_decision"]

_SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
_PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "patient": optuna.pruners.PatientPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}
SAMPLER_NAMES = tuple(_SAMPLERS)
PRUNER_NAMES = tuple(_PRUNERS)


# Options counted in trials or steps, with the least value each may take ("auto" where Optuna
# accepts it). A count of the wrong type or sign passes Optuna's constructors and fails later.
_COUNTS: dict[str, int] = {
    "n_startup_trials": 0, "n_ei_candidates": 1, "seed": 0, "min_resource": 1,
    "max_resource": 1, "reduction_factor": 2, "bootstrap_count": 0,
    "min_early_stopping_rate": 0, "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1,
    "patience": 0, "popsize": 1,
}
_AUTO = ("min_resource", "max_resource")
# Counts used as exponents: successive halving's first rung is at
# min_resource * reduction_factor ** min_early_stopping_rate, which Python computes exactly,
# so a rate of 10**21 never finishes computing (a spec could hang every worker).
_MOST = {"min_early_stopping_rate": 64}
_MAX_SEED = 2**32 - 1  # numpy's seeds


def build_sampler(spec: ComponentSpec, *, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    options = dict(spec.options)
    _check_options("sampler", spec.name, _SAMPLERS[spec.name], options)
    if "seed" in options and options["seed"] is not None:
        # Each worker draws its own stream, within numpy's seed range.
        options["seed"] = (int(options["seed"]) + seed_offset) % (_MAX_SEED + 1)
    return _construct("sampler", spec.name, _SAMPLERS[spec.name], options)


def build_pruner(spec: ComponentSpec, *, where: str = "pruner") -> optuna.pruners.BasePruner:
    options = dict(spec.options)
    if spec.name == "patient":
        wrapped = options.pop("wrapped", None)
        if wrapped is not None and not isinstance(wrapped, dict):
            raise SpecError(f"{where}.wrapped: expected a pruner such as {{name: median}}, got "
                            f"{wrapped!r}")
        options["wrapped_pruner"] = (None if wrapped is None else
                                     build_pruner(ComponentSpec(wrapped["name"], {
                                         k: v for k, v in wrapped.items() if k != "name"}),
                                         where=f"{where}.wrapped"))
        _check_options(where, spec.name, _PRUNERS[spec.name],
                       {k: v for k, v in options.items() if k != "wrapped_pruner"})
    else:
        _check_options(where, spec.name, _PRUNERS[spec.name], options)
    return _construct(where, spec.name, _PRUNERS[spec.name], options)


def with_first_decision(spec: ComponentSpec, epoch: int) -> ComponentSpec:
    """The pruner of ``spec`` deciding first at ``epoch`` (Hyperband's and successive
    halving's min_resource; the warm-up steps of the others, also inside ``patient``)."""
    options = dict(spec.options)
    if spec.name in ("hyperband", "successive_halving"):
        options["min_resource"] = epoch
        if isinstance(options.get("max_resource"), int) and options["max_resource"] < epoch:
            options["max_resource"] = epoch
    elif spec.name in ("median", "percentile", "threshold"):
        options["n_warmup_steps"] = epoch - 1
    elif spec.name == "patient" and isinstance(options.get("wrapped"), dict):
        inner = dict(options["wrapped"])
        moved = with_first_decision(ComponentSpec(inner.pop("name"), inner), epoch)
        options["wrapped"] = moved.to_dict()
    return ComponentSpec(spec.name, options)


def rehearse(sampler: ComponentSpec, pruner: ComponentSpec, space: tuple[ParamSpec, ...],
             directions: Sequence[str], *, trials: int = 3, steps: int = 3) -> None:
    """Sample ``trials`` throw-away trials of ``space`` in memory and prune-check each at
    ``steps`` steps, so an option Optuna checks only then fails now, as a SpecError naming the
    component and its options. Writes nothing anywhere."""
    # Imported here: space.py imports this module's neighbours, not the other way round.
    from search.study.space import suggest

    storage = optuna.storages.InMemoryStorage()
    quiet = logging.getLogger(IN_MEMORY_STORAGE_LOGGER)  # "a new study created in memory"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet.addFilter(_drop_all)
        try:
            study_id = storage.create_new_study(
                [optuna.study.StudyDirection[d.upper()] for d in directions], "rehearsal")
        finally:
            quiet.removeFilter(_drop_all)
        study = optuna.Study(study_name=storage.get_study_name_from_id(study_id),
                             storage=storage, sampler=build_sampler(sampler),
                             pruner=build_pruner(pruner))
        for i in range(trials):
            component = sampler
            try:
                trial = study.ask()
                suggest(trial, space)
                if len(directions) == 1:
                    component = pruner
                    for step in range(1, steps + 1):
                        trial.report(float(i + step), step)
                        trial.should_prune()
                component = sampler
                study.tell(trial, [float(i)] * len(directions))
            except ImportError as exc:  # e.g. CmaEsSampler without the cmaes package
                kind = "sampler" if component is sampler else "pruner"
                raise SpecError(f"{kind}: {kind} {component.name!r} needs a package that is not "
                                f"installed ({exc}); install it (pip install "
                                f"{exc.name or 'it'}) here and wherever workers run, or choose "
                                f"another {kind}") from None
            except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
                kind = "sampler" if component is sampler else "pruner"
                raise SpecError(f"{kind}: {kind} {component.name!r} with options "
                                f"{dict(component.options)} fails on a trial: {exc}; fix "
                                "those options (see Optuna's documentation of the "
                                f"{kind})") from None


def _drop_all(record: logging.LogRecord) -> bool:
    return False


def _check_options(kind: str, name: str, factory: Callable[..., Any],
                   options: dict[str, Any]) -> None:
    """Each option's name, type and, for counts, least value."""
    parameters = {n: p for n, p in inspect.signature(factory).parameters.items() if n != "self"}
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise SpecError(f"{kind}: unknown option {unknown[0]!r} for {kind.split('.')[0]} "
                        f"{name!r}; accepted: {list(parameters)}")
    for option, value in options.items():
        default = parameters[option].default
        if option in _COUNTS:
            _check_count(kind, option, value, default)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise SpecError(f"{kind}.{option}: {value!r} is not true or false; e.g. "
                                f"{option}: {str(default).lower()}")
        elif isinstance(default, int | float) and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or (isinstance(default, int) and not isinstance(value, int))):
            what = "a whole number" if isinstance(default, int) else "a number"
            raise SpecError(f"{kind}.{option}: {value!r} is not {what}; e.g. {option}: "
                            f"{default}")


def _check_count(kind: str, option: str, value: Any, default: Any) -> None:
    least = _COUNTS[option]
    if value is None and (default is None or option == "seed"):
        return
    if value == "auto" and option in _AUTO:
        return
    most = _MAX_SEED if option == "seed" else _MOST.get(option)
    if isinstance(value, bool) or not isinstance(value, int) or value < least or (
            most is not None and value > most):
        example = default if isinstance(default, int) and not isinstance(default, bool) \
            and default >= least else max(least, 1)
        bounds = f"{least} to {most}" if most is not None else f">= {least}"
        auto = " or auto" if option in _AUTO else ""
        raise SpecError(f"{kind}.{option}: {value!r} is not a whole number {bounds}{auto}; "
                        f"e.g. {option}: {example}")


def _construct(kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factory(**options)
    except (TypeError, ValueError, ImportError) as exc:
        raise SpecError(f"{kind}: cannot build {kind.split('.')[0]} {name!r} with {options}: "
                        f"{exc}") from None
