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
    sampler: {name, seed, ...}, pruner: {name, ...}
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
    representative_params,
    to_config_changes,
)
from search.study.trainers import TrainerEntry, get_trainer

__all__ = [
    "StudySpec",  # defined in search/study/model.py; re-exported for its many readers
    "load_spec",
    "parse_spec",
    "with_overrides",
]

_PARAM_TYPES = ("float", "int", "categorical", "milestones")
_DIRECTIONS = ("maximize", "minimize")
_TOP_KEYS = ("name", "trainer", "objective", "success", "budget", "config", "space", "sampler",
             "pruner", "baselines", "pins", "description", "stop", "fault_tolerance")
_SCALED_WITH_EPOCHS = ("patience",)
_PRUNER_RESOURCE_KEYS = ("min_resource", "max_resource", "n_warmup_steps", "n_min_trials")


def with_overrides(spec: StudySpec, *, name: str | None = None, trials: int | None = None,
                   workers: int | None = None, epochs: int | None = None,
                   config: Mapping[str, Any] | None = None,
                   checkpoint_dir: str | None = None,
                   artifact_store: str | None = None) -> StudySpec:
    """``spec`` with command-line overrides, validated again. ``epochs`` shrinks or grows the
    whole study: the epoch budget, patience, the baselines' own epoch settings and the pruner's
    resources scale by the same factor (milestones are fractions and follow by themselves)."""
    raw = spec.to_dict()
    if name is not None:
        raw["name"] = name
    if trials is not None:
        raw["budget"]["trials"] = trials
    if workers is not None:
        raw["budget"]["workers"] = workers
    if config:
        raw["config"].update(config)
    if checkpoint_dir is not None:
        raw.setdefault("fault_tolerance", {})["checkpoint_dir"] = checkpoint_dir
    if artifact_store is not None:
        raw.setdefault("fault_tolerance", {})["artifact_store"] = artifact_store
    if epochs is not None:
        if epochs < 1:
            raise SpecError(f"--epochs must be >= 1, got {epochs}")
        factor = epochs / spec.epochs()
        raw["config"]["epochs"] = epochs
        for key in _SCALED_WITH_EPOCHS:
            if key in raw["config"]:
                raw["config"][key] = _scale(raw["config"][key], factor)
        for baseline, parsed in zip(raw["baselines"], spec.baselines, strict=True):
            bcfg = baseline.get("config", {})
            # Milestones stay the same fractions of the baseline's (rescaled) budget.
            own_epochs = spec.baseline_epochs(parsed)
            for p in spec.space:
                if p.type == "milestones":
                    baseline["params"][p.name] = [
                        m / own_epochs if isinstance(m, int) else m
                        for m in baseline["params"][p.name]]
            for key in ("epochs", *_SCALED_WITH_EPOCHS):
                if key in bcfg:
                    bcfg[key] = _scale(bcfg[key], factor)
        _scale_pruner(raw["pruner"], factor)
    return parse_spec(raw, source="overrides")


def _scale(value: Any, factor: float) -> int:
    return max(1, round(float(value) * factor))


def _scale_pruner(pruner: dict[str, Any], factor: float) -> None:
    for key in _PRUNER_RESOURCE_KEYS:
        if isinstance(pruner.get(key), int | float) and key != "n_min_trials":
            pruner[key] = _scale(pruner[key], factor)
    if isinstance(pruner.get("wrapped"), dict):
        _scale_pruner(pruner["wrapped"], factor)


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
    sampler, pruner = _sampler_and_pruner(p, top.get("sampler", {"name": "tpe"}),
                                          top.get("pruner", {"name": "none"}))
    if objective.metrics:
        _check_multi_objective(p, objective.metrics, pruner, target, gap)
    spec = StudySpec(
        name=name, trainer=trainer, metric=objective.metric, direction=objective.direction,
        report_metric=objective.report, target=target, metrics=objective.metrics,
        directions=objective.directions,
        max_train_val_gap=gap, n_trials=n_trials, workers=workers, config=config, space=space,
        sampler=sampler, pruner=pruner, baselines=(),
        description=str(top.get("description", "")),
        stop=_stop_rules(p, top.get("stop", {}), target),
        fault_tolerance=_fault_tolerance(p, top.get("fault_tolerance", {})),
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
    return _Objective(metric=metrics[0] if metrics else obj.get("metric", entry.default_metric),
                      direction=direction, report=obj.get("report", entry.default_report),
                      metrics=metrics, directions=directions)


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


def _budget(p: _Parser, raw: Any) -> tuple[int, int]:
    """Trials and workers."""
    budget = p.mapping(raw, "budget", ("trials", "workers"))
    return (p.integer(budget.get("trials", 20), "budget.trials", minimum=1),
            p.integer(budget.get("workers", 1), "budget.workers", minimum=1))


def _config_and_space(p: _Parser, entry: TrainerEntry, raw_config: Any, raw_space: Any
                      ) -> tuple[dict[str, Any], tuple[ParamSpec, ...]]:
    """The fixed settings and the search space, checked to build a trainer config together."""
    config = dict(p.mapping(raw_config, "config", None))
    space = tuple(_param(p, pname, pval, entry.field_names())
                  for pname, pval in p.mapping(raw_space, "space", None).items())
    if not space:
        p.fail("space", "the search space is empty; give at least one parameter")
    _check_config(p, entry, "config", config, space)
    return config, space


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
    return FaultTolerance(
        checkpoint_dir=None if directory is None else p.string(directory,
                                                               "fault_tolerance.checkpoint_dir"),
        artifact_store=None if store is None else p.string(store,
                                                           "fault_tolerance.artifact_store"),
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

    def integer(self, value: Any, where: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"expected an integer, got {value!r}")
        if value < minimum:
            self.fail(where, f"{value} is below the minimum {minimum}")
        return int(value)


def _check_config(p: _Parser, entry: TrainerEntry, where: str, config: Mapping[str, Any],
                  space: tuple[ParamSpec, ...]) -> None:
    """The config must build a valid trainer config together with any point of the space."""
    unknown = sorted(set(config) - entry.field_names())
    if unknown:
        p.fail(f"{where}.{unknown[0]}", f"unknown {entry.name} config key; valid keys: "
                                        f"{sorted(entry.field_names())}")
    try:
        epochs = int(config.get("epochs", entry.build_config().epochs))
        entry.build_config(config, to_config_changes(space, representative_params(space), epochs))
    except (SpecError, TypeError, ValueError) as exc:
        p.fail(where, str(exc))


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
