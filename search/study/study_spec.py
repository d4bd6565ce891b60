"""Study specs: a YAML file loaded into a frozen, validated ``StudySpec``.

Layout of a spec file (see examples/round2.yaml):

    name, trainer                      study name; trainer key (``cifar``, ``multitask``)
    objective: metric, direction, report
                                       the trainer result key optimised, maximize/minimize, and
                                       the per-epoch metric reported for pruning (defaults: the
                                       trainer's, e.g. best_val_acc/val_acc, best_score/score)
    objective: metrics, directions     instead of metric/direction: a multi-objective study
                                       (for example accuracy and mIoU); Optuna cannot prune
                                       those, so the pruner must be none and there is no target
    success: target, max_train_val_gap the success criteria; the gap is a constraint the
                                       sampler sees (infeasible trials are never "best")
    budget: trials, workers            finished trials (COMPLETE + PRUNED) and parallel workers
    config: {...}                      fixed trainer settings over the code defaults
    space: {param: {type, ...}}        float/int (low, high, log, step), categorical (choices),
                                       milestones (count, low, high: fractions of the epochs)
    sampler: {name, seed, ...}, pruner: {name, ...}   without them, search/study/defaults.py's
    baselines: [{name, params, config}] trials enqueued first with exact values; milestones in
                                       epochs, other params in the space's units
    stop: {at_target, no_improvement_trials, wall_clock_s}
                                       study-level stop rules every worker obeys: the target
                                       (success.target) reached, K finished trials without a
                                       new best, a wall-clock budget from the study's creation
    fault_tolerance: {checkpoint_dir, artifact_store, heartbeat_interval_s, grace_period_s,
                      max_retries, stall_factor, stall_floor_s, stall_first_epoch_s}
                                       per-trial checkpoints in a directory every worker sees
                                       or an Optuna artifact store (path, file://, s3://BUCKET,
                                       gs://BUCKET; a retried trial resumes from them), and
                                       Optuna's heartbeat: a trial silent for the grace period
                                       is failed and retried; a trial that reports no
                                       epoch for stall_factor x its worker's slowest epoch
                                       is failed as stalled
    pruning_check: {raise_min_resource}
                                       true: once the epoch the pruner first decides at
                                       proves not to predict final values, move it to the
                                       first epoch that does

Every error names the file, the key path and the fix, in one line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from search.errors import SpecError
from search.study.defaults import (
    default_pruner,
    default_sampler,
    first_decision_epoch,
    is_default_pruner,
)
from search.study.field_types import field_types
from search.study.model import (
    BaselineSpec,
    ComponentSpec,
    FaultTolerance,
    ParamSpec,
    StopRules,
    StudySpec,
)
from search.study.space import (
    baseline_to_optuna_params,
    milestone_epochs,
    milestones_fit,
    representative_params,
    rescale_epoch_fields,
    to_config_changes,
)
from search.study.trainers import TrainerEntry, get_trainer

__all__ = [
    "Overridden",
    "StudySpec",  # defined in search/study/model.py; re-exported for its many readers
    "apply_overrides",
    "load_spec",
    "parse_spec",
    "with_overrides",
]

_PARAM_TYPES = ("float", "int", "categorical", "milestones")
_DIRECTIONS = ("maximize", "minimize")
_TOP_KEYS = ("name", "trainer", "objective", "success", "budget", "config", "space", "sampler",
             "pruner", "baselines", "pins", "description", "stop", "fault_tolerance",
             "pruning_check")
# Rescaling floors (``--epochs``). Early stopping on the first dip is no early stopping, and a
# pruner that decides at epoch 1 decides on noise (issue 13: patience 35 -> 1 and min_resource
# 10 -> 1 at 8 epochs ended every trial early). So a rescaled patience stays at least
# PATIENCE_FLOOR epochs, and a pruner's first decision (min_resource; n_warmup_steps) at
# least max(RESOURCE_FLOOR, 10% of the epochs rounded up: first_decision_epoch); each floor
# capped at the epoch budget, and never above what the spec itself asked for at full scale (a
# spec that prunes from epoch 1 keeps doing so). A trainer may declare its own floors
# (SEARCH.epoch_floors).
PATIENCE_FLOOR = 3
RESOURCE_FLOOR = 2
MAX_EPOCHS = 10**6


class Overridden(NamedTuple):
    """A spec with command-line overrides, and the line saying what ``--epochs`` rescaled
    (None without ``--epochs``): ``rescaled to 8 epochs: patience 35 -> 3 (floor 3), ...``."""

    spec: StudySpec
    rescaled: str | None


def with_overrides(spec: StudySpec, *, name: str | None = None, trials: int | None = None,
                   workers: int | None = None, epochs: int | None = None,
                   config: Mapping[str, Any] | None = None,
                   checkpoint_dir: str | None = None,
                   artifact_store: str | None = None) -> StudySpec:
    """``spec`` with command-line overrides, validated again (``apply_overrides``)."""
    return apply_overrides(spec, name=name, trials=trials, workers=workers, epochs=epochs,
                           config=config, checkpoint_dir=checkpoint_dir,
                           artifact_store=artifact_store).spec


def apply_overrides(spec: StudySpec, *, name: str | None = None, trials: int | None = None,
                    workers: int | None = None, epochs: int | None = None,
                    config: Mapping[str, Any] | None = None,
                    checkpoint_dir: str | None = None,
                    artifact_store: str | None = None) -> Overridden:
    """``spec`` with command-line overrides, validated again. ``epochs`` shrinks or grows the
    whole study: the epoch budget, patience, the baselines' own epoch settings, fixed
    milestones and the pruner's resources scale by the same factor, within the floors above
    (searched milestones are fractions and follow by themselves, kept distinct)."""
    _check_flag("--trials", trials, MAX_TRIALS)
    _check_flag("--workers", workers, MAX_WORKERS)
    _check_flag("--epochs", epochs, MAX_EPOCHS)
    raw = spec.to_dict()
    if name is not None:
        raw["name"] = name
    if trials is not None:
        raw["budget"]["trials"] = trials
    if workers is not None:
        raw["budget"]["workers"] = workers
    if checkpoint_dir is not None:
        raw.setdefault("fault_tolerance", {})["checkpoint_dir"] = checkpoint_dir
    if artifact_store is not None:
        raw.setdefault("fault_tolerance", {})["artifact_store"] = artifact_store
    line = None
    if epochs is not None:  # before --set: a value set explicitly is used as given
        notes = [n for n in _rescale(raw, spec, epochs)
                 if n.split(" ")[0] not in (config or {})]
        line = f"rescaled to {epochs} epochs" + (": " + "; ".join(notes) if notes else "")
    if config:
        raw["config"].update({k: list(v) if isinstance(v, tuple) else v
                              for k, v in config.items()})
    return Overridden(parse_spec(raw, source="command-line overrides"), line)


def _check_flag(flag: str, value: int | None, maximum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise SpecError(f"{flag} {value} is out of range; give a whole number from 1 to "
                        f"{maximum:,}".replace(",", "_"))


def _rescale(raw: dict[str, Any], spec: StudySpec, epochs: int) -> list[str]:
    """Rescale ``raw`` (``spec`` as a dict) to ``epochs``; what changed, as short notes."""
    old = spec.epochs()
    factor = epochs / old
    entry = get_trainer(spec.trainer)
    floors = entry.info.epoch_floors  # a TrainerInfo always has them ({} by default)
    notes: list[str] = []
    raw["config"]["epochs"] = epochs
    searched = {p.name for p in spec.space}
    _rescale_fields(raw["config"], old, epochs, searched, floors, notes)
    multi = spec.multi_objective
    if is_default_pruner(raw["pruner"], old, multi_objective=multi):
        new_pruner = default_pruner(epochs, multi_objective=multi)
        if raw["sampler"] == default_sampler(raw["pruner"]["name"]):
            raw["sampler"] = default_sampler(new_pruner["name"])
        if new_pruner != raw["pruner"]:
            notes.append(f"the default pruner at {epochs} epochs: {_short(new_pruner)}")
        raw["pruner"] = new_pruner
    else:
        _rescale_pruner(raw["pruner"], factor, epochs, notes)
    _check_milestones_fit(spec, epochs, epochs, "")
    for baseline, parsed in zip(raw["baselines"], spec.baselines, strict=True):
        bcfg = baseline.get("config", {})
        # Milestones stay the same fractions of the baseline's (rescaled) budget.
        own_epochs = spec.baseline_epochs(parsed)
        for p in spec.space:
            if p.type == "milestones":
                baseline["params"][p.name] = [
                    m / own_epochs if isinstance(m, int) else m
                    for m in baseline["params"][p.name]]
        new_own = epochs
        own: list[str] = []
        if "epochs" in bcfg:
            new_own = max(1, round(bcfg["epochs"] * factor))
            own.append(f"epochs {bcfg['epochs']} -> {new_own}")
            bcfg["epochs"] = new_own
        _rescale_fields(bcfg, own_epochs, new_own, searched, floors, own)
        if own:
            notes.append(f"baseline {parsed.name}: " + ", ".join(own))
        _check_milestones_fit(spec, epochs, new_own, f"baseline {parsed.name} would run "
                                                     f"{new_own} epochs: ")
    notes.extend(f"searched {p.name}: {p.count} distinct epochs within 1-{epochs - 1}"
                 for p in spec.space if p.type == "milestones")
    return notes


def _check_milestones_fit(spec: StudySpec, flag: int, epochs: int, what: str) -> None:
    for p in spec.space:
        problem = milestones_fit(p.count, epochs) if p.type == "milestones" else None
        if problem is not None:
            raise SpecError(f"--epochs {flag}: {what}space.{p.name}: {problem}")


def _rescale_fields(layer: dict[str, Any], old: int, new: int, searched: set[str],
                    floors: Mapping[str, int], notes: list[str]) -> None:
    """Patience (within its floor) and fixed milestones of one config layer (the spec's, or a
    baseline's own), from ``old`` to ``new`` epochs."""
    if "patience" in layer and not isinstance(layer["patience"], bool) \
            and isinstance(layer["patience"], int):
        asked = layer["patience"]
        floor = min(int(floors.get("patience", PATIENCE_FLOOR)), new, asked)
        scaled = max(1, round(asked * new / old))
        layer["patience"] = max(scaled, floor)
        used = f" (floor {floor})" if scaled < floor else ""
        notes.append(f"patience {asked} -> {layer['patience']}{used}")
    milestones = layer.get("milestones")
    if "milestones" not in searched and isinstance(milestones, list) and milestones \
            and all(isinstance(m, int) and not isinstance(m, bool) for m in milestones):
        scaled_ms = list(milestone_epochs([m / old for m in milestones], new))
        layer["milestones"] = scaled_ms
        notes.append(f"milestones {milestones} -> {scaled_ms}")


def _short(component: Mapping[str, Any]) -> str:
    options = ", ".join(f"{k} {v}" for k, v in component.items() if k != "name")
    return f"{component['name']}" + (f" ({options})" if options else "")


def _rescale_pruner(pruner: dict[str, Any], factor: float, epochs: int, notes: list[str],
                    label: str = "") -> None:
    name = f"{label}{pruner['name']}"
    resource_floor = min(epochs, max(RESOURCE_FLOOR, first_decision_epoch(epochs)))
    for key in ("min_resource", "n_warmup_steps"):
        value = pruner.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        floor = min(resource_floor, int(value))  # never above what the spec asked for
        scaled = round(float(value) * factor)
        pruner[key] = max(scaled, floor)
        used = f" (floor {floor})" if scaled < floor else ""
        notes.append(f"{name} {key} {value} -> {pruner[key]}{used}")
    value = pruner.get("max_resource")
    if isinstance(value, int | float) and not isinstance(value, bool):
        least = int(pruner.get("min_resource", 1)) if isinstance(
            pruner.get("min_resource"), int) else 1
        pruner["max_resource"] = max(least, round(float(value) * factor))
        notes.append(f"{name} max_resource {value} -> {pruner['max_resource']}")
    if isinstance(pruner.get("wrapped"), dict):
        _rescale_pruner(pruner["wrapped"], factor, epochs, notes, label=f"{name}'s ")


def load_spec(path: str | Path) -> StudySpec:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"spec file {str(path)!r} does not exist; pass the path of a study "
                        "spec such as examples/quickstart.yaml") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(path)!r}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}: malformed YAML{where}: {problem}; fix the syntax there"
                        ) from None
    return parse_spec(raw, source=str(path))


