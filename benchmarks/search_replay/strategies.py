"""The strategies compared, as hpsearch study specs (ours) or as a peer library's method.

An hpsearch strategy is a ``sampler`` and a ``pruner`` section of a study spec; the replay parses
a whole spec with hpsearch's own ``parse_spec`` and builds the sampler and pruner with its own
``build_sampler``/``build_pruner``, exactly as a worker does. The spec's objective, space and
epoch budget mirror the table (``replay_spec``).

``hpsearch_default()`` leaves both sections out of the spec, so it is whatever hpsearch gives a
user who does not choose: it follows the product's defaults wherever they are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks.search_replay.grid_space import fixed_values, replay_space
from benchmarks.search_table.table import Table
from search.study.model import ComponentSpec, StudySpec
from search.study.space import milestone_epochs
from search.study.study_spec import parse_spec

__all__ = ["OptunaStrategy", "PeerStrategy", "Strategy", "candidate_strategies",
           "hpsearch_default", "replay_spec", "seeded", "standard_strategies"]


@dataclass(frozen=True)
class OptunaStrategy:
    """hpsearch's own search: the spec's sampler and pruner sections (None: left out, so the
    product's default applies)."""

    name: str
    sampler: Mapping[str, Any] | None
    pruner: Mapping[str, Any] | None
    note: str = ""

    def describe(self, table: Table) -> str:
        spec = replay_spec(table, self)
        return f"{_component(spec.sampler)} + {_component(spec.pruner)}"


@dataclass(frozen=True)
class PeerStrategy:
    """A method of another library, run by that library's own simulator on the same table."""

    name: str
    method: str  # "syne_tune_asha" or "syne_tune_bohb"
    options: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def describe(self, table: Table) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.method}({opts})"


Strategy = OptunaStrategy | PeerStrategy


def _component(c: ComponentSpec) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in c.options.items() if k != "seed")
    return f"{c.name}({opts})"


def replay_spec(table: Table, strategy: OptunaStrategy, *, workers: int = 4) -> StudySpec:
    """The study spec a user would write for the table's search: best validation accuracy,
    reported every epoch, over the table's space and epoch budget."""
    g = table.header.grid
    raw: dict[str, Any] = {
        "name": f"replay-{strategy.name}",
        "trainer": "cifar",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": 1_000_000, "workers": workers},  # the replay's compute decides
        "config": {**fixed_values(table), "epochs": g.epochs, "width": g.width,
                   "patience": g.epochs,
                   "milestones": list(milestone_epochs(list(g.milestone_fractions),
                                                       g.epochs))},
        "space": replay_space(table),
    }
    if strategy.sampler is not None:
        raw["sampler"] = dict(strategy.sampler)
    if strategy.pruner is not None:
        raw["pruner"] = dict(strategy.pruner)
    return parse_spec(raw, source=f"replay strategy {strategy.name!r}")


def seeded(sampler: ComponentSpec, seed: int) -> ComponentSpec:
    """``sampler`` with its seed set, so every repetition is reproducible."""
    return ComponentSpec(sampler.name, {**sampler.options, "seed": seed})


def hpsearch_default() -> OptunaStrategy:
    return OptunaStrategy("hpsearch-default", None, None,
                          "what a spec without sampler and pruner sections gets")


def standard_strategies() -> tuple[Strategy, ...]:
    """The side-by-side set: baselines, hpsearch as its examples configure it today, its
    default, and the peers."""
    return (
        OptunaStrategy("random", {"name": "random"}, {"name": "none"},
                       "random search, every trial to the end"),
        OptunaStrategy("tpe", {"name": "tpe"}, {"name": "none"},
                       "Optuna's TPE with its defaults, no pruning"),
        OptunaStrategy("tpe+hyperband", {"name": "tpe", "n_startup_trials": 4},
                       {"name": "hyperband", "min_resource": 2, "reduction_factor": 3},
                       "as examples/quickstart.yaml (8 epochs) set them before this benchmark"),
        OptunaStrategy("tpe+asha", {"name": "tpe"}, {"name": "successive_halving"},
                       "Optuna's successive halving with its defaults"),
        OptunaStrategy("tpe+default-pruner", {"name": "tpe"}, None,
                       "TPE with hpsearch's default pruner"),
        hpsearch_default(),
        PeerStrategy("syne-asha", "syne_tune_asha", {"grace_period": 1, "reduction_factor": 3},
                     "Syne Tune's ASHA (random search, stopping), its defaults"),
        PeerStrategy("syne-bohb", "syne_tune_bohb", {"grace_period": 1, "reduction_factor": 3},
                     "Syne Tune's BOHB (KDE model on ASHA), its defaults"),
    )


def candidate_strategies() -> tuple[OptunaStrategy, ...]:
    """Settings tried when choosing hpsearch's default (``--candidates``). Optuna 5's TPE is
    already multivariate with a constant liar by default, so those options are not varied."""
    out: list[OptunaStrategy] = []
    for n in (4, 10, 20, 30):
        out.append(OptunaStrategy(f"tpe-n{n}", {"name": "tpe", "n_startup_trials": n},
                                  {"name": "none"}))
    for n in (10, 20):
        for mr in (1, 2, 3):
            for rf in (2, 3):
                out.append(OptunaStrategy(
                    f"tpe-n{n}+hb-m{mr}-r{rf}", {"name": "tpe", "n_startup_trials": n},
                    {"name": "hyperband", "min_resource": mr, "reduction_factor": rf}))
                out.append(OptunaStrategy(
                    f"tpe-n{n}+sh-m{mr}-r{rf}", {"name": "tpe", "n_startup_trials": n},
                    {"name": "successive_halving", "min_resource": mr,
                     "reduction_factor": rf}))
    for mr in (1, 3):
        out.append(OptunaStrategy(
            f"random+sh-m{mr}-r3", {"name": "random"},
            {"name": "successive_halving", "min_resource": mr, "reduction_factor": 3}))
        out.append(OptunaStrategy(
            f"tpe-n30+sh-m{mr}-r3", {"name": "tpe", "n_startup_trials": 30},
            {"name": "successive_halving", "min_resource": mr, "reduction_factor": 3}))
    out.append(OptunaStrategy("random+hb-m1-r3", {"name": "random"},
                              {"name": "hyperband", "min_resource": 1, "reduction_factor": 3}))
    out.append(OptunaStrategy("tpe-n10+median", {"name": "tpe", "n_startup_trials": 10},
                              {"name": "median", "n_startup_trials": 5,
                               "n_warmup_steps": 3}))
    return tuple(out)
