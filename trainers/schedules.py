"""Learning-rate schedules in closed form, with an optional linear warmup in front and an
optional ReduceLROnPlateau multiplier on top.

The LR in force is ``base_lr * factor(epoch, step)``; epochs count from 1, steps within an
epoch from 0. Keeping the schedule a pure function of (epoch, step) plus the plateau state makes
checkpoints tiny and resume exact, and lets any schedule combine with warmup and plateau (the
Keras recipe: warmup 3 epochs, then exponential 0.96 per epoch, with plateau reductions).

- warmup: epochs 1..W run at ``e / W`` of the base LR (W=3: 1/3, 2/3, 1).
- constant: 1.
- step: ``gamma ** ((e - W - 1) // step_size)``.
- multistep: ``gamma ** (number of milestones < e)``; milestones are absolute epochs, as in
  torch's MultiStepLR (milestone 60: epoch 61 is the first decayed one).
- exponential: ``gamma ** (e - W - 1)`` per epoch, or per step ``gamma ** (e - W - 1 + s / S)``.
- cosine: from 1 down to ``min_lr / base_lr`` over the epochs after warmup.
- onecycle: per step over the steps after warmup: cosine up from 1/25 to 1 for ``pct_start`` of
  them, then cosine down to 1/(25 * 1e4), as torch's OneCycleLR with its defaults.
- plateau: after warmup, when the monitored metric (validation accuracy) has not improved by more
  than ``threshold`` for more than ``patience`` epochs, multiply by ``factor`` (never below
  ``min_lr``), then ignore ``cooldown`` epochs. The schedule name ``plateau`` is constant + this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["SCHEDULES", "LRSchedule", "ScheduleSpec"]

SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "onecycle", "plateau")
_ONECYCLE_DIV = 25.0
_ONECYCLE_FINAL_DIV = 1e4


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    epochs: int
    warmup_epochs: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    step_size: int = 30
    per_step: bool = False
    min_lr: float = 0.0
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    plateau_cooldown: int = 0
    plateau_threshold: float = 1e-4
    pct_start: float = 0.3

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; expected one of {list(SCHEDULES)}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}), got "
                             f"{self.warmup_epochs}")
        beyond = [m for m in self.milestones if m > self.epochs]
        if beyond:
            raise ValueError(f"milestones {beyond} are beyond the {self.epochs}-epoch budget; "
                             "use epochs within it")
        if self.step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {self.step_size}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if self.plateau_patience is not None and self.plateau_patience < 0:
            raise ValueError(f"plateau_patience must be >= 0, got {self.plateau_patience}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")

    @property
    def uses_plateau(self) -> bool:
        return self.name == "plateau" or self.plateau_patience is not None


class LRSchedule:
    """Drives an optimizer's LR: call ``after_batch()`` after each optimizer step and
    ``after_epoch(metric)`` after each evaluation."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: ScheduleSpec,
                 steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.spec = spec
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.epoch = 1
        self.step = 0
        self.plateau_scale = 1.0
        self.plateau_best: float | None = None
        self.plateau_bad_epochs = 0
        self.plateau_cooldown_left = 0
        self._apply()

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def factor(self) -> float:
        s, e, w = self.spec, self.epoch, self.spec.warmup_epochs
        if e <= w:
            return e / w
        t = e - w - 1  # whole epochs elapsed since warmup
        frac = t + self.step / self.steps_per_epoch
        if s.name in ("constant", "plateau"):
            f = 1.0
        elif s.name == "step":
            f = s.gamma ** (t // s.step_size)
        elif s.name == "multistep":
            f = s.gamma ** sum(1 for m in s.milestones if m < e)
        elif s.name == "exponential":
            f = s.gamma ** (frac if s.per_step else t)
        elif s.name == "cosine":
            floor = s.min_lr / self.base_lrs[0] if self.base_lrs[0] > 0 else 0.0
            f = floor + (1 - floor) * (1 + math.cos(math.pi * t / (s.epochs - w))) / 2
        else:  # onecycle
            total = (s.epochs - w) * self.steps_per_epoch
            i = t * self.steps_per_epoch + self.step
            up = max(1.0, s.pct_start * total)
            if i <= up:
                f = _cos_between(1 / _ONECYCLE_DIV, 1.0, i / up)
            else:
                f = _cos_between(1.0, 1 / (_ONECYCLE_DIV * _ONECYCLE_FINAL_DIV),
                                 (i - up) / max(1.0, total - up))
        return f * self.plateau_scale

    def after_batch(self) -> None:
        self.step += 1
        if self.spec.name == "onecycle" or (self.spec.name == "exponential"
                                            and self.spec.per_step):
            self._apply()

    def after_epoch(self, metric: float | None = None) -> None:
        if self.spec.uses_plateau and self.epoch > self.spec.warmup_epochs and metric is not None:
            self._plateau_update(metric)
        self.epoch += 1
        self.step = 0
        self._apply()

    def _plateau_update(self, metric: float) -> None:
        s = self.spec
        patience = 10 if s.plateau_patience is None else s.plateau_patience
        if self.plateau_best is None or metric > self.plateau_best + s.plateau_threshold:
            self.plateau_best = metric
            self.plateau_bad_epochs = 0
        else:
            self.plateau_bad_epochs += 1
        if self.plateau_cooldown_left > 0:
            self.plateau_cooldown_left -= 1
            self.plateau_bad_epochs = 0
        if self.plateau_bad_epochs > patience:
            self.plateau_scale *= s.plateau_factor
            self.plateau_cooldown_left = s.plateau_cooldown
            self.plateau_bad_epochs = 0

    def _apply(self) -> None:
        f = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            lr = base * f
            if self.spec.uses_plateau:
                lr = max(lr, min(self.spec.min_lr, base))
            group["lr"] = lr

    def state_dict(self) -> dict[str, float | int | None]:
        return {"epoch": self.epoch, "step": self.step, "plateau_scale": self.plateau_scale,
                "plateau_best": self.plateau_best, "plateau_bad_epochs": self.plateau_bad_epochs,
                "plateau_cooldown_left": self.plateau_cooldown_left}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self.epoch = int(state["epoch"] or 1)
        self.step = int(state["step"] or 0)
        self.plateau_scale = float(state["plateau_scale"] or 1.0)
        best = state["plateau_best"]
        self.plateau_best = None if best is None else float(best)
        self.plateau_bad_epochs = int(state["plateau_bad_epochs"] or 0)
        self.plateau_cooldown_left = int(state["plateau_cooldown_left"] or 0)
        self._apply()


def _cos_between(start: float, end: float, pct: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(1.0, pct))) / 2

