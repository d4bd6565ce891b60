"""``hpsearch worker`` (a plain process joining a study), the study-level stop rules, and
trials that run out of memory."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.errors import SpecError
from search.run.launch import create_or_join
from search.run.stop_rules import stop_reason
from search.run.worker import run_worker
from search.study.study_spec import parse_spec
from storage import open_storage
from storage.attrs import CREATED_AT_ATTR


def _created(spec_dict: dict[str, Any], url: str) -> optuna.Study:
    study, _ = create_or_join(parse_spec(spec_dict), open_storage(url))
    return study


def test_worker_command_joins_and_runs_the_remaining_budget(
        tiny_spec: dict[str, Any], sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["budget"] = {"trials": 3, "workers": 1}
    study = _created(tiny_spec, sqlite_url)
    assert main(["worker", tiny_spec["name"], "--storage", sqlite_url, "--index", "1"]) == 0
    out = capsys.readouterr().out
    assert f"joined study '{tiny_spec['name']}'" in out and "ran 3 trials" in out
    assert len([t for t in study.get_trials() if t.state.is_finished()]) == 3
    assert main(["worker", tiny_spec["name"], "--storage", sqlite_url]) == 0
    assert "ran 0 trials" in capsys.readouterr().out  # the budget is spent
    optuna.create_study(study_name="foreign", storage=sqlite_url)
    assert main(["worker", "foreign", "--storage", sqlite_url]) == 2
    assert "was not created by hpsearch launch" in capsys.readouterr().err


def test_target_reached_stops_the_study(tiny_spec: dict[str, Any], sqlite_url: str,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["success"] = {"target": 0.01}  # any trial reaches it
    tiny_spec["stop"] = {"at_target": True}
    tiny_spec["budget"] = {"trials": 6, "workers": 1}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    assert main(["launch", str(path), "--storage", sqlite_url, "--no-promote"]) == 0
    assert "stopped: target 0.01 reached" in capsys.readouterr().out
    trials = optuna.load_study(study_name=tiny_spec["name"], storage=sqlite_url).get_trials()
    assert len([t for t in trials if t.state.is_finished()]) == 1


def _finished_study(values: list[float], url: str) -> optuna.Study:
    study = optuna.create_study(study_name="history", storage=url, direction="maximize")
    for v in values:
        study.add_trial(optuna.create_trial(value=v))
    return study


def _spec_with(tiny_spec: dict[str, Any], **stop: Any) -> Any:
    raw = copy.deepcopy(tiny_spec)
    raw["stop"] = stop
    return parse_spec(raw)


def test_no_improvement_and_wall_clock_rules(tiny_spec: dict[str, Any],
                                             sqlite_url: str) -> None:
    study = _finished_study([0.5, 0.6, 0.55, 0.58, 0.59], sqlite_url)
    assert stop_reason(study, _spec_with(tiny_spec, no_improvement_trials=3)) == \
        "no improvement in the last 3 finished trials"
    assert stop_reason(study, _spec_with(tiny_spec, no_improvement_trials=4)) is None
    study.set_user_attr(CREATED_AT_ATTR, time.time() - 100)
    reason = stop_reason(study, _spec_with(tiny_spec, wall_clock_s=50))
    assert reason is not None and reason.startswith("wall-clock budget of 50 s spent")
    assert stop_reason(study, _spec_with(tiny_spec, wall_clock_s=500)) is None


def test_bad_stop_and_fault_tolerance_settings_are_named(tiny_spec: dict[str, Any]) -> None:
    raw = copy.deepcopy(tiny_spec)
    raw.pop("success")
    raw["stop"] = {"at_target": True}
    with pytest.raises(SpecError, match=r"stop\.at_target: needs success\.target"):
        parse_spec(raw, source="spec.yaml")
    raw = copy.deepcopy(tiny_spec)
    raw["fault_tolerance"] = {"heartbeat_interval_s": 10, "grace_period_s": 5}
    with pytest.raises(SpecError, match="grace_period_s: 5 s must exceed the heartbeat"):
        parse_spec(raw, source="spec.yaml")


def test_out_of_memory_fails_the_trial_not_the_worker(
        tiny_spec: dict[str, Any], sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.study import trainers as trainer_registry
    from trainers.cifar import CifarConfig, train

    def train_or_oom(cfg: CifarConfig, reporter: Any = None) -> dict[str, Any]:
        if cfg.batch_size == 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return train(cfg, reporter)

    entry = dataclasses.replace(trainer_registry.get_trainer("cifar"), train=train_or_oom)
    monkeypatch.setitem(trainer_registry._TRAINERS, "cifar", lambda: entry)
    tiny_spec["budget"] = {"trials": 6, "workers": 1}
    tiny_spec["baselines"] = []
    tiny_spec["sampler"] = {"name": "random", "seed": 3}
    study = _created(tiny_spec, sqlite_url)
    summary = run_worker(parse_spec(tiny_spec), open_storage(sqlite_url))
    trials = study.get_trials()
    oom = [t for t in trials if t.state == TrialState.FAIL]
    assert oom, "the random sampler drew batch size 64 at least once"
    assert all(t.user_attrs["fail_kind"] == "out_of_memory" for t in oom)
    assert all("out of memory" in t.user_attrs["fail_reason"] for t in oom)
    assert len([t for t in trials if t.state.is_finished() and t.state != TrialState.FAIL]) == 6
    assert summary.trials_run == len(trials)
