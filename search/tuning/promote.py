"""Promotion: a study's best trial into the tuned-defaults table, only when it beats noise.

The candidate (the best feasible trial's resolved config) is compared with what is in force for
its regime: the tuned-defaults row that resolution would apply to that run (a documented row
too: it is re-measured, not assumed to lose), or the code defaults when no row fits. Both are
trained on the same seeds, the trial's own seed and ``extra_seeds`` more, in the candidate's
regime (its data, width, epochs and batch size), in parallel on the study's workers.

The rule, a paired comparison: with d_i the candidate's minus the incumbent's value on seed i
(sign-adjusted so that larger is better), the candidate is promoted only if the mean of d
exceeds the seed-to-seed spread, the larger sample standard deviation of the two sides over
the seeds. It needs at least ``MIN_SEEDS`` seeds; ``force`` promotes regardless. A loss or a
tie is reported with the numbers. Rows are inserted, never edited; the new row records its
regime, and replaces only the current row of exactly that regime.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import StudyError
from search.provenance import code_version, library_versions
from search.study.study_spec import StudySpec
from search.study.trainers import TrainerEntry, get_trainer
from search.tuning.remeasure import Job, JobResult, run_jobs
from search.tuning.resolve import (
    TunedLookup,
    TunedRow,
    resolve_config,
    row_in_force,
    tuned_params_from_config,
)
from storage.attrs import CONFIG_ATTR
from storage.defaults import DefaultsKey, TunedDefault, promote
from storage.handle import StorageHandle

__all__ = ["MIN_SEEDS", "PromotionReport", "best_finished_trial", "decide",
           "promote_best_trial"]

log = logging.getLogger(__name__)

MIN_SEEDS = 3


@dataclass(frozen=True)
class PromotionReport:
    trial: FrozenTrial
    key: DefaultsKey
    regime: Mapping[str, Any]
    seeds: tuple[int, ...]
    values: tuple[float, ...]  # the candidate's, per seed
    incumbent: str  # "row 4 (documented)" or "code defaults"
    incumbent_values: tuple[float, ...]  # per seed, the same seeds
    promoted: bool
    reason: str
    row: TunedDefault | None  # the new current row, when promoted

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)


@dataclass(frozen=True)
class Verdict:
    promoted: bool
    mean_difference: float
    spread: float
    reason: str


def _spread(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) >= 2 else 0.0


def decide(candidate: Sequence[float], incumbent: Sequence[float], *, higher_is_better: bool,
           incumbent_label: str, force: bool = False) -> Verdict:
    """The paired rule of the module docstring, with the numbers in the reason."""
    sign = 1.0 if higher_is_better else -1.0
    diffs = [sign * (c - i) for c, i in zip(candidate, incumbent, strict=True)]
    mean_d = statistics.mean(diffs)
    spread = max(_spread(candidate), _spread(incumbent))
    numbers = (f"mean paired difference {mean_d:+.4f} against a seed spread of {spread:.4f} "
               f"over {len(diffs)} seeds ({incumbent_label}: "
               f"{', '.join(f'{v:.4f}' for v in incumbent)})")
    if force:
        return Verdict(True, mean_d, spread, f"forced; {numbers}")
    if len(diffs) < MIN_SEEDS:
        return Verdict(False, mean_d, spread,
                       f"{len(diffs)} seeds cannot estimate the seed spread; a promotion needs "
                       f"{MIN_SEEDS} or more (--extra-seeds {MIN_SEEDS - 1}); {numbers}")
    if mean_d > spread:
        return Verdict(True, mean_d, spread, f"beats {incumbent_label}: {numbers}")
    word = "loses to" if mean_d < 0 else "ties with"
    return Verdict(False, mean_d, spread, f"{word} {incumbent_label} within seed noise: "
                                          f"{numbers}")


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


def _incumbent_config(entry: TrainerEntry, candidate: Mapping[str, Any],
                      row: TunedRow | None) -> Any:
    """What is in force, run in the candidate's regime: every field the tuned layer does not
    set, and the regime's own fields (epochs, batch size, ...), held at the candidate's."""
    held = {k: v for k, v in candidate.items()
            if k not in entry.tunable_fields or k in entry.info.regime_fields}
    return resolve_config(entry, explicit=held, tuned=None if row is None else row.params,
                          tuned_row_id=None if row is None else row.id).config


def promote_best_trial(study: optuna.Study, spec: StudySpec, storage: StorageHandle, *,
                       extra_seeds: int = 2, force: bool = False,
                       trial_number: int | None = None, workers: int | None = None,
                       threads: int | None = None,
                       emit: Callable[[str], None] = log.info) -> PromotionReport:
    """Re-measure the best trial (or ``trial_number``) against what is in force for its regime
    and promote it if it beats it beyond seed noise (see the module docstring). A
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
    key = DefaultsKey(*entry.defaults_key(cfg))
    regime = entry.info.regime_of(cfg)
    row = row_in_force(entry, TunedLookup(storage).rows(entry, config), regime)
    label = "code defaults" if row is None else f"row {row.id} ({row.source})"
    params = tuned_params_from_config(entry, config)
    if row is not None and not force and dict(row.params) == params:
        reason = (f"trial {trial.number} is {label} itself: it already sets these "
                  "hyperparameters for this regime")
        return PromotionReport(trial, key, regime, (int(cfg.seed),), (float(first),), label,
                               (), False, reason, None)
    incumbent = _incumbent_config(entry, config, row)
    seeds = [int(cfg.seed) + i for i in range(extra_seeds + 1)]
    emit(f"re-measuring trial {trial.number} against {label} on seeds {seeds}, in its regime "
         f"({', '.join(f'{k} {v}' for k, v in sorted(regime.items()))})")
    jobs = [Job("the candidate", spec.trainer, cfg.replace(seed=s).to_dict(), s)
            for s in seeds[1:]]
    jobs += [Job(label, spec.trainer, incumbent.replace(seed=s).to_dict(), s) for s in seeds]

    def describe(done: JobResult) -> str:
        value = done.result.get(metric)
        return f": {metric} {value:.4f}" if isinstance(value, int | float) else ""

    results = run_jobs(jobs, workers=workers or spec.workers, threads=threads, emit=emit,
                       describe=describe)
    for done in results:
        if done.job.label == "the candidate" and done.result.get("stop_reason") == "diverged":
            raise StudyError(f"trial {trial.number} diverged with seed {done.job.seed} (epoch "
                             f"{done.result.get('diverged_epoch')}); it is not promoted")
    worst = -math.inf if higher_is_better else math.inf
    values = [float(first)] + [float(r.result[metric]) for r in results
                               if r.job.label == "the candidate"]
    inc_values = [float(r.result.get(metric, worst)) for r in results if r.job.label == label]
    verdict = decide(values, inc_values, higher_is_better=higher_is_better,
                     incumbent_label=label, force=force)
    new_row = None
    reason = verdict.reason
    if verdict.promoted:
        outcome = promote(
            storage.engine, key, params=params,
            metric=metric, value=statistics.mean(values), n_seeds=len(values),
            study_name=study.study_name, trial_number=trial.number,
            code_version=code_version(), library_versions=library_versions(),
            higher_is_better=higher_is_better, force=force, regime=regime,
            beats=None if row is None else row.id,
            note=f"seeds {seeds}: {[round(v, 4) for v in values]}; {verdict.reason}")
        if outcome.promoted:
            new_row = outcome.row
        else:  # another promotion of this regime won meanwhile with a better value
            reason = f"{verdict.reason}; but {outcome.reason}"
    return PromotionReport(trial, key, regime, tuple(seeds), tuple(values), label,
                           tuple(inc_values), new_row is not None, reason, new_row)
