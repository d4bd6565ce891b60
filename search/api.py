"""The Python API: what the ``hpsearch`` command does, as functions returning values.

``launch`` runs a study to its budget and returns a ``StudyResult``; ``load_study_result`` reads
one back; ``resolve_config`` is ``hpsearch train --dry-run`` (the config's layers, each value's
source); ``promote`` is ``hpsearch defaults promote``. ``storage`` is a database URL resolved as
the command resolves ``--storage``: the argument, else ``$HPSEARCH_STORAGE``, else
``sqlite:///hpsearch.db`` in the working directory. Failures raise the one-line
``HpsearchError`` (``SpecError``, ``StudyError``, ``WorkerError``) and ``StorageError`` the
command prints. Lines the command would print go to ``on_line`` when given, else to logging.

This module sits beside ``search/cli``: it imports the rooms below it, and nothing below imports
it. Heavy modules are imported inside the functions, so importing ``search`` stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.study.study_spec import StudySpec, load_spec, parse_spec, with_overrides

if TYPE_CHECKING:
    import optuna

    from search.tuning.promote import PromotionReport
    from search.tuning.resolve import Resolution

__all__ = [
    "StudyResult",
    "launch",
    "load_spec",
    "load_study_result",
    "promote",
    "resolve_config",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyResult:
    """A study as it stands: its best trial and how many trials ended in each state.

    ``best_*`` are None while no feasible trial completed, and for a multi-objective study,
    whose best trials are ``pareto_front`` instead. ``study`` is the ``optuna.Study`` itself.
    """

    study_name: str
    storage: str  # the URL with any password masked
    best_trial: int | None
    best_value: float | None
    best_params: Mapping[str, Any]
    best_config: Mapping[str, Any]
    counts: Mapping[str, int]  # trial state (COMPLETE, PRUNED, FAIL, RUNNING, ...) -> trials
    study: optuna.Study = field(repr=False, compare=False)
    pareto_front: tuple[int, ...] = ()
    promotion: PromotionReport | None = None  # set by launch when it re-measured the winner


def launch(spec: str | Path | StudySpec | Mapping[str, Any], *, storage: str | None = None,
           trials: int | None = None, workers: int | None = None, epochs: int | None = None,
           study_name: str | None = None, config: Mapping[str, Any] | None = None,
           promote: bool = True, extra_seeds: int = 2, warm_start: str | None = None,
           checkpoint_dir: str | None = None, artifact_store: str | None = None,
           worker_storage: str | None = None, threads_per_worker: int | None = None,
           on_line: Callable[[str], None] | None = None) -> StudyResult:
    """``hpsearch launch``: create the study (or join it), run local workers until its budget
    is spent or a stop rule fires, promote the winner unless ``promote=False``.

    ``spec``: a YAML path, a ``StudySpec`` or the YAML's content as a dict. ``trials``,
    ``workers``, ``epochs``, ``study_name`` and ``config`` (fixed trainer settings, like
    ``--set``) override the spec's as the command's flags do.
    """
    from search.errors import SpecError
    from search.run.launch import launch as run_launch
    from search.run.local_executor import LocalExecutor
    from storage import open_storage

    parsed = with_overrides(
        _as_spec(spec), name=study_name, trials=trials, workers=workers, epochs=epochs,
        config=config, checkpoint_dir=checkpoint_dir, artifact_store=artifact_store)
    handle = open_storage(storage)
    executor = None
    if threads_per_worker is not None:
        if threads_per_worker < 1:
            raise SpecError(f"threads_per_worker={threads_per_worker} must be at least 1, e.g. "
                            "threads_per_worker=1")
        executor = LocalExecutor(parsed.workers, threads_per_worker=threads_per_worker)
    emit = on_line or log.info
    result = run_launch(parsed, handle, emit=emit, warm_start=warm_start, promote=promote,
                        extra_seeds=extra_seeds, executor=executor,
                        worker_storage_url=worker_storage)
    return _result(result.study, handle.url, promotion=result.promotion)


def load_study_result(study_name: str, *, storage: str | None = None) -> StudyResult:
    """A study launched earlier (here or anywhere sharing the storage), as it stands now."""
    from search.study.stored import load_study
    from storage import open_storage

    handle = open_storage(storage)
    return _result(load_study(handle, study_name), handle.url)


def resolve_config(*, trainer: str = "cifar", model: str | None = None,
                   optimizer: str | None = None, dataset: str | None = None,
                   overrides: Mapping[str, Any] | None = None, storage: str | None = None,
                   scaling_rule: str = "linear") -> Resolution:
    """``hpsearch train --dry-run``: the trainer's config from its layers (code defaults < the
    current tuned default for (trainer, model, optimizer, dataset) < ``model``, ``optimizer``,
    ``dataset`` and ``overrides``). ``.config`` is the trainer's frozen config, ``.sources``
    says where each value came from, ``.notes`` what was rescaled."""
    from search.study.trainers import get_trainer
    from search.tuning.resolve import TunedLookup, resolve_tuned
    from storage import open_storage

    explicit: dict[str, Any] = {k: v for k, v in (
        ("model", model), ("optimizer", optimizer), ("dataset", dataset)) if v is not None}
    explicit.update(overrides or {})
    entry = get_trainer(trainer)
    handle = open_storage(storage)
    try:
        return resolve_tuned(entry, explicit, TunedLookup(handle), scaling_rule=scaling_rule)
    finally:
        handle.close()  # the resolution holds no storage: give its connections back now


def promote(study_name: str, *, storage: str | None = None, extra_seeds: int = 2,
            force: bool = False, trial: int | None = None,
            on_line: Callable[[str], None] | None = None) -> PromotionReport:
    """``hpsearch defaults promote``: re-measure the study's best trial (or ``trial``) on
    ``extra_seeds`` more seeds and make it the tuned default if its mean beats the current row
    (or always, with ``force``). ``.promoted`` says whether it did, ``.reason`` why."""
    from search.study.stored import load_study, read_spec
    from search.tuning.promote import promote_best_trial
    from storage import open_storage

    handle = open_storage(storage)
    try:
        study = load_study(handle, study_name)
        spec = read_spec(study, where=handle.redacted)
        return promote_best_trial(study, spec, handle, extra_seeds=extra_seeds, force=force,
                                  trial_number=trial, emit=on_line or log.info)
    finally:
        handle.close()  # the report holds no storage: give its connections back now


def _as_spec(spec: str | Path | StudySpec | Mapping[str, Any]) -> StudySpec:
    from search.errors import SpecError

    if isinstance(spec, StudySpec):
        return spec
    if isinstance(spec, str | Path):
        return load_spec(spec)
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec), source="spec dict")
    raise SpecError(f"spec must be a YAML path, a StudySpec or a dict, not "
                    f"{type(spec).__name__}; e.g. launch('examples/quickstart.yaml')")


def _result(study: optuna.Study, url: str, *,
            promotion: PromotionReport | None = None) -> StudyResult:
    from search.report.progress import read_progress
    from storage import redact
    from storage.attrs import CONFIG_ATTR

    p = read_progress(study)
    best = p.best
    return StudyResult(
        study_name=study.study_name, storage=redact(url),
        best_trial=best.number if best is not None else None,
        best_value=best.value if best is not None else None,
        best_params=dict(best.params) if best is not None else {},
        best_config=dict(best.user_attrs.get(CONFIG_ATTR) or {}) if best is not None else {},
        counts={state: n for state, n in p.counts.items() if n}, study=study,
        pareto_front=tuple(t.number for t in p.pareto), promotion=promotion)