def parse_spec(raw: Any, *, source: str = "<spec>") -> StudySpec:
    """``raw`` (a spec file's YAML) as a validated StudySpec; a SpecError names ``source``, the
    key path and the fix. The sections are read in the order the errors are reported."""
    p = _Parser(source)
    top = p.mapping(raw, "", _TOP_KEYS, required=("name", "trainer", "space"))
    name = p.string(top["name"], "name")
    trainer = p.string(top["trainer"], "trainer")
    entry = _trainer(p, trainer)
    objective = _objective(p, top.get("objective", {}), entry)
    target, gap = _success(p, top.get("success", {}))
    n_trials, workers = _budget(p, top.get("budget", {}))
    config, space = _config_and_space(p, entry, top.get("config", {}), top["space"])
    # Without a section, the measured default (search/study/defaults.py); a malformed pruner
    # section is reported by _sampler_and_pruner whatever sampler it implies here.
    raw_pruner = top["pruner"] if "pruner" in top else default_pruner(
        entry.epoch_budget(config), multi_objective=bool(objective.metrics))
    raw_sampler = top["sampler"] if "sampler" in top else default_sampler(str(
        raw_pruner.get("name") if isinstance(raw_pruner, dict) else raw_pruner))
    sampler, pruner = _sampler_and_pruner(p, raw_sampler, raw_pruner)
    if objective.metrics:
        _check_multi_objective(p, objective.metrics, pruner, target, gap)
    _rehearse(p, sampler, pruner, space, objective.directions or (objective.direction,))
    spec = StudySpec(
        name=name, trainer=trainer, metric=objective.metric, direction=objective.direction,
        report_metric=objective.report, target=target, metrics=objective.metrics,
        directions=objective.directions,
        max_train_val_gap=gap, n_trials=n_trials, workers=workers, config=config, space=space,
        sampler=sampler, pruner=pruner, baselines=(),
        description=str(top.get("description", "")),
        stop=_stop_rules(p, top.get("stop", {}), target),
        fault_tolerance=_fault_tolerance(p, top.get("fault_tolerance", {})),
        raise_min_resource=_pruning_check(p, top.get("pruning_check", {})),
        pins=tuple(p.string(ref, f"pins[{i}]")
                   for i, ref in enumerate(p.sequence(top.get("pins", []), "pins"))),
    )
    return _with_baselines(p, spec, entry, top.get("baselines", []))


