"""What a trainer module promises the search side, written down once.

A trainer module (``trainers.cifar``, ``trainers.multitask`` or any importable module a study
spec names, such as ``benchmarks.stub_trainer``) defines:

- ``Config``: a frozen dataclass with at least the fields of ``TrainerConfig`` (``model``,
  ``optimizer``, ``epochs``, ``seed``, ``checkpoint_dir``) and ``replace``/``to_dict``;
- ``train(cfg, reporter) -> dict`` and ``preflight(cfg)`` (raises ValueError on a config that
  cannot run);
- ``SEARCH``: a ``TrainerInfo`` saying which fields a study tunes and stores as tuned defaults,
  which metrics ``train`` returns and reports, which fields define the regime a result was
  measured in, and how its data set is named in the tuned-defaults table.

The search side reads nothing else from the module, so a new trainer needs no edit there.
Standard library only: importing this pulls in neither torch nor anything of the search side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["CONFIG_FIELDS", "TrainerConfig", "TrainerInfo", "TrainerModule", "contract_problem"]

# The config fields the search side reads on every trainer's config.
CONFIG_FIELDS = ("model", "optimizer", "epochs", "seed", "checkpoint_dir")


@runtime_checkable
class TrainerConfig(Protocol):
    """A trainer's config as the search side uses it (read-only: configs are frozen)."""

    @property
    def model(self) -> str: ...

    @property
    def optimizer(self) -> str: ...

    @property
    def epochs(self) -> int: ...

    @property
    def seed(self) -> int: ...

    @property
    def checkpoint_dir(self) -> str | None: ...

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` (a different seed, a trial's checkpoint directory)."""
        ...

    def to_dict(self) -> Mapping[str, Any]:
        """Every field, JSON-ready: what a trial records and promotion reads back."""
        ...


@dataclass(frozen=True)
class TrainerInfo:
    """What search needs to know about a trainer, declared by the trainer as ``SEARCH``."""

    tunable_fields: tuple[str, ...]  # what a tuned-defaults row carries: tuned, not run-on
    metrics: tuple[str, ...]  # the keys train() returns that a study may optimise
    reports: tuple[str, ...]  # the metrics reporter.report() receives after each epoch
    default_metric: str  # the result key a study optimises unless its spec says otherwise
    default_report: str  # the reported metric pruning watches unless the spec says otherwise
    key_fields: tuple[str, ...]  # the config fields that pick the tuned-defaults row
    regime_fields: tuple[str, ...]  # fields that define the regime a result was measured in
    dataset_key: Callable[[Any], str]  # the config's data set as the tuned-defaults table names it
    # The regime of a config as a JSON-ready mapping; None: the regime_fields' values. A trainer
    # gives its own when a field matters only in some settings (a synthetic set's size).
    regime: Callable[[Any], Mapping[str, Any]] | None = None
    # Regime entries that may differ within a factor of 2 (epochs, data and batch sizes);
    # every other entry must be equal for a tuned default to apply (search/tuning/regime.py).
    regime_scaled: tuple[str, ...] = ()
    # Fields counted in epochs (milestones, patience, ...): a tuned default measured with another
    # epoch budget transfers them as fractions of it, never as absolute counts.
    epoch_fields: tuple[str, ...] = ()
    # The least a rescaled epoch field may become, e.g. {"patience": 3}: early stopping on the
    # first dip is no early stopping.
    epoch_floors: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def regime_of(self, cfg: Any) -> dict[str, Any]:
        """The regime ``cfg`` runs in: what a tuned default's measurement depends on."""
        if self.regime is not None:
            return dict(self.regime(cfg))
        return {name: getattr(cfg, name) for name in self.regime_fields}

    def __post_init__(self) -> None:
        for name in ("tunable_fields", "metrics", "reports", "key_fields", "regime_fields",
                     "regime_scaled", "epoch_fields"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"TrainerInfo.{name} must be a tuple of field names, got "
                                f"{value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.default_metric not in self.metrics:
            raise ValueError(f"TrainerInfo.default_metric {self.default_metric!r} is not one "
                             f"of its metrics {list(self.metrics)}")
        if self.default_report not in self.reports:
            raise ValueError(f"TrainerInfo.default_report {self.default_report!r} is not one "
                             f"of its reports {list(self.reports)}")
        if not callable(self.dataset_key):
            raise TypeError(f"TrainerInfo.dataset_key must be callable, got "
                            f"{self.dataset_key!r}")


@runtime_checkable
class TrainerModule(Protocol):
    """A trainer module: ``Config``, ``train``, ``preflight`` and ``SEARCH``."""

    Config: type
    SEARCH: TrainerInfo

    def train(self, cfg: Any, reporter: Any = None) -> dict[str, Any]: ...

    def preflight(self, cfg: Any) -> None: ...


def contract_problem(module: Any) -> str | None:
    """What ``module`` lacks to be a trainer module, in a few words, or None if nothing."""
    missing = [name for name in ("Config", "train", "preflight", "SEARCH")
               if not hasattr(module, name)]
    if missing:
        return f"lacks {', '.join(missing)}"
    config_cls, info = module.Config, module.SEARCH
    if not isinstance(info, TrainerInfo):
        return f"SEARCH is a {type(info).__name__}, not a trainers.contract.TrainerInfo"
    for name in ("train", "preflight"):
        if not callable(getattr(module, name)):
            return f"{name} is not callable"
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        return "Config is not a dataclass"
    fields = {f.name for f in dataclasses.fields(config_cls)}
    lacking = [f for f in CONFIG_FIELDS if f not in fields]
    if lacking:
        return f"Config lacks the field(s) {lacking}"
    methods = [m for m in ("replace", "to_dict") if not callable(getattr(config_cls, m, None))]
    if methods:
        return f"Config lacks the method(s) {methods}"
    for name in ("tunable_fields", "key_fields", "regime_fields", "epoch_fields"):
        unknown = [f for f in getattr(info, name) if f not in fields]
        if unknown:
            return f"SEARCH.{name} names {unknown}, which are not Config fields"
    return None
