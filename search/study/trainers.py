"""The trainers a study spec can name, and how the search side builds their configs.

Built in: ``cifar`` and ``multitask``. Any other name with a dot is imported as a module that
brings its own trainer under the same contract: ``Config`` (a frozen dataclass), ``train(cfg,
reporter) -> dict`` and ``preflight(cfg)``, and optionally ``DEFAULT_METRIC`` (default
``best_val_acc``), ``DEFAULT_REPORT`` (``val_acc``) and ``KEY_FIELDS`` (the config fields that
pick a tuned-defaults row). Every worker imports it, so it must be installed where they run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from search.errors import SpecError

__all__ = ["TrainerEntry", "get_trainer", "trainer_names"]


@dataclass(frozen=True)
class TrainerEntry:
    name: str
    config_cls: type
    train: Callable[..., dict[str, Any]]
    preflight: Callable[[Any], None]
    default_metric: str  # the result key a study optimises unless the spec says otherwise
    default_report: str  # the per-epoch metric reported for pruning
    key_fields: tuple[str, ...]  # config fields that pick the tuned-defaults row

    def field_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.config_cls)}

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


def _cifar() -> TrainerEntry:
    from trainers.cifar import CifarConfig, preflight, train

    return TrainerEntry("cifar", CifarConfig, train, preflight, "best_val_acc", "val_acc",
                        ("model", "optimizer", "dataset"))


def _multitask() -> TrainerEntry:
    from trainers.multitask import MultitaskConfig, preflight, train

    return TrainerEntry("multitask", MultitaskConfig, train, preflight, "best_score", "score",
                        ("model", "optimizer", "cls_dataset", "seg_dataset"))


_TRAINERS: dict[str, Callable[[], TrainerEntry]] = {"cifar": _cifar, "multitask": _multitask}


def trainer_names() -> list[str]:
    return sorted(_TRAINERS)


def get_trainer(name: str) -> TrainerEntry:
    if name in _TRAINERS:
        return _TRAINERS[name]()
    if "." not in name:
        raise SpecError(f"unknown trainer {name!r}; expected one of {trainer_names()} or a "
                        "module path such as mypackage.my_trainer")
    return _from_module(name)


def _from_module(name: str) -> TrainerEntry:
    import importlib

    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise SpecError(f"trainer module {name!r} cannot be imported ({exc}); install it where "
                        "the launcher and every worker run") from None
    missing = [attr for attr in ("Config", "train", "preflight") if not hasattr(module, attr)]
    if missing:
        raise SpecError(f"trainer module {name!r} lacks {missing}; a trainer module defines "
                        "Config, train(cfg, reporter) and preflight(cfg)")
    return TrainerEntry(name, module.Config, module.train, module.preflight,
                        getattr(module, "DEFAULT_METRIC", "best_val_acc"),
                        getattr(module, "DEFAULT_REPORT", "val_acc"),
                        tuple(getattr(module, "KEY_FIELDS", ("model", "optimizer", "dataset"))))