def _trainer(p: _Parser, trainer: str) -> TrainerEntry:
    try:
        return get_trainer(trainer)
    except SpecError as exc:
        raise SpecError(f"{p.source}: trainer: {exc}") from None


class _Objective(NamedTuple):
    metric: str
    direction: str
    report: str
    metrics: tuple[str, ...]  # a multi-objective study; empty for a single objective
    directions: tuple[str, ...]


def _objective(p: _Parser, raw: Any, entry: TrainerEntry) -> _Objective:
    obj = p.mapping(raw, "objective", ("metric", "direction", "report", "metrics", "directions"))
    metrics, directions = _objectives(p, obj)
    direction = directions[0] if directions else obj.get("direction", "maximize")
    if direction not in _DIRECTIONS:
        p.fail("objective.direction", f"unknown direction {direction!r}; expected one of "
                                      f"{list(_DIRECTIONS)}")
    objective = _Objective(
        metric=metrics[0] if metrics else p.string(obj.get("metric", entry.default_metric),
                                                   "objective.metric"),
        direction=direction,
        report=p.string(obj.get("report", entry.default_report), "objective.report"),
        metrics=metrics, directions=directions)
    _check_metric_names(p, entry, objective)
    return objective


def _check_metric_names(p: _Parser, entry: TrainerEntry, objective: _Objective) -> None:
    """The objective must be a result the trainer returns and the pruned-on metric one it
    reports every epoch (its SEARCH declaration), or every trial would score nothing."""
    info = entry.info
    named = ([(f"objective.metrics[{i}]", m) for i, m in enumerate(objective.metrics)]
             if objective.metrics else [("objective.metric", objective.metric)])
    for where, metric in named:
        if metric not in info.metrics:
            p.fail(where, f"trainer {entry.name!r} never returns {metric!r}; use one of "
                          f"{list(info.metrics)}")
    if not objective.metrics and objective.report not in info.reports:
        p.fail("objective.report", f"trainer {entry.name!r} never reports {objective.report!r} "
                                   f"after an epoch; use one of {list(info.reports)}")


