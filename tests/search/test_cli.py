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
from search.run.reclaim import fail_trials_of

ROOT = Path(__file__).resolve().parents[2]


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
        tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"name": "failing", "trainer": "tests.search.failing_trainer",
            "budget": {"trials": 4, "workers": 1},
            "space": {"lr": {"type": "float", "low": 0.001, "high": 1.0, "log": True}}}
    _fails_with(capsys, ["launch", _spec_file(tmp_path, spec), "--storage", sqlite_url,
                         "--no-promote"],
                "3 trials in a row failed", "kernel_xyz failed")
    trials = optuna.load_study(study_name="failing", storage=sqlite_url).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert all("kernel_xyz failed" in t.user_attrs["fail_reason"] for t in trials)


def test_a_report_metric_the_trainer_never_reports_is_refused_before_any_trial(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    tiny_spec["objective"]["report"] = "val_accuracy"  # the trainer reports val_acc
    _fails_with(capsys, ["launch", _spec_file(tmp_path, tiny_spec), "--storage", sqlite_url],
                "objective.report: trainer 'cifar' never reports 'val_accuracy'", "'val_acc'")
    assert not (tmp_path / "study.db").exists()


def test_set_values_take_the_type_of_their_field(tiny_spec: dict[str, Any]) -> None:
    """Issue 13: YAML read amp=off as False and 5e-4 as a string."""
    from search.cli.common import parse_overrides
    from search.study.study_spec import parse_spec, with_overrides
    from trainers.cifar import Config

    values = parse_overrides(["amp=off", "weight_decay=5e-4", "milestones=[3,6]",
                              "augment=off", "train_limit=none", "dataset=a b.tar"], Config)
    assert values == {"amp": "off", "weight_decay": 5e-4, "milestones": (3, 6),
                      "augment": False, "train_limit": None, "dataset": "a b.tar"}
    tiny_spec["config"].update(epochs=8, milestones=[2, 4])
    tiny_spec["space"].pop("milestones")
    tiny_spec["baselines"] = []
    spec = with_overrides(parse_spec(tiny_spec), config=values)
    assert spec.config["amp"] == "off" and spec.config["milestones"] == [3, 6]


def test_a_set_value_of_the_wrong_type_names_the_field_and_the_type(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec_file(tmp_path, tiny_spec)
    _fails_with(capsys, ["launch", spec, "--storage", sqlite_url, "--set", "width=wide"],
                "--set width=wide: width takes a number (float); e.g. --set width=")
    _fails_with(capsys, ["launch", spec, "--storage", sqlite_url, "--set", "batch_size=9.5"],
                "batch_size takes a whole number (int)")
    _fails_with(capsys, ["launch", spec, "--storage", sqlite_url, "--set", "milestones=[a]"],
                "milestones takes a list of whole numbers (int)")
    _fails_with(capsys, ["train", "--dry-run", "--storage", sqlite_url, "--set", "lr=fast"],
                "--set lr=fast: lr takes a number (float)")
    assert not (tmp_path / "study.db").exists()


def test_launch_says_what_epochs_rescaled(tmp_path: Path, sqlite_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The line is printed before the study exists; a bad --set after it stops the launch
    before anything is written, so the line can be checked without training."""
    assert main(["launch", str(ROOT / "examples" / "round2.yaml"), "--storage", sqlite_url,
                 "--epochs", "8", "--set", f"dataset={tmp_path}/missing.tar.gz"]) == 2
    captured = capsys.readouterr()
    assert "missing.tar.gz' does not exist" in captured.err
    assert captured.out.splitlines()[0].startswith(
        "rescaled to 8 epochs: patience 35 -> 3 (floor 3); hyperband min_resource 10 -> 2 "
        "(floor 2); baseline round1: epochs 200 -> 6, patience 30 -> 3 (floor 3)")
    assert not (tmp_path / "study.db").exists()


def test_status_and_db_commands(tmp_path: Path, sqlite_url: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from storage import head_revision

    head = head_revision()
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    assert f"upgraded from empty to {head}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    assert f"already at revision {head}" in capsys.readouterr().out
    assert main(["db", "current", "--storage", sqlite_url]) == 0
    assert f"revision {head} (head {head})" in capsys.readouterr().out
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
    fail_trials_of(study, "host:123", "worker process 123 exited with code -9", max_retries=3)
    trials = study.get_trials()
    states = {t.number: t.state for t in trials}
    assert states == {mine.number: TrialState.FAIL, other.number: TrialState.RUNNING,
                      2: TrialState.WAITING}
    assert "exited with code -9" in study.trials[mine.number].user_attrs["fail_reason"]
    retry = trials[2]
    assert retry.params == study.trials[mine.number].params  # same parameters again
    assert retry.system_attrs["failed_trial"] == mine.number
