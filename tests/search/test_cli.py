"""Bad input: one clear line on stderr naming the value and the fix, exit code 2, and the
database exactly as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.run.launch import _fail_trials_of


def _spec_file(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    assert err.startswith("hpsearch: error: ")
    for fragment in fragments:
        assert fragment in err


def test_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    _fails_with(capsys, ["launch", str(path)], "bad.yaml: malformed YAML at line")


def test_unknown_sampler(tmp_path: Path, tiny_spec: dict[str, Any],
                         capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["sampler"] = {"name": "bayes"}
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec)],
                "unknown sampler 'bayes'", "'tpe'")


def test_unreachable_database(tmp_path: Path, tiny_spec: dict[str, Any],
                              capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec), "--storage",
                         "postgresql+psycopg2://nobody@127.0.0.1:1/nowhere"],
                "cannot reach storage 'postgresql+psycopg2://nobody@127.0.0.1:1/nowhere'")


def test_bad_set_override(tmp_path: Path, tiny_spec: dict[str, Any],
                          capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec), "--set", "epochs"],
                "--set 'epochs' is not KEY=VALUE")


def test_bad_threads_per_worker_fails_before_the_study_exists(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec_file(tmp_path, tiny_spec)
    _fails_with(capsys, ["launch", spec, "--storage", sqlite_url, "--threads-per-worker", "0"],
                "--threads-per-worker 0 must be at least 1")
    _fails_with(capsys, ["launch", spec, "--storage", sqlite_url, "--executor", "ray",
                         "--threads-per-worker", "2"], "--cpus-per-trial")
    assert not (tmp_path / "study.db").exists()


def test_missing_dataset_fails_before_the_study_exists(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec), "--storage", sqlite_url,
                         "--set", f"dataset={tmp_path}/missing.tar.gz"],
                "missing.tar.gz' does not exist")
    assert not (tmp_path / "study.db").exists()


def test_joining_with_another_direction_changes_nothing(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study(study_name=tiny_spec["name"], storage=sqlite_url,
                                direction="minimize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    study.set_user_attr("mine", 1)
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec), "--storage", sqlite_url],
                "exists with direction minimize", "the spec says maximize",
                "--study-name")
    after = optuna.load_study(study_name=tiny_spec["name"], storage=sqlite_url)
    assert len(after.trials) == 2 and after.user_attrs == {"mine": 1}
    assert [t.params for t in after.trials] == [t.params for t in study.trials]


def test_status_of_unknown_study_lists_what_exists(sqlite_url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    optuna.create_study(study_name="present", storage=sqlite_url)
    _fails_with(capsys, ["status", "absent", "--storage", sqlite_url],
                "no study 'absent'", "['present']")


def test_a_trial_that_keeps_failing_stops_the_worker_with_the_reason(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["objective"]["report"] = "val_accuracy"  # the trainer reports val_acc
    tiny_spec["budget"] = {"trials": 4, "workers": 1}
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec), "--storage", sqlite_url],
                "3 trials in a row failed", "'val_accuracy'")
    trials = optuna.load_study(study_name=tiny_spec["name"], storage=sqlite_url).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert all("val_accuracy" in t.user_attrs["fail_reason"] for t in trials)


def test_status_and_db_commands(tmp_path: Path, sqlite_url: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    assert "upgraded from empty to 0002" in capsys.readouterr().out
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    assert "already at revision 0002" in capsys.readouterr().out
    assert main(["db", "current", "--storage", sqlite_url]) == 0
    assert "revision 0002 (head 0002)" in capsys.readouterr().out
    study = optuna.create_study(study_name="s", storage=sqlite_url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert main(["status", "s", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "3 done (complete 3)" in out and f"best {study.best_value:.4f}" in out
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert "s\t3 trials" in capsys.readouterr().out


def test_a_lost_worker_s_running_trial_is_failed_with_the_reason_and_requeued(
        sqlite_url: str) -> None:
    study = optuna.create_study(study_name="lost", storage=sqlite_url)
    mine = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    other = study.ask()
    mine.set_user_attr("worker", "host:123")
    other.set_user_attr("worker", "host:456")
    _fail_trials_of(study, "host:123", "worker process 123 exited with code -9", max_retries=3)
    trials = study.get_trials()
    states = {t.number: t.state for t in trials}
    assert states == {mine.number: TrialState.FAIL, other.number: TrialState.RUNNING,
                      2: TrialState.WAITING}
    assert "exited with code -9" in study.trials[mine.number].user_attrs["fail_reason"]
    retry = trials[2]
    assert retry.params == study.trials[mine.number].params  # same parameters again
    assert retry.system_attrs["failed_trial"] == mine.number