def _success(p: _Parser, raw: Any) -> tuple[float | None, float | None]:
    """The target and the largest train-val gap, each None when not given."""
    success = p.mapping(raw, "success", ("target", "max_train_val_gap"))
    target = p.number(success["target"], "success.target") if "target" in success else None
    gap = None
    if "max_train_val_gap" in success:
        gap = p.number(success["max_train_val_gap"], "success.max_train_val_gap")
        if not 0 < gap <= 1:
            p.fail("success.max_train_val_gap", f"{gap} is not a fraction in (0, 1]; write "
                                                "8 points as 0.08")
    return target, gap


# The most trials a budget may count, and workers a study may run: far beyond any real study,
# and small enough for every storage's integer columns and for arithmetic on them.
MAX_TRIALS = 10**9
MAX_WORKERS = 10**4


def _budget(p: _Parser, raw: Any) -> tuple[int, int]:
    """Trials and workers."""
    budget = p.mapping(raw, "budget", ("trials", "workers"))
    return (p.integer(budget.get("trials", 20), "budget.trials", minimum=1, maximum=MAX_TRIALS),
            p.integer(budget.get("workers", 1), "budget.workers", minimum=1,
                      maximum=MAX_WORKERS))


def _config_and_space(p: _Parser, entry: TrainerEntry, raw_config: Any, raw_space: Any
                      ) -> tuple[dict[str, Any], tuple[ParamSpec, ...]]:
    """The fixed settings and the search space, checked to build a trainer config together."""
    config = dict(p.mapping(raw_config, "config", None))
    space = tuple(_param(p, pname, pval, entry.field_names())
                  for pname, pval in p.mapping(raw_space, "space", None).items())
    if not space:
        p.fail("space", "the search space is empty; give at least one parameter")
    _check_space_types(p, entry, space)
    _check_config(p, entry, "config", config, space)
    return config, space


