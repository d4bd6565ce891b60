"""The safety net for bad input no one listed (issue 15): hypothesis mutates a valid tiny spec
(wrong types, negative, zero and huge numbers, unknown keys, empty and inverted ranges, bad
sampler and pruner options, missing keys) and the launch flags (--trials, --workers, --epochs,
--extra-seeds, --set, --checkpoint-dir), runs ``hpsearch launch`` in-process against a database
that already holds the study, and checks: exit 2, exactly one line on stderr, no traceback, and
every row of every table unchanged.

A generated case that is valid after all is skipped, never run: the flags and spec are checked
first by the launch's own checks (``launch_spec``, the local-worker check), and only a case they
refuse is launched, so no worker or training ever starts."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from search.cli.launch_checks import check_local_workers, launch_spec
from search.cli.main import _parser, main
from search.errors import HpsearchError
from storage import StorageError
from tests.conftest import TINY_SPEC
from tests.search.test_bad_input import snapshot

# Where a mutation lands: every section of the spec, leaves and whole sections.
PATHS: list[tuple[Any, ...]] = [
    ("name",), ("trainer",), ("objective",), ("objective", "metric"), ("objective", "direction"),
    ("objective", "report"), ("success", "target"), ("success", "max_train_val_gap"),
    ("budget",), ("budget", "trials"), ("budget", "workers"), ("config",),
    ("config", "epochs"), ("config", "patience"), ("config", "width"), ("config", "batch_size"),
    ("config", "optimizer"), ("config", "amp"), ("config", "milestones"), ("config", "gamma"),
    ("config", "val_size"), ("config", "min_delta"), ("space",), ("space", "lr"),
    ("space", "lr", "low"), ("space", "lr", "high"), ("space", "lr", "log"),
    ("space", "lr", "type"), ("space", "gamma", "step"), ("space", "batch_size", "choices"),
    ("space", "milestones", "count"), ("space", "milestones", "low"),
    ("space", "milestones", "high"), ("space", "weight_decay", "low"), ("sampler",),
    ("sampler", "name"), ("sampler", "seed"), ("sampler", "n_startup_trials"),
    ("sampler", "n_ei_candidates"), ("sampler", "multivariate"), ("pruner",),
    ("pruner", "name"), ("pruner", "n_startup_trials"), ("pruner", "n_warmup_steps"),
    ("pruner", "interval_steps"), ("pruner", "n_min_trials"), ("stop",), ("stop", "at_target"),
    ("stop", "no_improvement_trials"), ("stop", "wall_clock_s"), ("fault_tolerance",),
    ("fault_tolerance", "heartbeat_interval_s"), ("fault_tolerance", "grace_period_s"),
    ("fault_tolerance", "max_retries"), ("fault_tolerance", "stall_factor"), ("baselines",),
    ("baselines", 0, "params", "lr"), ("baselines", 0, "params", "milestones"),
    ("baselines", 0, "config", "epochs"), ("baselines", 1, "name"), ("pins",),
]
PRUNER_OPTIONS = {
    "hyperband": ("min_resource", "max_resource", "reduction_factor", "bootstrap_count"),
    "successive_halving": ("min_resource", "reduction_factor", "min_early_stopping_rate"),
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "percentile": ("percentile", "n_startup_trials", "n_warmup_steps"),
    "threshold": ("lower", "upper", "n_warmup_steps"),
}
SAMPLER_OPTIONS = {
    "tpe": ("n_startup_trials", "n_ei_candidates", "seed", "multivariate", "prior_weight"),
    "random": ("seed",), "cmaes": ("sigma0", "n_startup_trials", "popsize", "seed"),
    "qmc": ("qmc_type", "scramble", "seed"), "gp": ("n_startup_trials", "seed"),
}
FIELDS = ("lr", "width", "batch_size", "epochs", "patience", "amp", "augment", "milestones",
          "weight_decay", "train_limit", "optimizer", "gamma", "seed", "no_such_field")

# No dots: a trainer named "x.y" is imported, and an arbitrary module must not be.
texts = st.text(alphabet=st.characters(blacklist_characters=".\x00",
                                       blacklist_categories=("Cs",)), max_size=8)
numbers = st.one_of(st.integers(min_value=-10**22, max_value=10**22),
                    st.sampled_from([0, -1, 1, 10**9 + 1, 10**21, 2**63]),
                    st.floats(allow_nan=True, allow_infinity=True))
bad_values = st.one_of(st.none(), st.booleans(), numbers, texts,
                       st.lists(st.one_of(st.integers(-5, 300), texts), max_size=4),
                       st.dictionaries(texts, st.integers(-3, 3), max_size=2))


@st.composite
def spec_mutation(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "unknown_key", "range",
                                 "sampler", "pruner"]))
    if kind == "range":  # an empty or inverted range
        name = draw(st.sampled_from(["lr", "gamma", "weight_decay", "milestones"]))
        return kind, (name, draw(st.sampled_from(["empty", "inverted"])))
    if kind in ("sampler", "pruner"):
        table = SAMPLER_OPTIONS if kind == "sampler" else PRUNER_OPTIONS
        name = draw(st.sampled_from(sorted(table)))
        return kind, (name, draw(st.sampled_from(table[name])), draw(bad_values))
    path = draw(st.sampled_from(PATHS))
    if kind == "unknown_key":
        return kind, (path, draw(texts.filter(bool)), draw(bad_values))
    return kind, (path, None if kind == "delete" else draw(bad_values))


@st.composite
def flag_mutation(draw: st.DrawFn) -> list[str]:
    flag = draw(st.sampled_from(["--trials", "--workers", "--epochs", "--extra-seeds", "--set",
                                 "--checkpoint-dir"]))
    if flag == "--set":
        value = draw(st.one_of(texts, numbers.map(str), st.sampled_from(["[a]", "[1,", "~"])))
        return [flag, f"{draw(st.sampled_from(FIELDS))}={value}"]
    if flag == "--checkpoint-dir":
        return [flag, "__FILE__"]
    return [flag, str(draw(st.one_of(st.integers(-10, 10), st.sampled_from(
        [0, -1, 10**6 + 1, 10**9 + 1, 10**21, 2**63, 10**4 + 1]))))]


def _apply(spec: dict[str, Any], mutation: tuple[str, Any]) -> None:
    kind, args = mutation
    if kind == "range":
        name, how = args
        body = spec["space"].get(name) if isinstance(spec.get("space"), dict) else None
        if not isinstance(body, dict) or "low" not in body:
            return  # an earlier mutation already replaced the space or this parameter
        body["high"] = body["low"] if how == "empty" else body["low"] / 2
        return
    if kind in ("sampler", "pruner"):
        name, option, value = args
        spec[kind] = {"name": name, option: value}
        return
    path = args[0]
    node: Any = spec
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
    last = path[-1]
    if kind == "delete":
        if isinstance(node, dict):
            node.pop(last, None)
    elif kind == "unknown_key":
        target = node.setdefault(last, {}) if isinstance(node, dict) else None
        if isinstance(target, dict):
            target[args[1]] = args[2]
    elif isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int)
                                    and last < len(node)):
        node[last] = args[1]


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A directory, and an SQLite database in it that already holds the tiny spec's study."""
    tmp = tmp_path_factory.mktemp("properties")
    db = tmp / "study.db"
    url = f"sqlite:///{db}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["db", "upgrade", "--storage", url]) == 0
    study = optuna.create_study(study_name=TINY_SPEC["name"], storage=url,
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 0.001, 1.0, log=True), n_trials=2)
    study.set_user_attr("mine", 1)
    (tmp / "a-file").write_text("not a directory")
    return tmp, url, db


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec_mutations=st.lists(spec_mutation(), max_size=2),
       flags=st.lists(flag_mutation(), max_size=2))
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
        existing: tuple[Path, str, Path], spec_mutations: list[tuple[str, Any]],
        flags: list[list[str]]) -> None:
    assume(spec_mutations or flags)
    tmp, url, db = existing
    spec = copy.deepcopy(TINY_SPEC)
    for mutation in spec_mutations:
        _apply(spec, mutation)
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    argv = ["launch", str(path), "--storage", url, "--no-promote"]
    for pair in flags:
        argv += [pair[0], str(tmp / "a-file") if pair[1] == "__FILE__" else pair[1]]

    # The launch's own checks first: a case they pass may be valid, and is never launched.
    args = _parser().parse_args(argv)
    try:
        checked, _ = launch_spec(args)
        check_local_workers(args, checked.workers)
    except (HpsearchError, StorageError):
        pass
    else:
        assume(False)

    before = snapshot(db)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue().strip()
    assert code == 2, text
    assert text.count("\n") == 0, f"expected one line, got:\n{text}"
    assert text.startswith("hpsearch: error: ") and "Traceback" not in text
    assert snapshot(db) == before
