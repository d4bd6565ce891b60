"""A trial that stops making progress is failed with the reason, not waited on forever."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli import main
from search.trial.stall import StallLimits, StallWatchdog


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _watchdog(**limits: float) -> tuple[StallWatchdog, FakeClock]:
    clock = FakeClock()
    return StallWatchdog(StallLimits(**limits), lambda reason: None, clock=clock), clock


def test_before_any_measurement_the_first_epoch_limit_applies() -> None:
    dog, clock = _watchdog(factor=10, floor_s=5, first_epoch_s=100)
    dog._since, dog._epochs_this_trial = clock(), 0  # begin() without the thread
    clock.now = 99.0
    assert dog.check() is None
    clock.now = 101.0
    reason = dog.check()
    assert reason is not None and reason.startswith("stalled: epoch 1 made no progress for 101 s")
    assert dog.check() is None  # fires once


def test_later_epochs_are_held_to_a_multiple_of_the_slowest_one_seen() -> None:
    dog, clock = _watchdog(factor=10, floor_s=5, first_epoch_s=1000)
    dog._since, dog._epochs_this_trial = clock(), 0
    clock.now = 30.0  # the first epoch loads data: 30 s
    dog.progress()
    clock.now += 2.0  # a 2 s epoch
    dog.progress()
    assert dog.limit_s() == 20.0  # 10 x 2 s
    clock.now += 19.0
    assert dog.check() is None
    clock.now += 2.0
    assert "epoch 3 made no progress for 21 s (limit 20 s" in (dog.check() or "")


def test_the_next_trial_s_first_epoch_is_held_to_the_slowest_first_epoch() -> None:
    dog, clock = _watchdog(factor=3, floor_s=5, first_epoch_s=1000)
    dog._since, dog._epochs_this_trial = clock(), 0
    clock.now = 10.0
    dog.progress()
    dog.end()
    assert dog.check() is None  # not watching between trials, however long
    clock.now = 5000.0
    dog._since, dog._epochs_this_trial = clock(), 0
    assert dog.limit_s() == 30.0
    assert dog.check() is None
    clock.now += 31.0
    assert "epoch 1 made no progress for 31 s (limit 30 s" in (dog.check() or "")


def test_the_floor_and_the_off_switch() -> None:
    dog, clock = _watchdog(factor=10, floor_s=60, first_epoch_s=1000)
    dog._since, dog._epochs_this_trial = clock(), 0
    clock.now = 0.5
    dog.progress()
    clock.now += 0.1
    dog.progress()
    assert dog.limit_s() == 60.0  # 10 x 0.1 s is below the floor
    off, clock = _watchdog(factor=0)
    off._since = clock()
    clock.now = 1e9
    assert off.check() is None


@pytest.mark.slow
def test_a_stuck_trial_is_failed_as_stalled_and_the_study_goes_on(
        tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {
        "name": "stuck", "trainer": "tests.search.hanging_trainer",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": 3, "workers": 1},
        "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "baselines": [{"name": "steady", "params": {"lr": 0.01}},
                      {"name": "stuck", "params": {"lr": 0.02},
                       "config": {"hang_at_epoch": 2}}],
        "fault_tolerance": {"stall_factor": 5, "stall_floor_s": 1, "stall_first_epoch_s": 60},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    main(["launch", str(path), "--storage", sqlite_url, "--no-promote"])
    out = capsys.readouterr()
    study = optuna.load_study(study_name="stuck", storage=sqlite_url)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    # FAIL does not count toward the budget: three finished trials besides the stalled one.
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.COMPLETE, TrialState.COMPLETE], out
    stuck = trials[1]
    assert stuck.user_attrs["fail_kind"] == "stalled"
    assert stuck.user_attrs["fail_reason"].startswith("stalled: epoch 2 made no progress for")
    assert stuck.user_attrs.get("hps_baseline") == "stuck"
    # Failed once, not re-queued: a stuck configuration would only hang again.
    assert sum(1 for t in trials if t.user_attrs.get("hps_baseline") == "stuck") == 1
