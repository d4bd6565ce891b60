from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.errors import SpecError
from search.study.space import baseline_to_optuna_params
from search.study.study_spec import load_spec, parse_spec, with_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_round2_example_encodes_the_analysis() -> None:
    spec = load_spec(ROOT / "examples" / "round2.yaml")
    space = {p.name: p for p in spec.space}
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (0.005, 0.2, True)
    assert space["lr"].contains(0.05)
    assert (space["gamma"].low, space["gamma"].high) == (0.1, 0.5)
    assert (space["weight_decay"].low, space["weight_decay"].high) == (1e-5, 1e-3)
    assert space["weight_decay"].log
    assert space["batch_size"].choices == (64, 96, 128, 256)
    assert space["milestones"].type == "milestones" and space["milestones"].count == 3
    assert spec.config["epochs"] == 250 and spec.config["patience"] == 35
    assert spec.config["min_delta"] == 0.0005
    assert spec.target == 0.88 and spec.max_train_val_gap == 0.08
    round1, round2 = spec.baselines
    assert (round1.name, round2.name) == ("round1", "round2")
    assert round1.params == {"lr": 0.01, "gamma": 0.1, "weight_decay": 1e-4, "batch_size": 128,
                             "milestones": [60, 120, 160]}
    assert round1.config == {"epochs": 200, "patience": 30, "min_delta": 0.001}
    assert round2.params == {"lr": 0.05, "gamma": 0.2, "weight_decay": 5e-4, "batch_size": 96,
                             "milestones": [60, 120, 160]}
    assert spec.baseline_epochs(round2) == 250
    assert baseline_to_optuna_params(spec, round1)["milestones_1"] == pytest.approx(0.3)
    assert baseline_to_optuna_params(spec, round2)["milestones_3"] == pytest.approx(0.64)


