"""A whole study, for real: spec -> database -> two worker processes -> pruned and completed
trials -> winner, on SQLite and on PostgreSQL, asserted from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.study.space import baseline_to_optuna_params
from search.study.study_spec import parse_spec


def _run_study(spec_dict: dict[str, Any], url: str, tmp_path: Path,
               capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_dict))
    # promotion has its own tests (test_tuning.py); here it would only add re-measurements
    code = main(["launch", str(path), "--storage", url, "--no-promote", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _assert_study(spec_dict: dict[str, Any], url: str, out: str) -> list[optuna.trial.FrozenTrial]:
    spec = parse_spec(spec_dict)
    trials = optuna.load_study(study_name=spec.name, storage=url).get_trials()
    trials.sort(key=lambda t: t.number)
    # exactly the budget, every trial finished as COMPLETE or PRUNED: no "database is locked"
    assert len(trials) == spec.n_trials, [t.state for t in trials]
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    # the baselines ran first, with their exact parameters and own settings
    for trial, baseline in zip(trials, spec.baselines, strict=False):
        assert trial.user_attrs["hps_baseline"] == baseline.name
        assert trial.params == pytest.approx(baseline_to_optuna_params(spec, baseline))
        for key, value in baseline.config.items():
            assert trial.user_attrs["config"][key] == value
    assert trials[0].user_attrs["config"]["epochs"] == 5  # the "slow" baseline's own budget
    # every trial reported per-epoch values and recorded its resolved config
    for t in trials:
        assert t.intermediate_values and min(t.intermediate_values) == 1
        assert t.user_attrs["config"]["lr"] == pytest.approx(t.params["lr"])
        assert t.user_attrs["worker"]
        if t.state == TrialState.COMPLETE:  # the gap is a constraint the sampler sees
            gap = t.user_attrs["best_train_val_gap"] - spec.max_train_val_gap
            assert t.constraints == {"train_val_gap": pytest.approx(gap)}
            assert t.value == t.user_attrs["best_val_acc"]
    # a pruned trial really was cut short
    assert trials[0].state == TrialState.PRUNED and max(trials[0].intermediate_values) == 3
    assert trials[1].state == TrialState.COMPLETE
    assert f"study '{spec.name}' is stored in" in out
    assert "best configuration:" in out
    assert " done (" in out  # progress lines
    return trials


# A threshold pruner makes pruning certain: at lr 0.001 the "slow" baseline is still at
# chance (0.1) after 3 epochs, while the "fast" one (lr 0.5) is near 0.4.
CERTAIN_PRUNING = {"name": "threshold", "lower": 0.2, "n_warmup_steps": 3}


def test_study_on_sqlite_with_two_workers_prunes_and_reports_a_winner(
        tiny_spec: dict[str, Any], sqlite_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["pruner"] = CERTAIN_PRUNING
    out = _run_study(tiny_spec, sqlite_url, tmp_path, capsys)
    trials = _assert_study(tiny_spec, sqlite_url, out)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, "both workers should have run trials"
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(completed, key=lambda t: t.value)
    assert f"best trial {best.number}: best_val_acc = {best.value:.4f}" in out


@pytest.mark.postgres
def test_study_on_postgresql_with_two_workers(tiny_spec: dict[str, Any], pg_url: str,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["pruner"] = CERTAIN_PRUNING
    tiny_spec["budget"]["trials"] = 7
    out = _run_study(tiny_spec, pg_url, tmp_path, capsys)
    _assert_study(tiny_spec, pg_url, out)


def test_joining_a_finished_study_runs_nothing_more_and_keeps_its_trials(
        tiny_spec: dict[str, Any], sqlite_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["budget"] = {"trials": 2, "workers": 1}
    tiny_spec["pruner"] = CERTAIN_PRUNING
    _run_study(tiny_spec, sqlite_url, tmp_path, capsys)
    out = _run_study(tiny_spec, sqlite_url, tmp_path, capsys)
    assert "joined study" in out and "0 trials run by this launcher" in out
    trials = optuna.load_study(study_name=tiny_spec["name"], storage=sqlite_url).trials
    assert len(trials) == 2  # baselines were not queued a second time
    # A larger budget on the same study runs only the difference.
    out = _run_study(tiny_spec, sqlite_url, tmp_path, capsys, "--trials", "3")
    assert "1 trials run by this launcher" in out


def test_two_launchers_share_one_budget_exactly(tiny_spec: dict[str, Any], sqlite_url: str,
                                                tmp_path: Path) -> None:
    import subprocess
    import sys

    tiny_spec["budget"] = {"trials": 8, "workers": 1}
    tiny_spec["pruner"] = {"name": "none"}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    # One thread each: two launchers on two cores. With the default (cores / workers = 2
    # each) torch's threads oversubscribe the cores and a trial ran up to eight times slower.
    cmd = [sys.executable, "-m", "search", "launch", str(path), "--storage", sqlite_url,
           "--no-promote", "--threads-per-worker", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = [p.communicate(timeout=240)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert sum("created study" in out for out in outs) == 1
    assert sum("joined study" in out for out in outs) == 1
    trials = optuna.load_study(study_name=tiny_spec["name"], storage=sqlite_url).trials
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [t.user_attrs["hps_baseline"] for t in trials[:2]] == ["slow", "fast"]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both launchers' workers ran
