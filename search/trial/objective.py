"""The Optuna objective: trial -> resolved trainer config -> train -> value.

Layers, later wins: trainer code defaults < the current tuned default for the trial's
(trainer, model, optimizer, dataset) < spec ``config`` < a baseline's own ``config`` (carried in
the trial's user attributes) < the trial's suggested parameters.
Every trial records what a person needs to read it: the resolved config, final metrics,
epochs run, why it stopped, and the code and library versions. With
``fault_tolerance.checkpoint_dir`` or ``artifact_store`` each trial checkpoints in its own place,
which a retry of it (after its worker died) resumes from (search/trial/checkpoints.py); the
checkpoints are removed once the trial finishes.
An out-of-memory error fails the trial (``fail_kind`` out_of_memory), frees the cache, and the
worker goes on.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from search.provenance import code_version, library_versions
from search.study.space import suggest, to_config_changes
from search.study.study_spec import StudySpec
from search.study.trainers import get_trainer
from search.trial.checkpoints import TrialCheckpoints, open_artifact_store
from search.trial.reporter import TrialReporter
from search.trial.stall import STALLED_EXIT_CODE, StallLimits, StallWatchdog
from search.tuning.resolve import Resolution, TunedLookup, resolve_tuned
from storage.attrs import (
    CONFIG_ATTR,
    FAIL_KIND_ATTR,
    FAIL_REASON_ATTR,
    OVERRIDES_ATTR,
    RETRY_OF_ATTR,
)

__all__ = ["Objective", "set_user_attrs"]

log = logging.getLogger(__name__)



def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def set_user_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    """Write several user attributes at once where the storage can (one commit), else one by
    one: a trial's record costs a few round trips, not one per key."""
    batch = getattr(trial.study._storage, "set_trial_user_attrs", None)
    if batch is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    batch(trial._trial_id, attrs)


class Objective:
    def __init__(self, spec: StudySpec, *,
                 on_trial_start: Callable[[optuna.Trial], dict[str, Any] | None] | None = None,
                 tuned_lookup: TunedLookup | None = None) -> None:
        self.spec = spec
        self.entry = get_trainer(spec.trainer)
        self._on_trial_start = on_trial_start
        self._lookup = tuned_lookup
        store = spec.fault_tolerance.artifact_store
        self._artifact_store = open_artifact_store(store) if store is not None else None
        ft = spec.fault_tolerance
        self._watchdog = StallWatchdog(
            StallLimits(factor=ft.stall_factor, floor_s=ft.stall_floor_s,
                        first_epoch_s=ft.stall_first_epoch_s), self._stalled)
        self._current: optuna.Trial | None = None

    def _stalled(self, reason: str) -> None:
        """The watchdog's verdict (its own thread; the training thread is stuck and cannot be
        interrupted): record it on the trial, fail the trial, end this worker process."""
        trial = self._current
        if trial is not None:
            try:
                set_user_attrs(trial, {FAIL_REASON_ATTR: reason, FAIL_KIND_ATTR: "stalled"})
                trial.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except Exception:  # the process ends either way; the heartbeat then fails it
                log.exception("could not record the stall of trial %d", trial.number)
        logging.shutdown()
        os._exit(STALLED_EXIT_CODE)

    def resolve(self, params: dict[str, Any], overrides: dict[str, Any]) -> Resolution:
        base = {**self.spec.config, **overrides}
        milestone_names = {p.name for p in self.spec.space if p.type == "milestones"}
        plain = {k: v for k, v in params.items() if k not in milestone_names}
        first = resolve_tuned(self.entry, {**base, **plain}, self._lookup)
        if not milestone_names:
            return first
        # Milestones are fractions of the epoch budget, which a tuned default may set: the
        # budget comes from the first resolution, then they are placed in it.
        explicit = {**base, **to_config_changes(self.spec.space, params,
                                                int(first.config.epochs))}
        return resolve_tuned(self.entry, explicit, self._lookup)

    def _checkpoints(self, trial: optuna.Trial) -> TrialCheckpoints | None:
        ft = self.spec.fault_tolerance
        if ft.checkpoint_dir is None and self._artifact_store is None:
            return None
        return TrialCheckpoints(trial, study_name=self.spec.name,
                                checkpoint_dir=ft.checkpoint_dir,
                                artifact_store=self._artifact_store)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        start_attrs: dict[str, Any] = {}
        if self._on_trial_start is not None:
            # The trial exists: other workers may create theirs. The hook's attributes (who
            # runs the trial) are written with the trial's own, in one batch.
            start_attrs.update(self._on_trial_start(trial) or {})
        params = suggest(trial, self.spec.space)
        overrides = dict(trial.user_attrs.get(OVERRIDES_ATTR, {}))
        resolution = self.resolve(params, overrides)
        cfg = resolution.config
        checkpoints = self._checkpoints(trial)
        if checkpoints is not None:
            if checkpoints.is_retry:
                start_attrs[RETRY_OF_ATTR] = checkpoints.first
                checkpoints.restore()  # from the artifact store, if one is set
            cfg = cfg.replace(checkpoint_dir=str(checkpoints.directory))
        start_attrs.update({CONFIG_ATTR: cfg.to_dict(), "code_version": code_version(),
                            "library_versions": library_versions()})
        if resolution.tuned_row_id is not None:
            start_attrs["tuned_default_row"] = resolution.tuned_row_id
        set_user_attrs(trial, start_attrs)
        for note in resolution.notes:
            log.info("trial %d: %s", trial.number, note)
        multi = self.spec.multi_objective
        def after_report(epoch: int) -> None:
            self._watchdog.progress()
            if checkpoints is not None:
                checkpoints.after_epoch(epoch)

        reporter = TrialReporter(trial, metric=self.spec.report_metric, prune=not multi,
                                 after_report=after_report)
        record: dict[str, Any] = {}
        self._current = trial
        self._watchdog.begin()
        try:
            result = self.entry.train(cfg, reporter)
        except Exception as exc:
            record[FAIL_REASON_ATTR] = f"{type(exc).__name__}: {exc}"[:2000]
            if _is_out_of_memory(exc):
                record[FAIL_KIND_ATTR] = "out_of_memory"
                _free_accelerator_memory()  # the next trial starts from an empty cache
            raise
        else:
            record.update(result)
        finally:
            self._watchdog.end()
            self._current = None
            record["lr_schedule"] = reporter.lr_per_epoch
            if multi:
                record["curve"] = reporter.curve
            set_user_attrs(trial, record)  # one write for everything the run produced
        if checkpoints is not None:
            checkpoints.finished()  # no retry will need them
        stop_reason = result["stop_reason"]
        if stop_reason == "pruned":
            raise optuna.TrialPruned(f"pruned at epoch {result['epochs_run']}")
        if stop_reason == "diverged":
            # Not a score: the sampler sees it as a pruned trial that got nowhere.
            raise optuna.TrialPruned(f"diverged at epoch {result['diverged_epoch']}")
        if multi:
            values = tuple(float(result[m]) for m in self.spec.metrics)
            if not all(math.isfinite(v) for v in values):
                raise optuna.TrialPruned(f"{list(self.spec.metrics)} are {list(values)}")
            return values
        value = float(result[self.spec.metric])
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{self.spec.metric} is {value}")
        gap_key = "best_train_val_gap"
        if self.spec.max_train_val_gap is not None and gap_key in result:
            # Feasible when <= 0: the sampler steers away from overfitting configurations.
            trial.set_constraint("train_val_gap",
                                 float(result[gap_key]) - self.spec.max_train_val_gap)
        return value
