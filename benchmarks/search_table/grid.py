"""Which runs the table holds, in which order, and which shard records each.

The grid mirrors the round-2 space (examples/round2.yaml) on discrete values: learning rate on a
log grid wide enough to under-train at the bottom and diverge or thrash at the top, weight decay,
batch size, and the multistep decay factor with milestones at fixed fractions of the epochs
(turned into epochs by the search's own ``milestone_epochs``). Every configuration runs with the
base seed; a seeded subset, spread over the learning-rate range, also runs with extra seeds.

Runs are ordered seed-0 first, in a seeded random order of the configurations, then the extra
seeds, so a table that is only partly recorded is already a random sample of the grid. Shard
``i`` of ``n`` records the runs at positions ``i, i + n, ...`` of that order.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.search_table.table import ConfigValues
from search.study.space import milestone_epochs

__all__ = ["DEFAULT_BATCH_SIZES", "DEFAULT_GAMMAS", "DEFAULT_LRS", "DEFAULT_WEIGHT_DECAYS",
           "MILESTONE_FRACTIONS", "GridSpec", "RunSpec", "run_key"]

DEFAULT_LRS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
DEFAULT_WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3)
DEFAULT_BATCH_SIZES = (64, 128, 256)
DEFAULT_GAMMAS = (0.1, 0.5)
MILESTONE_FRACTIONS = (0.5, 0.75)


def run_key(config: ConfigValues, seed: int) -> str:
    """The identity of one run inside a recording (the recording fixes everything else)."""
    return (f"lr={config.lr!r}|weight_decay={config.weight_decay!r}|"
            f"batch_size={config.batch_size}|gamma={config.gamma!r}|seed={seed}")


@dataclass(frozen=True)
class RunSpec:
    config: ConfigValues
    seed: int

    @property
    def key(self) -> str:
        return run_key(self.config, self.seed)


@dataclass(frozen=True)
class GridSpec:
    lrs: tuple[float, ...] = DEFAULT_LRS
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    gammas: tuple[float, ...] = DEFAULT_GAMMAS
    milestone_fractions: tuple[float, ...] = MILESTONE_FRACTIONS
    epochs: int = 10
    width: float = 0.125
    base_seed: int = 0
    extra_seeds: tuple[int, ...] = (1, 2)
    extra_seed_configs: int = 24
    order_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("lrs", "weight_decays", "batch_sizes", "gammas"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty list without repeats, got "
                                 f"{list(values)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.base_seed in self.extra_seeds:
            raise ValueError(f"extra seeds {list(self.extra_seeds)} repeat the base seed "
                             f"{self.base_seed}")
        if self.extra_seed_configs < 0:
            raise ValueError(f"extra_seed_configs must be >= 0, got {self.extra_seed_configs}")

    @property
    def milestones(self) -> tuple[int, ...]:
        return milestone_epochs(list(self.milestone_fractions), self.epochs)

    def configs(self) -> tuple[ConfigValues, ...]:
        """Every configuration, in grid order (lr slowest, gamma fastest)."""
        return tuple(ConfigValues(lr=lr, weight_decay=wd, batch_size=bs, gamma=g)
                     for lr, wd, bs, g in itertools.product(self.lrs, self.weight_decays,
                                                            self.batch_sizes, self.gammas))

    def extra_seed_subset(self) -> tuple[ConfigValues, ...]:
        """``extra_seed_configs`` configurations spread over the learning rates: the configs
        sorted by lr are cut into that many equal strata and one is drawn from each."""
        ordered = sorted(self.configs(), key=lambda c: c.lr)  # stable: grid order within an lr
        n, k = len(ordered), min(self.extra_seed_configs, len(ordered))
        rng = random.Random(self.order_seed + 1)
        return tuple(ordered[rng.randrange(s * n // k, (s + 1) * n // k)] for s in range(k))

    def runs(self, *, limit_configs: int | None = None) -> tuple[RunSpec, ...]:
        """Every run in recording order; ``limit_configs``: only the first K configurations of
        the seeded order (and their extra seeds), for smoke runs."""
        order = list(self.configs())
        random.Random(self.order_seed).shuffle(order)
        if limit_configs is not None:
            order = order[:limit_configs]
        subset = set(self.extra_seed_subset())
        runs = [RunSpec(c, self.base_seed) for c in order]
        runs += [RunSpec(c, s) for s in self.extra_seeds for c in order if c in subset]
        return tuple(runs)

    def shard_runs(self, shard: int, shards: int, *, limit_configs: int | None = None
                   ) -> tuple[RunSpec, ...]:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not in 0..{shards - 1}; give --shard below "
                             "--shards")
        return self.runs(limit_configs=limit_configs)[shard::shards]

    def as_dict(self) -> dict[str, Any]:
        return {"lrs": list(self.lrs), "weight_decays": list(self.weight_decays),
                "batch_sizes": list(self.batch_sizes), "gammas": list(self.gammas),
                "milestone_fractions": list(self.milestone_fractions),
                "milestones": list(self.milestones), "epochs": self.epochs,
                "width": self.width, "order_seed": self.order_seed}

    def seeds_dict(self) -> dict[str, Any]:
        return {"base": [self.base_seed], "extra": list(self.extra_seeds),
                "extra_configs": [c.as_dict() for c in self.extra_seed_subset()]}

    @classmethod
    def from_dicts(cls, grid: Mapping[str, Any], seeds: Mapping[str, Any]) -> GridSpec:
        """Inverse of ``as_dict``/``seeds_dict`` (as stored in a recording's manifest)."""
        spec = cls(lrs=_floats(grid["lrs"]), weight_decays=_floats(grid["weight_decays"]),
                   batch_sizes=tuple(int(b) for b in grid["batch_sizes"]),
                   gammas=_floats(grid["gammas"]),
                   milestone_fractions=_floats(grid["milestone_fractions"]),
                   epochs=int(grid["epochs"]), width=float(grid["width"]),
                   base_seed=int(seeds["base"][0]),
                   extra_seeds=tuple(int(s) for s in seeds["extra"]),
                   extra_seed_configs=len(seeds["extra_configs"]),
                   order_seed=int(grid["order_seed"]))
        stored = [ConfigValues.from_mapping(c) for c in seeds["extra_configs"]]
        if list(spec.extra_seed_subset()) != stored:
            raise ValueError("the stored extra-seed configurations are not the ones this code "
                             "draws for the stored grid; the recording comes from other code")
        return spec


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
