"""The database's count of trials per state agrees with the study's own trials, leaving out the
trials a warm start imported."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_optuna_storage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_counts_by_state_leave_out_marked_trials(url: str) -> None:
    storage = open_optuna_storage(url)
    study = optuna.create_study(storage=storage, study_name="counts", direction="maximize")
    other = optuna.create_study(storage=storage, study_name="other", direction="maximize")
    other.add_trial(optuna.create_trial(value=1.0))  # another study's trial is not counted
    for value in (0.1, 0.2, 0.3):
        study.add_trial(optuna.create_trial(value=value))
    for _ in range(2):
        study.add_trial(optuna.create_trial(state=TrialState.PRUNED,
                                            intermediate_values={1: 0.1}))
    study.add_trial(optuna.create_trial(value=0.9, user_attrs={"imported": True}))
    study.add_trial(optuna.create_trial(value=0.5, user_attrs={"imported_not": 1}))
    study.enqueue_trial({"x": 1.0})
    running = study.ask()
    study.tell(study.ask(), state=TrialState.FAIL)

    counts = storage.count_trials_by_state(study._study_id, without_user_attr="imported")
    expected = Counter(t.state for t in study.get_trials() if "imported" not in t.user_attrs)
    assert counts == expected
    assert counts == {TrialState.COMPLETE: 4, TrialState.PRUNED: 2, TrialState.RUNNING: 1,
                      TrialState.FAIL: 1}
    study.tell(running, 0.4)
    assert storage.count_trials_by_state(study._study_id, without_user_attr="imported")[
        TrialState.COMPLETE] == 5
