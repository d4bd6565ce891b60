"""Samplers and pruners built from a spec's ``{name, ...options}``; options are checked
against the Optuna constructor so a typo fails at load time, not in a worker."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from search.errors import SpecError
from search.study.model import ComponentSpec

__all__ = ["PRUNER_NAMES", "SAMPLER_NAMES", "build_pruner", "build_sampler"]

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


def build_sampler(spec: ComponentSpec, *, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    options = dict(spec.options)
    if "seed" in options and options["seed"] is not None:
        options["seed"] = int(options["seed"]) + seed_offset  # each worker draws its own stream
    return _construct("sampler", spec.name, _SAMPLERS[spec.name], options)


def build_pruner(spec: ComponentSpec) -> optuna.pruners.BasePruner:
    options = dict(spec.options)
    if spec.name == "patient":
        wrapped = options.pop("wrapped", None)
        options["wrapped_pruner"] = (None if wrapped is None else
                                     build_pruner(ComponentSpec(wrapped["name"], {
                                         k: v for k, v in wrapped.items() if k != "name"})))
    return _construct("pruner", spec.name, _PRUNERS[spec.name], options)


def _construct(kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any]) -> Any:
    accepted = [n for n in inspect.signature(factory).parameters if n != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise SpecError(f"{kind}: unknown option {unknown[0]!r} for {kind} {name!r}; accepted: "
                        f"{accepted}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factory(**options)
    except (TypeError, ValueError, ImportError) as exc:
        raise SpecError(f"{kind}: cannot build {kind} {name!r} with {options}: {exc}") from None