def _check_space_types(p: _Parser, entry: TrainerEntry, space: tuple[ParamSpec, ...]) -> None:
    """Each parameter searches values of its field's type: every categorical choice fits it
    (``batch_size: [32, 'big', null]`` names 'big'), a float range is not searched for an int
    field, nor a number for a text or true/false field."""
    types = field_types(entry.config_cls)
    for param in space:
        field = types[param.name]
        where = f"space.{param.name}"
        if param.type == "categorical":
            for choice in param.choices:
                if not field.fits(choice):
                    p.fail(f"{where}.choices", f"{choice!r} is not {field.describe()}, which "
                                               f"{param.name} takes; list only such values, "
                                               f"e.g. {field.example()}")
        elif param.type in ("float", "int") and field.kind not in ("float", "int", "any"):
            p.fail(f"{where}.type", f"{param.name} takes {field.describe()}, not a number "
                                    "from a range; search it as type: categorical")
        elif param.type == "float" and field.kind == "int":
            p.fail(f"{where}.type", f"{param.name} takes {field.describe()}; search it as "
                                    "type: int")


def _sampler_and_pruner(p: _Parser, raw_sampler: Any, raw_pruner: Any
                        ) -> tuple[ComponentSpec, ComponentSpec]:
    """Both checked by building them, so a wrong option fails here, not in a worker."""
    # Imported here: samplers.py loads Optuna, and importing search loads none.
    from search.study.samplers import PRUNER_NAMES, SAMPLER_NAMES, build_pruner, build_sampler

    sampler = _component(p, raw_sampler, "sampler", SAMPLER_NAMES)
    pruner = _component(p, raw_pruner, "pruner", PRUNER_NAMES)
    try:
        build_sampler(sampler)
        build_pruner(pruner)
    except SpecError as exc:
        raise SpecError(f"{p.source}: {exc}") from None
    return sampler, pruner


def _rehearse(p: _Parser, sampler: ComponentSpec, pruner: ComponentSpec,
              space: tuple[ParamSpec, ...], directions: tuple[str, ...]) -> None:
    """Both run on a few in-memory trials: an option Optuna checks only then fails here."""
    from search.study.samplers import rehearse

    try:
        rehearse(sampler, pruner, space, directions)
    except SpecError as exc:
        raise SpecError(f"{p.source}: {exc}") from None


def _check_multi_objective(p: _Parser, metrics: tuple[str, ...], pruner: ComponentSpec,
                           target: float | None, gap: float | None) -> None:
    if pruner.name != "none":
        p.fail("pruner", f"Optuna cannot prune a multi-objective study ({list(metrics)}); "
                         "set pruner: {name: none}, or optimise one metric (for the "
                         "multitask trainer, best_score) to prune")
    if target is not None or gap is not None:
        p.fail("success", "a multi-objective study has no single target or gap "
                          "constraint; remove success, or optimise one metric")


def _with_baselines(p: _Parser, spec: StudySpec, entry: TrainerEntry, raw: Any) -> StudySpec:
    """``spec`` with its baselines, each checked to be a point of the space."""
    baselines = tuple(_baseline(p, i, b, spec, entry)
                      for i, b in enumerate(p.sequence(raw, "baselines")))
    if len({b.name for b in baselines}) != len(baselines):
        p.fail("baselines", "two baselines share a name; give each a distinct name")
    if len(baselines) > spec.n_trials:
        p.fail("budget.trials", f"{spec.n_trials} trials cannot hold the {len(baselines)} "
                                f"baselines; use at least {len(baselines)} trials")
    # Milestone fractions are turned into epochs by the objective; check the round trip now.
    spec = dataclasses.replace(spec, baselines=baselines)
    for b in baselines:
        baseline_to_optuna_params(spec, b)
    return spec


