"""What a study is made of, as frozen data: its search space (``ParamSpec``), sampler and
pruner (``ComponentSpec``), baselines, stop rules, fault tolerance, and the ``StudySpec`` that
holds them. Built and validated by search/study/study_spec.py (``parse_spec``) only; read by
everything else. Of search/study/ it imports only the trainer registry (for a spec's default
epoch budget), so space.py and samplers.py build on it and the parser on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search.study.trainers import get_trainer

__all__ = ["BaselineSpec", "ComponentSpec", "FaultTolerance", "ParamSpec", "StopRules",
           "StudySpec"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    count: int = 0

    def optuna_names(self) -> list[str]:
        """Names of the Optuna parameters behind this one (milestones fan out)."""
        if self.type == "milestones":
            return [f"{self.name}_{i}" for i in range(1, self.count + 1)]
        return [self.name]

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.choices
        assert self.low is not None and self.high is not None
        return isinstance(value, int | float) and self.low <= value <= self.high

    def describe(self) -> str:
        if self.type == "categorical":
            return f"one of {list(self.choices)}"
        return f"in [{self.low}, {self.high}]"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
            return out
        out.update(low=self.low, high=self.high)
        if self.type == "milestones":
            out["count"] = self.count
            return out
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class ComponentSpec:
    """A sampler or pruner: its name and keyword options (pruners may nest a ``wrapped``)."""

    name: str
    options: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class BaselineSpec:
    name: str
    params: Mapping[str, Any]  # space parameters; milestones as epochs
    config: Mapping[str, Any]  # fixed trainer settings that differ for this baseline

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "params": dict(self.params)}
        if self.config:
            out["config"] = dict(self.config)
        return out


@dataclass(frozen=True)
class StopRules:
    at_target: bool = False  # stop once a finished trial reaches success.target
    no_improvement_trials: int | None = None  # stop after K finished trials without a new best
    wall_clock_s: float | None = None  # stop starting trials this long after creation

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)}


@dataclass(frozen=True)
class FaultTolerance:
    checkpoint_dir: str | None = None  # per-trial checkpoints under <dir>/<study>/trial-<n>
    artifact_store: str | None = None  # or uploaded there (search/trial/checkpoints.py)
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retries: int = 3  # a trial whose worker died is re-queued this many times
    # A trial with no epoch reported for stall_factor x the slowest epoch its worker measured
    # (at least stall_floor_s; stall_first_epoch_s before any) is failed as stalled
    # (search/trial/stall.py); stall_factor 0 turns the check off.
    stall_factor: float = 10.0
    stall_floor_s: float = 120.0
    stall_first_epoch_s: float = 3600.0

    def to_dict(self) -> dict[str, Any]:
        defaults = FaultTolerance()
        return {k: v for k, v in dataclasses.asdict(self).items()
                if v != getattr(defaults, k)}


@dataclass(frozen=True)
class StudySpec:
    name: str
    trainer: str
    metric: str
    direction: str
    report_metric: str
    target: float | None
    max_train_val_gap: float | None
    n_trials: int
    workers: int
    config: Mapping[str, Any]
    space: tuple[ParamSpec, ...]
    sampler: ComponentSpec
    pruner: ComponentSpec
    baselines: tuple[BaselineSpec, ...]
    description: str = ""
    pins: tuple[str, ...] = ()  # registry references re-measured as first trials
    metrics: tuple[str, ...] = ()  # a multi-objective study: every objective, in order
    directions: tuple[str, ...] = ()
    stop: StopRules = StopRules()
    fault_tolerance: FaultTolerance = FaultTolerance()
    # pruning_check.raise_min_resource: once the rung the pruner first decides at proves
    # uninformative, workers move it to the first epoch that predicts (search/report/
    # pruning_check.py).
    raise_min_resource: bool = False

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def metric_label(self) -> str:
        return ",".join(self.metrics) if self.multi_objective else self.metric

    def optuna_directions(self) -> list[str]:
        return list(self.directions) if self.multi_objective else [self.direction]

    def epochs(self) -> int:
        """The epoch budget of a regular trial (spec config, else the trainer's code default)."""
        return get_trainer(self.trainer).epoch_budget(self.config)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: ``parse_spec(spec.to_dict()) == spec``."""
        out: dict[str, Any] = {
            "name": self.name,
            "trainer": self.trainer,
            "objective": ({"metrics": list(self.metrics), "directions": list(self.directions)}
                          if self.multi_objective else
                          {"metric": self.metric, "direction": self.direction,
                           "report": self.report_metric}),
            "budget": {"trials": self.n_trials, "workers": self.workers},
            "config": dict(self.config),
            "space": {p.name: p.to_dict() for p in self.space},
            "sampler": self.sampler.to_dict(),
            "pruner": self.pruner.to_dict(),
            "baselines": [b.to_dict() for b in self.baselines],
        }
        success = {k: v for k, v in (("target", self.target),
                                     ("max_train_val_gap", self.max_train_val_gap))
                   if v is not None}
        if success:
            out["success"] = success
        if self.pins:
            out["pins"] = list(self.pins)
        if self.stop.to_dict():
            out["stop"] = self.stop.to_dict()
        if self.fault_tolerance.to_dict():
            out["fault_tolerance"] = self.fault_tolerance.to_dict()
        if self.raise_min_resource:
            out["pruning_check"] = {"raise_min_resource": True}
        if self.description:
            out["description"] = self.description
        return out

    def baseline_epochs(self, baseline: BaselineSpec) -> int:
        return int(baseline.config.get("epochs", self.epochs()))