def test_canonical_form_round_trips(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    assert parse_spec(spec.to_dict()) == spec


def test_epochs_override_rescales_the_whole_study() -> None:
    spec = with_overrides(load_spec(ROOT / "examples" / "round2.yaml"), epochs=25)
    assert spec.config["epochs"] == 25 and spec.config["patience"] == 4  # 35 * 25/250
    round1 = spec.baselines[0]
    assert round1.config["epochs"] == 20 and round1.config["patience"] == 3
    # milestones keep their fractions: 60/200 of round 1's budget
    assert baseline_to_optuna_params(spec, round1)["milestones_1"] == pytest.approx(0.3)
    # 10 * 25/250 = 1, raised to the floor max(2, ceil(10% of 25)) = 3
    assert spec.pruner.options["min_resource"] == 3


def test_epochs_8_on_round2_keeps_early_stopping_and_pruning_meaningful() -> None:
    """Issue 13: --epochs 8 once gave patience 1 and min_resource 1, and milestones 0.51 and
    0.53 of 8 epochs collapsed into one."""
    from search.study.space import to_config_changes
    from search.study.study_spec import apply_overrides

    done = apply_overrides(load_spec(ROOT / "examples" / "round2.yaml"), epochs=8)
    spec = done.spec
    assert spec.config["epochs"] == 8 and spec.config["patience"] == 3
    assert spec.pruner.options["min_resource"] == 2  # max(2, ceil(0.8))
    for baseline in spec.baselines:
        assert spec.baseline_epochs(baseline) <= 8
        assert {**spec.config, **baseline.config}["patience"] >= 3
    assert done.rescaled == (
        "rescaled to 8 epochs: patience 35 -> 3 (floor 3); hyperband min_resource 10 -> 2 "
        "(floor 2); baseline round1: epochs 200 -> 6, patience 30 -> 3 (floor 3); searched "
        "milestones: 3 distinct epochs within 1-7")
    # Close fractions stay distinct epochs, all before the last epoch.
    changes = to_config_changes(spec.space, {"milestones": [0.51, 0.53, 0.95]}, 8)
    assert changes["milestones"] == (4, 5, 7)


@pytest.mark.parametrize("epochs", [5, 6, 8, 13, 25, 60, 250, 1000])
def test_rescaling_never_goes_below_the_floors(epochs: int) -> None:
    from search.study.defaults import first_decision_epoch
    from search.study.space import to_config_changes
    from search.study.study_spec import PATIENCE_FLOOR, RESOURCE_FLOOR

    spec = with_overrides(load_spec(ROOT / "examples" / "round2.yaml"), epochs=epochs)
    assert spec.config["patience"] >= min(PATIENCE_FLOOR, epochs)
    # the floor, or what round2.yaml asks at full scale (10) when that is less
    floor = min(epochs, max(RESOURCE_FLOOR, first_decision_epoch(epochs)), 10)
    assert spec.pruner.options["min_resource"] >= floor
    milestones = to_config_changes(spec.space, {"milestones": [0.5, 0.51, 0.52]}, epochs)
    assert len(set(milestones["milestones"])) == 3


def test_rescaling_keeps_what_the_spec_asked_below_the_floor(
        tiny_spec: dict[str, Any]) -> None:
    """A spec that prunes from step 0 at full scale keeps doing so; a patience it set below the
    floor is not raised either."""
    tiny_spec["config"]["patience"] = 2
    spec = with_overrides(parse_spec(tiny_spec), epochs=8)
    assert spec.pruner.options["n_warmup_steps"] == 0
    assert spec.config["patience"] == 4  # 2 x 8/4: scaled up, as asked


def test_epochs_too_few_for_the_milestones_name_the_count(tiny_spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=r"--epochs 2: space\.milestones: 2 distinct milestones "
                                        r"do not fit a 2-epoch budget"):
        with_overrides(parse_spec(tiny_spec), epochs=2)
    # round 1's baseline runs 200 of round 2's 250 epochs: 3 of 4
    with pytest.raises(SpecError, match=r"--epochs 4: baseline round1 would run 3 epochs: "
                                        r"space\.milestones: 3 distinct milestones"):
        with_overrides(load_spec(ROOT / "examples" / "round2.yaml"), epochs=4)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _mutated(tiny: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(tiny)
    node = spec
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return spec


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "message"), [
    (["lr_typo"], 1, r"unknown key 'lr_typo'"),
    (["space", "lr", "low"], 2.0, r"space\.lr: empty or inverted range: low 2\.0 >= high 1\.0"),
    (["space", "gamma", "high"], 0.1, r"space\.gamma: empty or inverted range"),
    (["space", "batch_size", "choices"], [], r"space\.batch_size\.choices: empty choices"),
    (["space", "lr", "kind"], "x", r"space\.lr: unknown key 'kind'"),
    (["space", "learning_rate"], {"type": "float", "low": 0.1, "high": 1.0},
     r"space\.learning_rate: 'learning_rate' is not a trainer config key"),
    (["space", "lr", "low"], "0.1", r"space\.lr\.low: expected a number, got '0\.1'"),
    (["space", "weight_decay", "low"], 0.0, r"log-scale range needs low > 0"),
    (["sampler", "name"], "tpe2", r"sampler\.name: unknown sampler 'tpe2'; expected one of"),
    (["pruner", "name"], "hyperbandd", r"unknown pruner 'hyperbandd'"),
    (["pruner", "warmup"], 3, r"unknown option 'warmup' for pruner 'median'"),
    (["objective", "direction"], "up", r"unknown direction 'up'"),
    (["config", "optimizer"], "adamw2", r"unknown optimizer 'adamw2'"),
    (["config", "epochz"], 3, r"config\.epochz: unknown cifar config key"),
    (["budget", "trials"], 1, r"1 trials cannot hold the 2 baselines"),
    (["baselines", 0, "params", "lr"], 5.0, r"baselines\.slow\.params\.lr: 5\.0 is outside"),
    (["baselines", 0, "params", "gamma"], _DELETE, r"missing \['gamma'\]"),
    (["success", "max_train_val_gap"], 8, r"write 8 points as 0\.08"),
    (["trainer"], "keras", r"unknown trainer 'keras'"),
])
def test_bad_specs_name_the_value_and_the_fix(tiny_spec: dict[str, Any], path: list[Any],
                                              value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_mutated(tiny_spec, path, value))


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ntrainer: cifar\nspace: {lr: [1, 2\n")
    with pytest.raises(SpecError, match=r"spec\.yaml: malformed YAML at line \d+"):
        load_spec(path)


def test_missing_file_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(_write(tmp_path, yaml.safe_dump([1, 2])))


def test_keras_recipe_example_resolves_to_the_recipe() -> None:
    from search.study.space import to_config_changes
    from search.trial.objective import Objective

    spec = load_spec(ROOT / "examples" / "keras_recipe.yaml")
    recipe, before = spec.baselines
    cfg = Objective(spec).resolve(dict(recipe.params), dict(recipe.config)).config
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size) == ("adamw", 0.005, 1e-4, 32)
    assert (cfg.schedule, cfg.gamma, cfg.warmup_epochs) == ("exponential", 0.96, 3)
    assert cfg.clip_grad_norm == 1.0
    assert (cfg.plateau_patience, cfg.plateau_cooldown, cfg.plateau_factor) == (3, 2, 0.5)
    old = Objective(spec).resolve(dict(before.params), dict(before.config)).config
    assert (old.optimizer, old.lr, old.schedule, old.clip_grad_norm) == ("adam", 0.001,
                                                                         "constant", None)
    assert to_config_changes(spec.space, dict(recipe.params), 30)["warmup_epochs"] == 3


def _without_search_sections(spec: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(spec)
    del raw["sampler"], raw["pruner"]
    return raw


@pytest.mark.parametrize(("epochs", "first"), [(3, 1), (8, 1), (10, 1), (11, 2), (30, 3),
                                               (60, 6), (250, 25)])
def test_a_spec_without_sampler_and_pruner_gets_the_measured_default(
        tiny_spec: dict[str, Any], epochs: int, first: int) -> None:
    """Issue 14: successive halving first deciding at 10% of the epochs, keeping a third, with
    random proposals: the best the search-efficiency replay measured."""
    raw = _without_search_sections(tiny_spec)
    raw["config"]["epochs"] = epochs
    raw["baselines"] = []
    spec = parse_spec(raw)
    assert spec.pruner.to_dict() == {"name": "successive_halving", "min_resource": first,
                                     "reduction_factor": 3}
    assert spec.sampler.to_dict() == {"name": "random"}
    assert parse_spec(spec.to_dict()) == spec  # stored explicitly: a joiner gets the same


def test_the_default_sampler_is_tpe_where_nothing_is_pruned(tiny_spec: dict[str, Any]) -> None:
    raw = _without_search_sections(tiny_spec)
    raw["pruner"] = {"name": "none"}
    assert parse_spec(raw).sampler.to_dict() == {"name": "tpe"}
    one_epoch = _without_search_sections(tiny_spec)
    one_epoch["config"].update(epochs=1, milestones=[])
    del one_epoch["space"]["milestones"]
    one_epoch["baselines"] = []
    spec = parse_spec(one_epoch)  # nothing to decide before the end
    assert (spec.pruner.name, spec.sampler.name) == ("none", "tpe")


def test_rescaling_gives_the_default_pruner_of_the_new_epochs(
        tiny_spec: dict[str, Any]) -> None:
    """The default is not scaled down into the floors meant for a spec's own choice: at 8
    epochs it is what a spec written for 8 epochs gets."""
    from search.study.study_spec import apply_overrides

    raw = _without_search_sections(tiny_spec)
    raw["config"]["epochs"] = 100
    raw["baselines"] = []
    spec = parse_spec(raw)
    assert spec.pruner.options["min_resource"] == 10
    done = apply_overrides(spec, epochs=8)
    assert done.spec.pruner.to_dict() == {"name": "successive_halving", "min_resource": 1,
                                          "reduction_factor": 3}
    assert done.spec.sampler.to_dict() == {"name": "random"}
    assert "the default pruner at 8 epochs: successive_halving (min_resource 1, " \
           "reduction_factor 3)" in str(done.rescaled)
    # A pruner the spec chose (not the default's options) is rescaled within the floors.
    chosen = dict(raw, pruner={"name": "successive_halving", "min_resource": 20,
                               "reduction_factor": 3})
    assert with_overrides(parse_spec(chosen), epochs=8).pruner.options["min_resource"] == 2
