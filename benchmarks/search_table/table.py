"""Load a packed search table: typed, frozen records of every recorded run (no torch needed).

A table (``*.json.gz`` written by ``pack``, format described in README.md) holds one run per
(configuration, seed): its learning curve epoch by epoch, the process CPU seconds and wall seconds
of every epoch, why it stopped, and its accuracy on a held-out set that no selection ever saw.

    table = load_table("benchmarks/search_table/cifar10_w0125_e10.json.gz")
    run = table.lookup({"lr": 0.05, "weight_decay": 1e-4, "batch_size": 128, "gamma": 0.1}, 0)
    run.val_acc, run.cpu_seconds, run.holdout_acc
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["FORMAT", "ConfigValues", "EpochRecord", "Grid", "Run", "Table", "TableHeader",
           "load_table", "table_from_dict"]

FORMAT = "hpsearch-search-table/1"
CONFIG_FIELDS = ("lr", "weight_decay", "batch_size", "gamma")


def _canonical(value: float) -> float:
    """Grid floats compared at 9 significant digits, so 1e-4 and 0.0001000000000001 agree."""
    return float(f"{float(value):.9g}")


@dataclass(frozen=True, order=True)
class ConfigValues:
    """One point of the grid: the values the search chooses (milestones follow from epochs)."""

    lr: float
    weight_decay: float
    batch_size: int
    gamma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _canonical(self.lr))
        object.__setattr__(self, "weight_decay", _canonical(self.weight_decay))
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "gamma", _canonical(self.gamma))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ConfigValues:
        """From a dict such as a sampler's parameters; keys beyond the four are ignored."""
        missing = [k for k in CONFIG_FIELDS if k not in values]
        if missing:
            raise KeyError(f"configuration {dict(values)!r} lacks {missing}; a table "
                           f"configuration needs {list(CONFIG_FIELDS)}")
        return cls(**{k: values[k] for k in CONFIG_FIELDS})

    def as_dict(self) -> dict[str, float | int]:
        return {"lr": self.lr, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "gamma": self.gamma}

    def label(self) -> str:
        return (f"lr={self.lr:g} weight_decay={self.weight_decay:g} "
                f"batch_size={self.batch_size} gamma={self.gamma:g}")


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch. Losses that were not finite are NaN. ``cpu_seconds`` is the process
    CPU time since the previous epoch's report (epoch 1: since the run started, so it carries
    the run's set-up); ``wall_seconds`` is the trainer's own epoch time (train + validate)."""

    epoch: int
    val_acc: float
    val_loss: float
    train_loss: float
    train_acc: float
    lr: float
    wall_seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class Run:
    """One training run of one configuration with one seed."""

    config: ConfigValues
    seed: int
    milestones: tuple[int, ...]
    epochs: tuple[EpochRecord, ...]  # the finished epochs, in order (fewer when it diverged)
    stop_reason: str  # "completed" or "diverged"
    diverged_epoch: int | None  # the epoch whose training loss stopped being finite
    best_val_acc: float
    best_epoch: int  # 0 when no epoch finished
    holdout_acc: float | None  # best-validation epoch's weights on the holdout; None: no epoch
    holdout_loss: float | None
    run_cpu_seconds: float  # the whole train() call, holdout evaluation included
    run_wall_seconds: float
    tail_cpu_seconds: float  # after the last report: a diverging epoch's part + the holdout

    @property
    def val_acc(self) -> tuple[float, ...]:
        return tuple(e.val_acc for e in self.epochs)

    @property
    def cpu_seconds(self) -> tuple[float, ...]:
        return tuple(e.cpu_seconds for e in self.epochs)

    @property
    def wall_seconds(self) -> tuple[float, ...]:
        return tuple(e.wall_seconds for e in self.epochs)

    @property
    def diverged(self) -> bool:
        return self.stop_reason == "diverged"


@dataclass(frozen=True)
class Grid:
    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    gammas: tuple[float, ...]
    milestone_fractions: tuple[float, ...]
    epochs: int
    width: float


@dataclass(frozen=True)
class TableHeader:
    grid: Grid
    base_seeds: tuple[int, ...]  # every configuration
    extra_seeds: tuple[int, ...]  # only the configurations in extra_seed_configs
    extra_seed_configs: tuple[ConfigValues, ...]
    sizes: Mapping[str, int]  # pool, val, train, holdout
    trainer_settings: Mapping[str, Any]  # every fixed CifarConfig field of the runs
    data: Mapping[str, Any]  # source, its hashes, the selection seed, files and their hashes
    machine: Mapping[str, Any]  # cpu_model, cpu_count, usable_cpus, torch, python, platform
    recording: Mapping[str, Any]  # runs, expected_runs, complete, dates, wall and CPU totals


@dataclass(frozen=True)
class Table:
    header: TableHeader
    runs: tuple[Run, ...]
    _index: Mapping[tuple[ConfigValues, int], Run] = field(init=False, repr=False,
                                                           compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[ConfigValues, int], Run] = {}
        for run in self.runs:
            key = (run.config, run.seed)
            if key in index:
                raise ValueError(f"the table holds {run.config.label()} seed {run.seed} twice")
            index[key] = run
        object.__setattr__(self, "_index", MappingProxyType(index))

    @property
    def configs(self) -> tuple[ConfigValues, ...]:
        """Every recorded configuration, sorted."""
        return tuple(sorted({c for c, _ in self._index}))

    def seeds(self, config: ConfigValues | Mapping[str, Any]) -> tuple[int, ...]:
        wanted = _as_config(config)
        return tuple(sorted(s for c, s in self._index if c == wanted))

    def lookup(self, config: ConfigValues | Mapping[str, Any], seed: int) -> Run:
        """The run of ``config`` with ``seed``; KeyError naming what the table has instead."""
        wanted = _as_config(config)
        run = self._index.get((wanted, int(seed)))
        if run is not None:
            return run
        seeds = self.seeds(wanted)
        if seeds:
            raise KeyError(f"{wanted.label()} was recorded with seeds {list(seeds)}, not {seed}")
        g = self.header.grid
        raise KeyError(f"{wanted.label()} is not in the table; its grid is lr {list(g.lrs)}, "
                       f"weight_decay {list(g.weight_decays)}, batch_size "
                       f"{list(g.batch_sizes)}, gamma {list(g.gammas)}")


def _as_config(config: ConfigValues | Mapping[str, Any]) -> ConfigValues:
    return config if isinstance(config, ConfigValues) else ConfigValues.from_mapping(config)


def load_table(path: str | Path) -> Table:
    """Read a table written by ``pack`` (gzip-compressed or plain JSON)."""
    path = Path(path)
    raw = path.read_bytes()
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    blob = json.loads(text)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{str(path)!r} is not a search table (format {found!r}, expected "
                         f"{FORMAT!r}); write one with python -m benchmarks.search_table.pack")
    return table_from_dict(blob)


def table_from_dict(blob: Mapping[str, Any]) -> Table:
    h = blob["header"]
    ident = h["identity"]
    g = ident["grid"]
    grid = Grid(lrs=tuple(_canonical(x) for x in g["lrs"]),
                weight_decays=tuple(_canonical(x) for x in g["weight_decays"]),
                batch_sizes=tuple(int(x) for x in g["batch_sizes"]),
                gammas=tuple(_canonical(x) for x in g["gammas"]),
                milestone_fractions=tuple(float(x) for x in g["milestone_fractions"]),
                epochs=int(g["epochs"]), width=float(g["width"]))
    seeds = ident["seeds"]
    header = TableHeader(
        grid=grid, base_seeds=tuple(seeds["base"]), extra_seeds=tuple(seeds["extra"]),
        extra_seed_configs=tuple(ConfigValues.from_mapping(c) for c in seeds["extra_configs"]),
        sizes=MappingProxyType(dict(ident["sizes"])),
        trainer_settings=MappingProxyType(dict(ident["trainer_settings"])),
        data=MappingProxyType(dict(ident["data"])),
        machine=MappingProxyType(dict(h["machine"])),
        recording=MappingProxyType(dict(h["recording"])))
    return Table(header=header, runs=tuple(_run(r) for r in blob["runs"]))


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _run(r: Mapping[str, Any]) -> Run:
    epochs = tuple(EpochRecord(epoch=int(e["epoch"]), val_acc=float(e["val_acc"]),
                               val_loss=_num(e["val_loss"]), train_loss=_num(e["train_loss"]),
                               train_acc=float(e["train_acc"]), lr=float(e["lr"]),
                               wall_seconds=float(e["wall_seconds"]),
                               cpu_seconds=float(e["cpu_seconds"]))
                   for e in r["epochs"])
    return Run(config=ConfigValues.from_mapping(r["config"]), seed=int(r["seed"]),
               milestones=tuple(int(m) for m in r["milestones"]), epochs=epochs,
               stop_reason=str(r["stop_reason"]),
               diverged_epoch=None if r["diverged_epoch"] is None else int(r["diverged_epoch"]),
               best_val_acc=float(r["best_val_acc"]), best_epoch=int(r["best_epoch"]),
               holdout_acc=None if r["holdout_acc"] is None else float(r["holdout_acc"]),
               holdout_loss=None if r["holdout_acc"] is None else _num(r["holdout_loss"]),
               run_cpu_seconds=float(r["run_cpu_seconds"]),
               run_wall_seconds=float(r["run_wall_seconds"]),
               tail_cpu_seconds=float(r["tail_cpu_seconds"]))
