"""Progress that tells the truth: the ETA counts epochs against a clock, so it moves while trials
run, not only when one finishes."""

from __future__ import annotations

import datetime as dt
import warnings

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from search.report.progress import estimate_eta, format_progress, read_progress

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)
CONFIG = {"epochs": 8, "lr": 0.1}


def _finished(number: int, state: TrialState, epochs: int, seconds: float) -> FrozenTrial:
    """A trial that ran ``epochs`` of its 8 in ``seconds``."""
    return FrozenTrial(
        number=number, trial_id=number, state=state,
        value=0.5 + 0.01 * epochs if state == TrialState.COMPLETE else None,
        datetime_start=T0 - dt.timedelta(hours=1),
        datetime_complete=T0 - dt.timedelta(hours=1) + dt.timedelta(seconds=seconds),
        params={"lr": 0.1}, distributions={"lr": FloatDistribution(0.01, 1.0)},
        user_attrs={"config": CONFIG, "epochs_run": epochs}, system_attrs={},
        intermediate_values={e: 0.1 * e for e in range(1, epochs + 1)})


def _study() -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(study_name="eta", direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["best_val_acc"])
    study.add_trial(_finished(0, TrialState.COMPLETE, 8, 80.0))  # 8 epochs, 10 s each
    study.add_trial(_finished(1, TrialState.PRUNED, 2, 20.0))  # pruned after 2
    running = study.ask({"lr": FloatDistribution(0.01, 1.0)})
    running.set_user_attr("config", CONFIG)  # the objective stores it when a trial starts
    return study, running


def test_eta_counts_down_between_epochs_and_follows_reported_epochs() -> None:
    study, running = _study()
    start = study.trials[running.number].datetime_start
    assert start is not None

    def eta_at(seconds: float) -> float:
        clock = start + dt.timedelta(seconds=seconds)
        p = read_progress(study, budget=6, workers=1, now=lambda: clock)
        assert p.eta_s is not None
        return p.eta_s

    running.report(0.2, step=1)
    # 10 s an epoch (100 s over 10 finished epochs); trials that reached epoch 1 ran 5 epochs
    # on average, so the running one has 50 s less the 10 it ran; 3 trials not started: 150 s.
    assert eta_at(10) == pytest.approx(40 + 150)
    assert eta_at(15) == pytest.approx(35 + 150)  # no new epoch: it still counts down
    assert eta_at(15) < eta_at(10)
    # Past the pruned trial's epoch 2 it is expected to run its 8 epochs: an honest rise.
    running.report(0.3, step=2)
    running.report(0.4, step=3)
    assert eta_at(30) == pytest.approx(50 + 150)
    assert eta_at(60) == pytest.approx(40 + 150)  # never below the 4 epochs it has not begun
    # Two workers share the trials not started; the running one bounds the end from below.
    p = read_progress(study, budget=6, workers=2, now=lambda: start + dt.timedelta(seconds=30))
    assert p.eta_s == pytest.approx((50 + 150) / 2)


def test_progress_line_names_the_metric_and_each_running_trials_epoch_budget() -> None:
    study, running = _study()
    running.report(0.2, step=1)
    clock = study.trials[running.number].datetime_start + dt.timedelta(seconds=10)
    line = format_progress(read_progress(study, budget=6, now=lambda: clock))
    assert "2/6 done (complete 1, pruned 1, running 1)" in line
    assert "best 0.5800 (best_val_acc, trial 0)" in line
    assert "running #2@epoch 1/8" in line
    assert "eta 0:03:10" in line


def test_before_any_trial_finishes_the_pace_of_running_trials_is_used() -> None:
    study = optuna.create_study()
    trial = study.ask({"lr": FloatDistribution(0.01, 1.0)})
    trial.set_user_attr("config", CONFIG)
    start = study.trials[0].datetime_start
    assert start is not None
    assert read_progress(study, budget=2, now=lambda: start).eta_s is None  # nothing measured
    trial.report(0.1, step=1)
    trial.report(0.2, step=2)
    running = study.get_trials(states=(TrialState.RUNNING,))
    # 2 epochs in 30 s: 15 s an epoch; 8 epochs each; 120 - 30 left of this one, 120 queued
    eta = estimate_eta([], running, 1, workers=1, now=start + dt.timedelta(seconds=30))
    assert eta == pytest.approx(90 + 120)