def _stop_rules(p: _Parser, raw: Any, target: float | None) -> StopRules:
    stop = p.mapping(raw, "stop", ("at_target", "no_improvement_trials", "wall_clock_s"))
    at_target = stop.get("at_target", False)
    if not isinstance(at_target, bool):
        p.fail("stop.at_target", f"expected true or false, got {at_target!r}")
    if at_target and target is None:
        p.fail("stop.at_target", "needs success.target; set the target or remove at_target")
    k = stop.get("no_improvement_trials")
    wall = stop.get("wall_clock_s")
    return StopRules(
        at_target=at_target,
        no_improvement_trials=None if k is None else p.integer(k, "stop.no_improvement_trials",
                                                               minimum=1),
        wall_clock_s=None if wall is None else _positive(p, wall, "stop.wall_clock_s"))


def _fault_tolerance(p: _Parser, raw: Any) -> FaultTolerance:
    ft = p.mapping(raw, "fault_tolerance", ("checkpoint_dir", "artifact_store",
                                            "heartbeat_interval_s", "grace_period_s",
                                            "max_retries", "stall_factor", "stall_floor_s",
                                            "stall_first_epoch_s"))
    defaults = FaultTolerance()
    interval = p.integer(ft.get("heartbeat_interval_s", defaults.heartbeat_interval_s),
                         "fault_tolerance.heartbeat_interval_s", minimum=1)
    grace = p.integer(ft.get("grace_period_s", defaults.grace_period_s),
                      "fault_tolerance.grace_period_s", minimum=1)
    if grace <= interval:
        p.fail("fault_tolerance.grace_period_s", f"{grace} s must exceed the heartbeat interval "
                                                 f"({interval} s), or live trials look dead")
    directory, store = ft.get("checkpoint_dir"), ft.get("artifact_store")
    if directory is not None:
        _not_a_file(p, p.string(directory, "fault_tolerance.checkpoint_dir"),
                    "fault_tolerance.checkpoint_dir")
    if store is not None and "://" not in p.string(store, "fault_tolerance.artifact_store"):
        _not_a_file(p, store, "fault_tolerance.artifact_store")
    elif store is not None and store.startswith("file://"):
        _not_a_file(p, store.removeprefix("file://"), "fault_tolerance.artifact_store")
    return FaultTolerance(
        checkpoint_dir=directory, artifact_store=store,
        heartbeat_interval_s=interval, grace_period_s=grace,
        max_retries=p.integer(ft.get("max_retries", defaults.max_retries),
                              "fault_tolerance.max_retries", minimum=0),
        stall_factor=_non_negative(p, ft.get("stall_factor", defaults.stall_factor),
                                   "fault_tolerance.stall_factor"),
        stall_floor_s=_positive(p, ft.get("stall_floor_s", defaults.stall_floor_s),
                                "fault_tolerance.stall_floor_s"),
        stall_first_epoch_s=_positive(p, ft.get("stall_first_epoch_s",
                                                defaults.stall_first_epoch_s),
                                      "fault_tolerance.stall_first_epoch_s"))


def _not_a_file(p: _Parser, directory: str, where: str) -> None:
    path = Path(directory).expanduser()
    if path.exists() and not path.is_dir():
        p.fail(where, f"{directory!r} is a file, not a directory; name a directory every "
                      "worker sees (it is created when missing)")


def _pruning_check(p: _Parser, raw: Any) -> bool:
    check = p.mapping(raw, "pruning_check", ("raise_min_resource",))
    value = check.get("raise_min_resource", False)
    if not isinstance(value, bool):
        p.fail("pruning_check.raise_min_resource", f"expected true or false, got {value!r}")
    return bool(value)


def _non_negative(p: _Parser, value: Any, where: str) -> float:
    number = p.number(value, where)
    if number < 0:
        p.fail(where, f"{number} must be >= 0 (0 turns the check off)")
    return number


def _positive(p: _Parser, value: Any, where: str) -> float:
    number = p.number(value, where)
    if number <= 0:
        p.fail(where, f"{number} must be > 0")
    return number


