from __future__ import annotations

from typing import Any

import optuna
import pytest

from search.study.space import (
    baseline_to_optuna_params,
    milestone_epochs,
    suggest,
    to_config_changes,
)
from search.study.study_spec import parse_spec
from search.trial.objective import Objective


def test_milestone_fractions_become_sorted_distinct_epochs() -> None:
    assert milestone_epochs([0.8, 0.3, 0.6], 200) == (60, 120, 160)
    assert milestone_epochs([0.5, 0.51], 4) == (2, 3)  # close fractions stay distinct
    assert milestone_epochs([0.51, 0.53], 8) == (4, 5)
    assert milestone_epochs([0.9, 0.95, 0.96], 8) == (5, 6, 7)  # all before the last epoch
    assert milestone_epochs([0.01], 10) == (1,)
    assert milestone_epochs([0.5, 0.6, 0.7], 3) == (2,)  # no room: duplicates merge


def test_suggestions_cover_the_space_and_resolve_to_a_trainer_config(
        tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = suggest(trial, spec.space)
    assert set(trial.params) == {"lr", "gamma", "weight_decay", "batch_size", "milestones_1",
                                 "milestones_2"}
    assert params["milestones"] == sorted(params["milestones"])
    cfg = Objective(spec).resolve(params, {}).config
    assert cfg.lr == params["lr"] and cfg.batch_size in (32, 64)
    assert cfg.milestones == to_config_changes(spec.space, params, 4)["milestones"]
    assert cfg.epochs == 4 and cfg.width == 0.0625  # spec config over code defaults


def test_baseline_overrides_apply_between_spec_config_and_params(
        tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(tiny_spec)
    slow = spec.baselines[0]
    optuna_params = baseline_to_optuna_params(spec, slow)
    study = optuna.create_study()
    study.enqueue_trial(optuna_params)
    trial = study.ask()
    params = suggest(trial, spec.space)
    cfg = Objective(spec).resolve(params, dict(slow.config)).config
    assert cfg.epochs == 5 and cfg.patience == 4 and cfg.min_delta == 0.001
    assert cfg.milestones == (2, 3) and cfg.lr == pytest.approx(0.001)


def test_one_conversion_serves_baselines_and_stored_configs(tiny_spec: dict[str, Any]) -> None:
    from search.run.warm_start import config_to_params
    from search.study.space import OutsideSpace, to_optuna_params

    spec = parse_spec(tiny_spec)
    values = {"lr": 0.1, "gamma": 0.2, "weight_decay": 1e-4, "batch_size": 32,
              "milestones": [2, 3]}
    assert to_optuna_params(spec.space, values, 4)["milestones_1"] == pytest.approx(0.5)
    assert to_optuna_params(spec.space, dict(values, milestones=[0.5, 0.75]), 4) == \
        to_optuna_params(spec.space, values, 4)
    with pytest.raises(OutsideSpace, match=r"milestones: milestone 4 is 1\.000 of 4 epochs"):
        to_optuna_params(spec.space, dict(values, milestones=[2, 4]), 4)
    params, why = config_to_params(spec, dict(values, lr=7.0, epochs=4))
    assert params is None and why.startswith("lr: 7.0 is outside the space")
    assert config_to_params(spec, {**values, "epochs": 4})[0] == to_optuna_params(
        spec.space, values, 4)
