"""The trainers a study spec can name, and how the search side builds their configs.

Built in: ``cifar`` (``trainers.cifar``) and ``multitask`` (``trainers.multitask``). Any other
name with a dot is imported as a module that brings its own trainer under the same contract
(``trainers/contract.py``): ``Config``, ``train(cfg, reporter) -> dict``, ``preflight(cfg)``
and ``SEARCH``, a ``TrainerInfo`` declaring what the search side needs to know (tunable
fields, metrics, the fields that key its tuned defaults, how its data set is named). Every
entry is built from that declaration alone, so a new trainer needs no edit here. Every worker
imports the module, so it must be installed where they run.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search.errors import SpecError

if TYPE_CHECKING:
    from trainers.contract import TrainerInfo

__all__ = ["TrainerEntry", "get_trainer", "trainer_names"]



@dataclass(frozen=True)
class TrainerEntry:
    name: str
    config_cls: type
    train: Callable[..., dict[str, Any]]
    preflight: Callable[[Any], None]
    info: TrainerInfo  # the module's SEARCH declaration

    @property
    def default_metric(self) -> str:
        """The result key a study optimises unless the spec says otherwise."""
        return self.info.default_metric

    @property
    def default_report(self) -> str:
        """The per-epoch metric reported for pruning unless the spec says otherwise."""
        return self.info.default_report

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The config fields that pick the tuned-defaults row."""
        return self.info.key_fields

    @property
    def tunable_fields(self) -> tuple[str, ...]:
        """The fields a tuned-defaults row carries."""
        return self.info.tunable_fields

    def defaults_key(self, cfg: Any) -> tuple[str, str, str, str]:
        """(trainer, model, optimizer, data set): the key of ``cfg``'s tuned-defaults row."""
        return self.name, str(cfg.model), str(cfg.optimizer), self.info.dataset_key(cfg)

    def field_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.config_cls)}

    def epoch_budget(self, config: Mapping[str, Any]) -> int:
        """The epochs of a regular trial: ``config``'s, else the trainer's code default."""
        if "epochs" in config:
            return int(config["epochs"])
        return int(self.build_config().epochs)

    def build_config(self, *layers: Mapping[str, Any]) -> Any:
        """Code defaults, then each layer in order; an unknown key or bad value raises SpecError."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        unknown = sorted(set(merged) - self.field_names())
        if unknown:
            raise SpecError(f"unknown {self.name} config key(s) {unknown}; valid keys: "
                            f"{sorted(self.field_names())}")
        try:
            return self.config_cls(**merged)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"invalid {self.name} config: {exc}") from None

    def check(self, cfg: Any) -> None:
        try:
            self.preflight(cfg)
        except ValueError as exc:
            raise SpecError(f"config: {exc}") from None


def trainer_names() -> list[str]:
    return sorted(_TRAINERS)


def get_trainer(name: str) -> TrainerEntry:
    if name in _TRAINERS:
        return _TRAINERS[name]()
    if "." not in name:
        raise SpecError(f"unknown trainer {name!r}; expected one of {trainer_names()} or a "
                        "module path such as mypackage.my_trainer")
    return _from_module(name, name)


def _from_module(name: str, module_path: str) -> TrainerEntry:
    from trainers.contract import contract_problem

    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise SpecError(f"trainer module {module_path!r} cannot be imported ({exc}); install "
                        "it where the launcher and every worker run") from None
    problem = contract_problem(module)
    if problem is not None:
        raise SpecError(f"trainer module {module_path!r} {problem}; a trainer module defines "
                        "Config, train(cfg, reporter), preflight(cfg) and SEARCH = "
                        "trainers.contract.TrainerInfo(...)")
    return TrainerEntry(name, module.Config, module.train, module.preflight, module.SEARCH)


# Built-in names and their modules, imported on first use (``import search`` loads no torch).
_TRAINERS: dict[str, Callable[[], TrainerEntry]] = {
    name: functools.partial(_from_module, name, module)
    for name, module in (("cifar", "trainers.cifar"), ("multitask", "trainers.multitask"))}