def _objectives(p: _Parser, obj: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metrics and directions of a multi-objective study; empty for a single objective."""
    if "metrics" not in obj:
        if "directions" in obj:
            p.fail("objective.directions", "directions needs metrics beside it; use direction "
                                           "for a single metric")
        return (), ()
    for key in ("metric", "direction", "report"):
        if key in obj:
            p.fail(f"objective.{key}", "give either metric/direction/report (one objective) "
                                       "or metrics/directions (several), not both")
    metrics = tuple(p.string(m, f"objective.metrics[{i}]")
                    for i, m in enumerate(p.sequence(obj["metrics"], "objective.metrics")))
    if len(metrics) < 2 or len(set(metrics)) != len(metrics):
        p.fail("objective.metrics", f"expected two or more distinct metrics, got "
                                    f"{list(metrics)}; use metric for a single one")
    raw = p.sequence(obj.get("directions", ["maximize"] * len(metrics)), "objective.directions")
    directions = tuple(str(d) for d in raw)
    if len(directions) != len(metrics):
        p.fail("objective.directions", f"{len(directions)} directions for {len(metrics)} "
                                       "metrics; give one per metric")
    for i, d in enumerate(directions):
        if d not in _DIRECTIONS:
            p.fail(f"objective.directions[{i}]", f"unknown direction {d!r}; expected one of "
                                                 f"{list(_DIRECTIONS)}")
    return metrics, directions


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> None:
        prefix = f"{self.source}: {where}: " if where else f"{self.source}: "
        raise SpecError(prefix + message)

    def mapping(self, value: Any, where: str, allowed: Sequence[str] | None,
                required: Sequence[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where or "top level", f"expected a mapping, got {type(value).__name__} "
                                            f"{value!r}")
        for key in value:
            if not isinstance(key, str):
                self.fail(where, f"key {key!r} is not a string")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                self.fail(where or "top level", f"unknown key {unknown[0]!r}; expected one of "
                                                f"{sorted(allowed)}")
        for key in required:
            if key not in value:
                self.fail(where or "top level", f"missing required key {key!r}")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {type(value).__name__} {value!r}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"expected a non-empty string, got {value!r}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, f"expected a number, got {value!r} (write 1e-4 as 1.0e-4 in YAML)")
        if not math.isfinite(value):
            self.fail(where, f"expected a finite number, got {value!r}")
        return float(value)

    def integer(self, value: Any, where: str, *, minimum: int,
                maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"expected an integer, got {value!r}")
        if value < minimum:
            self.fail(where, f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            self.fail(where, f"{value} is above the maximum {maximum}")
        return int(value)


def _epoch_defaults(entry: TrainerEntry, epochs: int) -> dict[str, Any]:
    """The code default of every field counted in epochs, rescaled to ``epochs``."""
    code = entry.build_config()
    values = {name: getattr(code, name) for name in entry.info.epoch_fields}
    rescale_epoch_fields(entry, values, int(code.epochs), epochs, [])
    return values


def _check_config(p: _Parser, entry: TrainerEntry, where: str, config: Mapping[str, Any],
                  space: tuple[ParamSpec, ...]) -> None:
    """The config must build a valid trainer config together with any point of the space."""
    unknown = sorted(set(config) - entry.field_names())
    if unknown:
        p.fail(f"{where}.{unknown[0]}", f"unknown {entry.name} config key; valid keys: "
                                        f"{sorted(entry.field_names())}")
    types = field_types(entry.config_cls)
    for key, value in config.items():
        if not types[key].fits(value):
            p.fail(f"{where}.{key}", f"{value!r} is not {types[key].describe()}, which {key} "
                                     f"takes; e.g. {key}: {types[key].example()}")
    representative = representative_params(space)
    try:
        epochs = int(config.get("epochs", entry.build_config().epochs))
        # The code's own milestones, patience, ... follow the budget, as resolution does.
        defaults = _epoch_defaults(entry, epochs)
        entry.build_config(defaults, config, to_config_changes(space, representative, epochs))
    except (SpecError, TypeError, ValueError) as exc:
        p.fail(where, str(exc))
    for param in space:
        problem = milestones_fit(param.count, epochs) if param.type == "milestones" else None
        if problem is not None:
            p.fail(f"space.{param.name}.count" if where == "config" else where, problem)
    if where != "config":
        return  # a baseline sets every parameter itself
    for param in space:  # every choice must make a valid config, not only the first
        for choice in param.choices[1:]:
            try:
                entry.build_config(defaults, config, to_config_changes(
                    space, {**representative, param.name: choice}, epochs))
            except (SpecError, TypeError, ValueError) as exc:
                p.fail(f"space.{param.name}.choices", f"{choice!r}: {exc}")


def _param(p: _Parser, name: str, raw: Any, fields: set[str]) -> ParamSpec:
    where = f"space.{name}"
    if name not in fields:
        p.fail(where, f"{name!r} is not a trainer config key; valid keys: {sorted(fields)}")
    body = p.mapping(raw, where, ("type", "low", "high", "log", "step", "choices", "count"),
                     required=("type",))
    ptype = body["type"]
    if ptype not in _PARAM_TYPES:
        p.fail(f"{where}.type", f"unknown type {ptype!r}; expected one of {list(_PARAM_TYPES)}")
    if ptype == "categorical":
        choices = p.sequence(body.get("choices"), f"{where}.choices")
        if not choices:
            p.fail(f"{where}.choices", "empty choices; list at least one value")
        if len(set(map(repr, choices))) != len(choices):
            p.fail(f"{where}.choices", f"duplicate values in {choices}; list each value once")
        extra = sorted(set(body) - {"type", "choices"})
        if extra:
            p.fail(where, f"key {extra[0]!r} does not apply to a categorical parameter")
        return ParamSpec(name, ptype, choices=tuple(choices))
    if name == "milestones" and ptype != "milestones":
        p.fail(f"{where}.type", "milestones are searched as type 'milestones' (count, low, high)")
    for key in ("low", "high"):
        if key not in body:
            p.fail(where, f"missing {key!r}; a {ptype} parameter needs low and high")
    low = p.number(body["low"], f"{where}.low")
    high = p.number(body["high"], f"{where}.high")
    if not low < high:
        p.fail(where, f"empty or inverted range: low {low} >= high {high}; give low < high")
    log = bool(body.get("log", False))
    if log and low <= 0:
        p.fail(f"{where}.low", f"a log-scale range needs low > 0, got {low}")
    step = p.number(body["step"], f"{where}.step") if "step" in body else None
    if step is not None and log:
        p.fail(where, "step and log cannot be combined (Optuna samples one or the other)")
    if ptype == "milestones":
        count = p.integer(body.get("count", 3), f"{where}.count", minimum=1)
        if not 0 < low < high < 1:
            p.fail(where, f"milestones are fractions of the epoch budget: need 0 < low < high "
                          f"< 1, got low {low}, high {high}")
        if log or step is not None:
            p.fail(where, "milestones take count, low and high only")
        return ParamSpec(name, ptype, low=low, high=high, count=count)
    if "count" in body:
        p.fail(f"{where}.count", "count applies to milestones only")
    if ptype == "int" and not (low.is_integer() and high.is_integer()):
        p.fail(where, f"an int parameter needs integer bounds, got {low} and {high}")
    return ParamSpec(name, ptype, low=low, high=high, log=log, step=step)


def _component(p: _Parser, raw: Any, where: str, names: Sequence[str]) -> ComponentSpec:
    if isinstance(raw, str):
        raw = {"name": raw}
    body = dict(p.mapping(raw, where, None, required=("name",)))
    name = body.pop("name")
    if name not in names:
        p.fail(f"{where}.name", f"unknown {where} {name!r}; expected one of {list(names)}")
    if "wrapped" in body:
        body["wrapped"] = _component(p, body["wrapped"], f"{where}.wrapped", names).to_dict()
    return ComponentSpec(name, body)


def _baseline(p: _Parser, index: int, raw: Any, spec: StudySpec, entry: TrainerEntry
              ) -> BaselineSpec:
    where = f"baselines[{index}]"
    body = p.mapping(raw, where, ("name", "params", "config"), required=("name", "params"))
    name = p.string(body["name"], f"{where}.name")
    params = p.mapping(body["params"], f"{where}.params", None)
    space_names = [ps.name for ps in spec.space]
    missing = [n for n in space_names if n not in params]
    extra = [n for n in params if n not in space_names]
    if missing or extra:
        p.fail(f"{where}.params", f"must set exactly the space's parameters {space_names}; "
                                  f"missing {missing}, not in the space {extra}")
    config = dict(p.mapping(body.get("config", {}), f"{where}.config", None))
    _check_config(p, entry, f"{where}.config", {**spec.config, **config}, spec.space)
    overlap = sorted(set(config) & set(space_names))
    if overlap:
        p.fail(f"{where}.config", f"{overlap} are search parameters; set them under params")
    return BaselineSpec(name, dict(params), config)
