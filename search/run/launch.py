"""``hpsearch launch``: create or join a study, queue the baselines, run workers, report.

Validation (spec, storage reachability, direction of an existing study) happens before any
write, so a bad invocation leaves the database as it was.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.errors import StudyError, WorkerError
from search.report.progress import describe_trial, format_progress, read_progress
from search.report.pruning_check import check_pruning, decision_epoch
from search.run.executor import ExecutionReport, Executor
from search.run.local_executor import LocalExecutor
from search.run.reclaim import fail_trials_of
from search.run.stop_rules import stop_reason
from search.run.warm_start import check_source, config_to_params, import_trials
from search.run.worker import optuna_settings, worker_identity
from search.study.space import baseline_to_optuna_params, representative_params
from search.study.stored import has_spec, same_space, store_spec
from search.study.study_spec import StudySpec
from search.trial.objective import Objective
from search.tuning.promote import PromotionReport, promote_best_trial
from search.tuning.resolve import TunedLookup, resolve_tuned
from storage import upgrade
from storage.attrs import (
    BASELINE_ATTR,
    CREATED_AT_ATTR,
    OVERRIDES_ATTR,
    PRUNER_FLOOR_ATTR,
    RECOVERY_ATTR,
)
from storage.connections import connection_budget
from storage.handle import OptunaSettings, StorageHandle, open_storage

__all__ = ["LaunchResult", "create_or_join", "launch"]

log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LaunchResult:
    study: optuna.Study
    created: bool
    execution: ExecutionReport
    best: FrozenTrial | None
    seconds: float
    promotion: PromotionReport | None


def create_or_join(spec: StudySpec, handle: StorageHandle, *, warm_start: str | None = None,
                   emit: Callable[[str], None] = log.info) -> tuple[optuna.Study, bool]:
    """Load the study if it exists (its direction must match), else create it and queue the
    spec's baselines, then the current tuned default and the pinned registry versions, as its
    first trials. Safe when several launchers race to create it."""
    storage = handle.optuna()
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage,
                                                                        include_best_trial=False)}
    if spec.name in existing:
        return _join(spec, storage, existing[spec.name].directions), False
    # Everything that can fail is looked up before the study exists: a bad pin or warm-start
    # source leaves no half-made study behind.
    incumbents = _incumbents(spec, handle)
    if warm_start is not None:
        if spec.multi_objective:
            raise StudyError("--warm-start imports single-objective trials; a multi-objective "
                             "study cannot take them")
        check_source(storage, warm_start, spec.direction)
    try:
        study = optuna.create_study(study_name=spec.name, storage=storage,
                                    directions=[optuna.study.StudyDirection[d.upper()]
                                                for d in spec.optuna_directions()])
    except optuna.exceptions.DuplicatedStudyError:  # another launcher won the race
        summary = next(s for s in optuna.get_all_study_summaries(storage, False)
                       if s.study_name == spec.name)
        return _join(spec, storage, summary.directions), False
    with warnings.catch_warnings():  # experimental in Optuna 3.2-5.0; optuna-dashboard reads it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.metrics) if spec.multi_objective else [spec.metric])
    for baseline in spec.baselines:
        study.enqueue_trial(baseline_to_optuna_params(spec, baseline),
                            user_attrs={BASELINE_ATTR: baseline.name,
                                        OVERRIDES_ATTR: dict(baseline.config)})
    _enqueue_incumbents(study, spec, incumbents, emit)
    if warm_start is not None:
        import_trials(study, spec, warm_start, emit)
    study.set_user_attr(CREATED_AT_ATTR, time.time())  # wall-clock stop rules count from here
    ft = spec.fault_tolerance
    study.set_user_attr(RECOVERY_ATTR, {"grace_period_s": ft.grace_period_s,
                                        "max_retries": ft.max_retries})
    # Written last: the spec marks the study ready, and joiners wait for it (_join), so no
    # other launcher's worker starts a trial before the baselines are queued.
    store_spec(study, spec)
    return study, True


def _incumbents(spec: StudySpec, storage: StorageHandle) -> list[tuple[str, dict[str, Any]]]:
    """The current tuned default and the pinned registry versions, as (label, config)."""
    from storage import registry

    candidates: list[tuple[str, dict[str, Any]]] = []
    entry = Objective(spec).entry
    tuned = resolve_tuned(entry, spec.config, TunedLookup(storage))
    if tuned.tuned_row_id is not None:
        params = {k: v for k, v in tuned.config.to_dict().items() if k in entry.tunable_fields}
        candidates.append((f"tuned-default:row {tuned.tuned_row_id}", params))
    for ref in spec.pins:
        version = registry.resolve(storage.engine, ref)
        candidates.append((f"registry:{version.ref}", dict(version.config)))
    return candidates


def _enqueue_incumbents(study: optuna.Study, spec: StudySpec,
                        candidates: list[tuple[str, dict[str, Any]]],
                        emit: Callable[[str], None]) -> None:
    """Queue the incumbents as first trials after the baselines, budget permitting."""
    room = spec.n_trials - len(spec.baselines)
    queued: list[dict[str, Any]] = []
    for label, config in candidates:
        params, why = config_to_params(spec, config)
        if params is None:
            emit(f"not queueing {label}: {why}")
            continue
        if params in queued:
            continue  # a pin identical to the tuned default runs once
        if len(queued) >= room:
            emit(f"not queueing {label}: the budget of {spec.n_trials} trials is full")
            continue
        study.enqueue_trial(params, user_attrs={BASELINE_ATTR: label, OVERRIDES_ATTR: {}})
        queued.append(params)
        emit(f"queued {label} as a first trial")


def _join(spec: StudySpec, storage: optuna.storages.BaseStorage,
          directions: Sequence[optuna.study.StudyDirection]) -> optuna.Study:
    theirs = [d.name.lower() for d in directions]
    if theirs != spec.optuna_directions():
        said = ", ".join(theirs)
        wanted = ", ".join(spec.optuna_directions())
        raise StudyError(f"study {spec.name!r} exists with direction {said}, but the spec says "
                         f"{wanted}; use another study name (--study-name) or direction: "
                         f"{said}")
    study = optuna.load_study(study_name=spec.name, storage=storage)
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not has_spec(study) and study.trials == [] and time.monotonic() < deadline:
        time.sleep(0.5)  # its creator is still queueing the first trials
    if not same_space(study, spec):
        log.warning("joining study %r whose stored search space differs from this spec's",
                    spec.name)
    return study


def launch(spec: StudySpec, storage: StorageHandle, *, emit: Callable[[str], None] = log.info,
           progress: Callable[[str], None] | None = None, progress_every_s: float = 15.0,
           warm_start: str | None = None, promote: bool = True,
           extra_seeds: int = 2, executor: Executor | None = None,
           worker_storage_url: str | None = None) -> LaunchResult:
    """Run the study to its budget. ``emit`` gets lasting lines (a finished trial, a
    promotion); ``progress`` gets the status line, which a terminal may redraw in place.
    ``worker_storage_url``: where the workers reach the study, if not at ``storage``
    (``grpc://HOST:PORT``: through ``hpsearch proxy``); workers open their own handle."""
    # Resolve one config up front: a bad dataset path or config fails here, not in N workers.
    objective = Objective(spec)
    objective.entry.check(objective.resolve(representative_params(spec.space), {}).config)
    executor = executor or LocalExecutor(spec.workers)
    worker_url = worker_storage_url or storage.url
    behind_proxy = _check_worker_storage(worker_storage_url, optuna_settings(spec))
    executor.prepare()  # a Ray cluster without the resources fails here, before any write
    study, created = _open_study(spec, storage, executor, emit=emit, warm_start=warm_start,
                                 behind_proxy=behind_proxy)
    if behind_proxy:
        emit(f"workers reach the study through the gRPC proxy at {worker_url}")
    watcher = _Watcher(study, spec, emit, progress or emit, progress_every_s)

    def on_worker_lost(pid: int, code: int) -> None:
        fail_trials_of(study, worker_identity(pid), f"worker process {pid} exited with code "
                                                    f"{code} during the trial",
                       spec.fault_tolerance.max_retries)

    start = time.monotonic()
    report = executor.run(spec, worker_url, on_tick=watcher.tick, on_worker_lost=on_worker_lost)
    watcher.tick(force=True)  # the last finished trials
    best, promotion = _conclude(study, spec, storage, report, emit, promote=promote,
                                extra_seeds=extra_seeds,
                                threads=getattr(executor, "threads", None))
    return LaunchResult(study, created, report, best, time.monotonic() - start, promotion)


def _open_study(spec: StudySpec, storage: StorageHandle, executor: Any, *,
                emit: Callable[[str], None], warm_start: str | None,
                behind_proxy: bool) -> tuple[optuna.Study, bool]:
    """Migrate hpsearch's tables, say how many connections the study will hold, create or
    join the study, and store what proxied workers need."""
    storage.optuna(optuna_settings(spec))  # first: the engine everything below borrows
    before, after = upgrade(storage)  # our tables; idempotent, never touches Optuna's
    if before != after:
        emit(f"hpsearch tables migrated from {before or 'empty'} to {after}")
    for line in connection_budget(storage, spec.workers, via_proxy=behind_proxy):
        emit(line)
    study, created = create_or_join(spec, storage, warm_start=warm_start, emit=emit)
    if warm_start is not None and not created:
        raise StudyError(f"--warm-start applies when a study is created; {spec.name!r} "
                         "exists already (use --study-name for a new round)")
    emit(f"{'created' if created else 'joined'} study {spec.name!r} in {storage.redacted} "
         f"({len(spec.baselines) if created else 0} baselines queued; budget {spec.n_trials} "
         f"trials, {executor.describe()})")
    _store_for_proxied_workers(study, spec, storage)
    return study, created


class _Watcher:
    """The launcher's view of the running study: a line per finished trial and the progress
    line. Reading progress walks every trial: at most every 2 s, so a big study's launcher
    does not take CPU from the workers beside it."""

    def __init__(self, study: optuna.Study, spec: StudySpec, emit: Callable[[str], None],
                 progress: Callable[[str], None], progress_every_s: float) -> None:
        self.study, self.spec = study, spec
        self.emit, self.progress, self.every_s = emit, progress, progress_every_s
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.last_line = self.last_read = 0.0
        self.pruning_verdict: bool | None = None
        self.decision = decision_epoch(spec.pruner.name, dict(spec.pruner.options))

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if now - self.last_read < 2.0 and not force:
            return
        self.last_read = now
        p = read_progress(self.study, budget=self.spec.n_trials, workers=self.spec.workers,
                          metric=self.spec.metric_label())
        new = [t for t in p.finished if t.number not in self.seen]
        for t in sorted(new, key=lambda t: t.number):
            self.seen.add(t.number)
            self.emit(describe_trial(t, self.spec.metric_label()))
        if new:
            self._check_pruning(p.finished)
        if new or now - self.last_line >= self.every_s:
            self.last_line = now
            self.progress(format_progress(p))

    def _check_pruning(self, finished: Sequence[FrozenTrial]) -> None:
        """Say when the rung the pruner decides at proves (un)informative; with the spec's
        opt-in, move the workers' first decision to the first epoch that predicts."""
        if self.decision is None:
            return
        check = check_pruning(finished, decision=self.decision)  # read once, by progress
        verdict = check.informative
        if verdict is None or verdict == self.pruning_verdict:
            return
        self.pruning_verdict = verdict
        self.emit(check.describe())
        better = check.first_informative_epoch
        if not verdict and self.spec.raise_min_resource and better is not None \
                and better > self.decision:
            self.study.set_user_attr(PRUNER_FLOOR_ATTR, better)
            self.decision = better
            self.pruning_verdict = None  # judge the new rung afresh
            self.emit(f"pruning_check: the pruner now first decides at epoch {better} for the "
                      "trials to come")


def _conclude(study: optuna.Study, spec: StudySpec, storage: StorageHandle,
              report: ExecutionReport, emit: Callable[[str], None], *, promote: bool,
              extra_seeds: int, threads: int | None = None
              ) -> tuple[FrozenTrial | None, PromotionReport | None]:
    """After the workers: say what stopped them, raise a worker's error if the budget is not
    spent, and promote the winner."""
    for line in report.lost:
        emit(f"lost {line}; its running trial is failed and retried")
    p = read_progress(study, budget=spec.n_trials)
    stopped = stop_reason(study, spec)
    if stopped is not None:
        emit(f"stopped: {stopped}")
    if report.errors and p.done < spec.n_trials and stopped is None:
        raise WorkerError(report.errors[0])
    promotion = None
    if promote and spec.multi_objective and p.pareto:
        emit(f"not promoting: a multi-objective study has {len(p.pareto)} best trials (the "
             "Pareto front); pick one with hpsearch defaults promote STUDY --trial N")
    if promote and p.best is not None and report.trials_run > 0:
        # Re-measurement runs as the workers did: as many at once, as many threads each.
        promotion = promote_best_trial(study, spec, storage, extra_seeds=extra_seeds,
                                       threads=threads, emit=emit)
    return p.best, promotion


def _check_worker_storage(url: str | None, settings: OptunaSettings) -> bool:
    """Whether workers go through a gRPC proxy; fails now, in one line, if it does not answer
    or the URL is not a storage URL at all."""
    if url is None:
        return False
    workers = open_storage(url, allow_grpc=True)
    if not workers.is_proxy:
        return False
    workers.optuna(settings, connect_timeout_s=5.0)  # the handshake
    workers.close()
    return True


def _store_for_proxied_workers(study: optuna.Study, spec: StudySpec,
                               storage: StorageHandle) -> None:
    """What a worker behind a gRPC proxy cannot read from SQL, stored on the study at every
    launch: the trial budget (the proxy enforces it) and the current tuned defaults."""
    from search.tuning.resolve import snapshot_rows
    from storage.attrs import BUDGET_ATTR, TUNED_SNAPSHOT_ATTR

    rows = snapshot_rows(storage.engine)
    study._storage.set_study_system_attr(study._study_id, BUDGET_ATTR, spec.n_trials)
    study._storage.set_study_system_attr(study._study_id, TUNED_SNAPSHOT_ATTR, rows)
