"""A checkpoint that cannot be read whole (truncated, damaged) is set aside with a warning and
the run starts from scratch, instead of failing the retry that would resume from it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from search.run.launch import create_or_join
from search.run.worker import run_worker
from search.study.study_spec import parse_spec
from search.trial.checkpoints import TrialCheckpoints
from storage import open_storage
from storage.attrs import CHECKPOINT_WARNING_ATTR
from trainers.checkpoint import (
    CHECKPOINT_NAME,
    checkpoint_problem,
    load_checkpoint,
    save_checkpoint,
)
from trainers.checkpoint_file import file_problem, has_checksum


def _state(epoch: int = 1) -> dict[str, Any]:
    return {"epoch": epoch, "weights": torch.arange(1000, dtype=torch.float32)}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_checkpoint_round_trips_with_its_checksum(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, _state(3))
    assert has_checksum(path) and file_problem(path) is None
    state = load_checkpoint(tmp_path)
    assert state is not None and state["epoch"] == 3
    assert torch.equal(state["weights"], _state()["weights"])
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temp file left


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "legacy truncated"])
def test_a_torn_checkpoint_is_set_aside_and_the_run_starts_over(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / CHECKPOINT_NAME
    if damage == "legacy truncated":  # written before the checksum existed: torch.load judges
        torch.save(_state(), path)
        _truncate(path)
    else:
        save_checkpoint(tmp_path, _state())
        if damage == "truncated":
            _truncate(path)
        else:
            data = bytearray(path.read_bytes())
            data[-10] ^= 0xFF
            path.write_bytes(bytes(data))
    problem = checkpoint_problem(tmp_path)
    assert problem is not None and str(path) in problem
    with caplog.at_level(logging.WARNING, logger="trainers.checkpoint"):
        assert load_checkpoint(tmp_path) is None
    assert not path.exists()
    aside = list(tmp_path.glob(f"{CHECKPOINT_NAME}.corrupt-*"))
    assert len(aside) == 1
    assert "starting from scratch" in caplog.text and aside[0].name in caplog.text


def _retry_of(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Fail ``trial`` as the heartbeat would; its retry is queued."""
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    retry(study, study._storage.get_trial(trial._trial_id))


def test_the_retry_of_a_trial_whose_checkpoint_was_truncated_trains_from_scratch(
        tiny_spec: dict[str, Any], tmp_path: Path, sqlite_url: str) -> None:
    checkpoints = tmp_path / "checkpoints"
    tiny_spec.update(baselines=[], pruner={"name": "none"}, success={},
                     budget={"trials": 1, "workers": 1},
                     fault_tolerance={"checkpoint_dir": str(checkpoints)})
    tiny_spec["config"].update(epochs=2, patience=2, synthetic_size=200, val_size=50)
    tiny_spec["space"]["milestones"]["count"] = 1
    spec = parse_spec(tiny_spec)
    study, _ = create_or_join(spec, open_storage(sqlite_url))
    # The first attempt checkpointed epoch 1, then its worker died; the file was torn since.
    first = study.ask()
    directory = checkpoints / spec.name / f"trial-{first.number}"
    save_checkpoint(directory, _state())
    _truncate(directory / CHECKPOINT_NAME)
    _retry_of(study, first)

    summary = run_worker(spec, open_storage(sqlite_url))
    assert summary.trials_run == 1
    retry = study.get_trials(deepcopy=False)[-1]
    assert retry.state == TrialState.COMPLETE, retry.user_attrs.get("fail_reason")
    assert retry.system_attrs.get("failed_trial") == first.number
    warning = retry.user_attrs[CHECKPOINT_WARNING_ATTR]
    assert "torn or truncated" in warning and "the retry starts from scratch" in warning
    assert sorted(retry.intermediate_values) == [1, 2]  # epoch 1 again: from scratch
    aside = list(directory.parent.glob(f"{directory.name}.corrupt-*"))
    assert len(aside) == 1 and (aside[0] / CHECKPOINT_NAME).exists()
    assert str(aside[0]) in warning
    assert not directory.exists()  # the retry finished: its own checkpoints are removed


def test_a_whole_checkpoint_is_left_for_the_retry(tmp_path: Path, sqlite_url: str) -> None:
    study = optuna.create_study(storage=sqlite_url, study_name="whole")
    first = study.ask()
    directory = tmp_path / "whole" / f"trial-{first.number}"
    save_checkpoint(directory, _state(4))
    _retry_of(study, first)
    retry = study.ask()
    checkpoints = TrialCheckpoints(retry, study_name="whole", checkpoint_dir=str(tmp_path))
    assert checkpoints.is_retry and checkpoints.directory == directory
    assert checkpoints.restore() is None  # nothing to download; nothing set aside
    assert (directory / CHECKPOINT_NAME).exists()
    assert CHECKPOINT_WARNING_ATTR not in study.trials[retry.number].user_attrs
