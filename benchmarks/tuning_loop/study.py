"""Step one of the loop: the round-2 study, rescaled, run and promoted by hpsearch itself.

The spec is read and rescaled exactly as ``hpsearch launch SPEC --epochs E --trials N --workers
W --set dataset=POOL --set test_dataset=HOLDOUT ...`` would (``apply_overrides``: patience and
the pruner's floors apply), then ``search.launch`` runs it with promotion on, so the winner is
re-measured on ``extra_seeds`` more seeds against what is in force for its regime.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import optuna

__all__ = ["DataSettings", "PromotionSummary", "StudyOutcome", "promotion_line", "resolve_baseline",
           "run_study"]


@dataclass(frozen=True)
class DataSettings:
    """What every run of the benchmark shares: the data, its sizes, the model width, the
    epoch budget."""

    pool_dir: Path
    holdout_dir: Path
    num_classes: int
    pool_size: int
    holdout_size: int
    val_size: int
    width: float
    epochs: int
    cache_dir: Path

    def overrides(self) -> dict[str, Any]:
        """The trainer settings given to the study as ``--set`` (epochs go through --epochs)."""
        return {"dataset": str(self.pool_dir), "test_dataset": str(self.holdout_dir),
                "num_classes": self.num_classes, "val_size": self.val_size,
                "width": self.width, "cache_dir": str(self.cache_dir)}


@dataclass(frozen=True)
class PromotionSummary:
    promoted: bool
    line: str  # as hpsearch launch prints it: "promoted: trial 7 as ..., mean ...; reason"
    incumbent: str  # "code defaults" or "row 4 (documented)"
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    incumbent_values: tuple[float, ...]
    row_id: int | None  # the new tuned-defaults row, when promoted


@dataclass(frozen=True)
class StudyOutcome:
    study_name: str
    storage: str  # password masked
    trainer: str
    metric: str
    rescaled: str | None  # what --epochs rescaled, as the launcher prints it
    counts: Mapping[str, int]
    best_trial: int
    best_value: float
    winner_config: Mapping[str, Any]
    baseline_name: str
    baseline_trial: int | None  # None: the study stopped before it ran the baseline
    baseline_config: Mapping[str, Any]
    promotion: PromotionSummary | None
    seconds: float  # wall time of the study and its promotion


def promotion_line(report: Any) -> str:
    """A ``PromotionReport`` in the words ``hpsearch launch`` prints it with."""
    seeds = ", ".join(f"{s}: {v:.4f}" for s, v in zip(report.seeds, report.values, strict=True))
    verdict = "promoted" if report.promoted else "not promoted"
    return (f"{verdict}: trial {report.trial.number} as {report.key}, mean {report.mean:.4f} "
            f"over seeds ({seeds}); {report.reason}")


def run_study(spec_path: Path, data: DataSettings, *, storage: str, study_name: str,
              trials: int, workers: int, extra_seeds: int, baseline: str,
              emit: Callable[[str], None]) -> StudyOutcome:
    import search
    from search.study.study_spec import apply_overrides, load_spec
    from storage.attrs import BASELINE_ATTR, CONFIG_ATTR

    loaded = load_spec(spec_path)
    if not any(b.name == baseline for b in loaded.baselines):
        raise ValueError(f"{spec_path} has no baseline named {baseline!r}; its baselines are "
                         f"{[b.name for b in loaded.baselines]}")
    overridden = apply_overrides(loaded, name=study_name, trials=trials, workers=workers,
                                 epochs=data.epochs, config=data.overrides())
    if overridden.rescaled:
        emit(overridden.rescaled)
    started = time.perf_counter()
    result = search.launch(overridden.spec, storage=storage, promote=True,
                           extra_seeds=extra_seeds, threads_per_worker=1, on_line=emit)
    seconds = time.perf_counter() - started
    if result.best_trial is None or result.best_value is None:
        raise RuntimeError(f"study {study_name!r} finished no feasible trial "
                           f"({dict(result.counts)}); nothing to compare")
    ran = [t for t in result.study.get_trials(deepcopy=False)
           if t.user_attrs.get(BASELINE_ATTR) == baseline and t.user_attrs.get(CONFIG_ATTR)]
    if ran:
        baseline_trial: int | None = ran[0].number
        baseline_config = dict(ran[0].user_attrs[CONFIG_ATTR])
    else:  # a stop rule ended the study first: resolve it as its trial would have been
        baseline_trial, baseline_config = None, resolve_baseline(overridden.spec, baseline,
                                                                  storage)
    promotion = None
    if result.promotion is not None:
        p = result.promotion
        promotion = PromotionSummary(
            promoted=p.promoted, line=promotion_line(p), incumbent=p.incumbent,
            seeds=tuple(p.seeds), values=tuple(p.values),
            incumbent_values=tuple(p.incumbent_values),
            row_id=p.row.id if p.row is not None else None)
    return StudyOutcome(
        study_name=result.study_name, storage=result.storage, trainer=overridden.spec.trainer,
        metric=overridden.spec.metric, rescaled=overridden.rescaled, counts=dict(result.counts),
        best_trial=result.best_trial, best_value=float(result.best_value),
        winner_config=dict(result.best_config), baseline_name=baseline,
        baseline_trial=baseline_trial, baseline_config=baseline_config,
        promotion=promotion, seconds=seconds)


def resolve_baseline(spec: Any, name: str, storage: str) -> dict[str, Any]:
    """The config the study's objective gives the baseline ``name`` (its Optuna parameters and
    config overrides through the same layers), without running it."""
    from optuna.trial import FixedTrial

    from search.study.space import baseline_to_optuna_params, suggest
    from search.trial.objective import Objective
    from search.tuning.resolve import TunedLookup
    from storage import open_storage

    chosen = next(b for b in spec.baselines if b.name == name)
    handle = open_storage(storage)
    try:
        objective = Objective(spec, tuned_lookup=TunedLookup(handle))
        fixed = FixedTrial(baseline_to_optuna_params(spec, chosen))
        params = suggest(cast("optuna.Trial", fixed), spec.space)  # FixedTrial answers alike
        resolution = objective.resolve(params, dict(chosen.config))
        return dict(resolution.config.to_dict())
    finally:
        handle.close()
