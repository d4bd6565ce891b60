"""What the trainers' frozen config dataclasses share: the optimizer settings a config may leave
unset (``OptimizerSettings``), the schedule options whose defaults do not differ between
trainers (``ScheduleOptions``), and behaviour (``TrainingConfigMixin``): optimizer settings with
the document's defaults, the LR schedule, validation, ``replace`` that names unknown keys, and a
plain-dict form. Fields whose defaults differ per trainer (optimizer, epochs, schedule,
milestones, gamma, patience...) are declared by each config. The search declarations of these
shared fields (``training_tunable_fields``, ``EPOCH_FIELDS``, ``EPOCH_FLOORS``) live here too."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trainers.optim import OPTIMIZERS, optimizer_settings
from trainers.runtime import OPTIMIZER_FIELDS, validate_optimizer_fields
from trainers.schedules import ScheduleSpec

__all__ = ["EPOCH_FIELDS", "EPOCH_FLOORS", "OptimizerSettings", "ScheduleOptions",
           "TrainingConfigMixin", "training_tunable_fields"]

_C = TypeVar("_C", bound="TrainingConfigMixin")


@dataclass(frozen=True)
class OptimizerSettings:
    """None takes the optimizer's default (the optimizer-settings document, or the trainer's)."""

    lr: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    alpha: float | None = None
    rho: float | None = None
    lr_decay: float | None = None


@dataclass(frozen=True)
class ScheduleOptions:
    """trainers/schedules.py's options beyond the schedule's name, milestones and gamma."""

    step_size: int = 30
    exp_per_step: bool = False
    warmup_epochs: int = 0
    min_lr: float = 0.0
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    plateau_cooldown: int = 0
    pct_start: float = 0.3


def training_tunable_fields(*own: str) -> tuple[str, ...]:
    """A trainer's ``SEARCH.tunable_fields``: the optimizer settings, then ``own`` (the
    trainer's own tunable fields, e.g. ``batch_size``), then the shared training fields."""
    return (*OPTIMIZER_FIELDS, *own, "clip_grad_norm", "epochs", "schedule", "milestones",
            "gamma", *(f.name for f in dataclasses.fields(ScheduleOptions)), "patience",
            "min_delta")


# The shared fields counted in epochs (``SEARCH.epoch_fields``), and the least a rescaled one
# may become (``SEARCH.epoch_floors``): early stopping on the first dip is no early stopping.
EPOCH_FIELDS = ("milestones", "patience", "step_size", "warmup_epochs", "plateau_patience",
                "plateau_cooldown")
EPOCH_FLOORS: Mapping[str, int] = {"patience": 3}


class TrainingConfigMixin:
    """For frozen dataclasses with the fields ``optimizer``, OPTIMIZER_FIELDS,
    ``clip_grad_norm``, ``epochs``, ``schedule``, ``milestones``, ``gamma``, ``step_size``,
    ``exp_per_step``, ``warmup_epochs``, ``min_lr``, ``plateau_*``, ``pct_start``,
    ``patience``, ``min_delta``, ``checkpoint_every``, ``amp`` and ``device``."""

    _kind = "trainer"

    def check_training_fields(self) -> None:
        s: Any = self
        if s.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {s.optimizer!r}; expected one of "
                             f"{list(OPTIMIZERS)}")
        if s.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"unknown amp {s.amp!r}; expected 'auto', 'bf16' or 'off'")
        for name in ("epochs", "patience", "checkpoint_every"):
            if not getattr(s, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(s, name)!r}")
        validate_optimizer_fields(s)
        if s.clip_grad_norm is not None and not s.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0, got {s.clip_grad_norm!r}")
        for name in ("min_delta", "min_lr"):
            if getattr(s, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(s, name)!r}")
        if not 0 < s.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {s.gamma}")
        ms = tuple(int(m) for m in s.milestones)
        if any(b <= a for a, b in itertools.pairwise(ms)) or any(m < 1 for m in ms):
            raise ValueError(f"milestones must be strictly increasing positive epochs, got "
                             f"{list(s.milestones)}")
        object.__setattr__(self, "milestones", ms)
        self.schedule_spec()  # validates schedule name, warmup and milestones against epochs

    def schedule_spec(self) -> ScheduleSpec:
        s: Any = self
        return ScheduleSpec(
            name=s.schedule, epochs=s.epochs, warmup_epochs=s.warmup_epochs,
            milestones=s.milestones if s.schedule == "multistep" else (),
            gamma=s.gamma, step_size=s.step_size, per_step=s.exp_per_step,
            min_lr=s.min_lr, plateau_patience=s.plateau_patience,
            plateau_factor=s.plateau_factor, plateau_cooldown=s.plateau_cooldown,
            pct_start=s.pct_start)

    def optimizer_settings(self) -> dict[str, float]:
        """The optimizer's defaults (``code_optimizer_defaults``) with this config's values;
        a config with ``lr_scale`` multiplies the learning rate by it."""
        s: Any = self
        explicit = {k: getattr(s, k) for k in OPTIMIZER_FIELDS if getattr(s, k) is not None}
        settings = optimizer_settings(s.optimizer, {**self.code_optimizer_defaults(), **explicit})
        settings["lr"] *= getattr(s, "lr_scale", 1.0)
        return settings

    def code_optimizer_defaults(self) -> dict[str, float]:
        """Per-config overrides of the optimizer document's defaults (none here)."""
        return {}

    def resolved(self: _C) -> _C:
        """This config with the optimizer's defaults written in: what actually runs."""
        changes: dict[str, Any] = {k: v for k, v in self.optimizer_settings().items()
                                   if k in OPTIMIZER_FIELDS}
        if hasattr(self, "lr_scale"):
            changes["lr_scale"] = 1.0  # folded into lr: resolving twice changes nothing
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def replace(self: _C, **changes: object) -> _C:
        """A copy with ``changes``; an unknown key raises naming it and the valid keys."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown {self._kind} config key(s) {unknown}; valid keys: "
                             f"{sorted(names)}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
