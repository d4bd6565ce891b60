"""Promotion: a study's best trial, re-measured on extra seeds, into the tuned-defaults table.

The best feasible trial's resolved config is trained again with ``extra_seeds`` more seeds
(seed + 1, seed + 2, ...); the mean over all seeds (the trial's own value included) must beat the
current row on the same metric, or ``force`` is given. Rows are inserted, never edited.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import StudyError
from search.study.study_spec import StudySpec
from search.study.trainers import get_trainer
from search.trial.provenance import code_version, library_versions
from search.tuning.resolve import tuned_params_from_config
from storage.attrs import CONFIG_ATTR
from storage.defaults import DefaultsKey, PromotionOutcome, promote
from storage.handle import StorageHandle

__all__ = ["PromotionReport", "best_finished_trial", "promote_best_trial"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionReport:
    trial: FrozenTrial
    key: DefaultsKey
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    outcome: PromotionOutcome

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)


def best_finished_trial(study: optuna.Study, trial_number: int | None = None) -> FrozenTrial:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if trial_number is not None:
        for t in study.get_trials(deepcopy=False):
            if t.number == trial_number:
                if t.state != TrialState.COMPLETE:
                    raise StudyError(f"trial {trial_number} of study {study.study_name!r} is "
                                     f"{t.state.name}, not COMPLETE; pick a completed trial")
                return t
        raise StudyError(f"study {study.study_name!r} has no trial {trial_number}; it has "
                         f"{len(study.trials)} trials")
    if not completed:
        raise StudyError(f"study {study.study_name!r} has no completed trial yet; run it "
                         "first (hpsearch launch) or pick a study that finished trials")
    if len(study.directions) > 1:
        front = ", ".join(str(t.number) for t in sorted(study.best_trials,
                                                        key=lambda t: t.number))
        raise StudyError(f"study {study.study_name!r} has several objectives, so no single best "
                         f"trial; pick one of its Pareto front ({front}) with --trial N")
    try:
        return study.best_trial
    except ValueError:
        raise StudyError(f"study {study.study_name!r} has completed trials but none is "
                         "feasible (all exceed the train-validation gap limit)") from None


def promote_best_trial(study: optuna.Study, spec: StudySpec, storage: StorageHandle, *,
                       extra_seeds: int = 2, force: bool = False,
                       trial_number: int | None = None,
                       emit: Callable[[str], None] = log.info) -> PromotionReport:
    """Re-measure the best trial (or ``trial_number``) and promote it if it wins. A
    multi-objective study is compared on the trainer's single metric (the multi-task score)."""
    if extra_seeds < 0:
        raise StudyError(f"extra seeds must be >= 0, got {extra_seeds}")
    trial = best_finished_trial(study, trial_number)
    entry = get_trainer(spec.trainer)
    metric = entry.default_metric if spec.multi_objective else spec.metric
    higher_is_better = True if spec.multi_objective else spec.direction == "maximize"
    first = trial.value if not spec.multi_objective else trial.user_attrs.get(metric)
    if first is None:
        raise StudyError(f"trial {trial.number} recorded no {metric!r}; it cannot be compared "
                         "with the tuned default")
    config = dict(trial.user_attrs.get(CONFIG_ATTR) or {})
    if not config:
        raise StudyError(f"trial {trial.number} has no recorded config; it was not run by "
                         "hpsearch and cannot be promoted")
    cfg = entry.build_config(config)
    values = [float(first)]
    seeds = [int(cfg.seed)]
    for i in range(1, extra_seeds + 1):
        seed = int(cfg.seed) + i
        emit(f"re-measuring trial {trial.number} with seed {seed} ({i}/{extra_seeds})")
        result = entry.train(cfg.replace(seed=seed))
        if result["stop_reason"] == "diverged":
            raise StudyError(f"trial {trial.number} diverged with seed {seed} (epoch "
                             f"{result['diverged_epoch']}); it is not promoted")
        values.append(float(result[metric]))
        seeds.append(seed)
    mean = statistics.mean(values)
    key = DefaultsKey(*entry.defaults_key(cfg))
    outcome = promote(
        storage.engine, key, params=tuned_params_from_config(entry, config),
        metric=metric, value=mean, n_seeds=len(values), study_name=study.study_name,
        trial_number=trial.number, code_version=code_version(),
        library_versions=library_versions(), higher_is_better=higher_is_better,
        force=force, note=f"mean of seeds {seeds}: {[round(v, 4) for v in values]}")
    return PromotionReport(trial, key, tuple(values), tuple(seeds), outcome)
