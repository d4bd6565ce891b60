"""Tuned defaults and the registry, through the CLI, on a real study in SQLite."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.run.launch import create_or_join
from search.study.study_spec import parse_spec
from search.study.trainers import get_trainer
from search.tuning.registry_files import load_config_file
from search.tuning.resolve import resolve_config
from storage import open_storage, registry
from storage.defaults import DefaultsKey, current_rows
from tests.conftest import TINY_SPEC

KEY = DefaultsKey("cifar", "resnet18", "sgd", "synthetic")


def _row(url: str) -> Any:
    """The study's promoted row (the key's only current row: synthetic has no documented one)."""
    [row] = current_rows(open_storage(url).engine, KEY)
    return row


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One finished, promoted study (3 trials, 1 extra seed), shared by this module's tests;
    each test works on its own copy of the database file."""
    tmp = tmp_path_factory.mktemp("tuning")
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(name="tuning", budget={"trials": 3, "workers": 1}, pruner={"name": "none"})
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["launch", str(path), "--storage", url, "--no-promote"]) == 0
        # Forced: whether a 600-image study beats the code defaults beyond seed noise is not
        # what these tests are about (tests/search/test_promotion_rule.py is).
        assert main(["defaults", "promote", "tuning", "--storage", url, "--force"]) == 0
    text = out.getvalue()
    assert "\npromoted: trial" in "\n" + text and "as cifar/resnet18/sgd/synthetic" in text
    assert "over seeds (0: " in text and ", 1: " in text and ", 2: " in text
    assert "forced; mean paired difference" in text
    return spec, tmp / "db.sqlite"


@pytest.fixture
def finished(study_db: tuple[dict[str, Any], Path], tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str]:
    spec, db = study_db
    copy_path = tmp_path / "study.db"
    shutil.copy(db, copy_path)
    for suffix in ("-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{copy_path}{suffix}")
    return spec, f"sqlite:///{copy_path}"


def test_a_finished_study_promotes_its_winner_re_measured_on_extra_seeds(
        finished: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]) -> None:
    spec, sqlite_url = finished
    study = optuna.load_study(study_name=spec["name"], storage=sqlite_url)
    row = _row(sqlite_url)
    assert row.source == "measured" and row.n_seeds == 3
    assert row.study_name == spec["name"] and row.trial_number == study.best_trial.number
    assert row.params["lr"] == pytest.approx(study.best_trial.params["lr"])
    assert "dataset" not in row.params and "seed" not in row.params
    config = study.best_trial.user_attrs["config"]
    assert row.regime == {k: config[k] for k in (
        "model", "width", "num_classes", "augment", "epochs", "batch_size", "val_size",
        "synthetic_size", "synthetic_noise")}
    # promoting the same study again: its winner is the row in force, nothing to re-measure
    assert main(["defaults", "promote", spec["name"], "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "not promoted" in out and f"is row {row.id} (measured) itself" in out
    assert main(["defaults", "history", "--optimizer", "sgd", "--dataset", "synthetic",
                 "--storage", sqlite_url]) == 0
    history = capsys.readouterr().out.strip().splitlines()
    assert len(history) == 1 and history[0].startswith("* row")


def test_tuned_default_sets_the_lr_and_says_where_values_came_from(
        finished: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]) -> None:
    _, sqlite_url = finished
    row = _row(sqlite_url)
    tuned_bs = int(row.params["batch_size"])
    # The run must be in the row's regime (the study's width and data sizes) for it to apply.
    regime = ["--set", "width=0.0625", "--set", "synthetic_size=600", "--set", "val_size=100",
              "--set", "synthetic_noise=1.0"]
    assert main(["train", "--optimizer", "sgd", "--batch-size", str(tuned_bs * 2), "--dry-run",
                 "--storage", sqlite_url, *regime]) == 0
    out = capsys.readouterr().out
    lr_line = next(line for line in out.splitlines() if line.startswith("lr "))
    assert f"tuned default (row {row.id})" in lr_line
    assert f"{row.params['lr'] * 2:.6g}" in lr_line
    assert "linear scaling for batch size" in out
    assert main(["train", "--optimizer", "sgd", "--batch-size", str(tuned_bs * 2),
                 "--scaling-rule", "sqrt", "--dry-run", "--storage", sqlite_url, *regime]) == 0
    assert f"{row.params['lr'] * 2 ** 0.5:.6g}" in capsys.readouterr().out
    # At full width (the code's 250 epochs on 50,000 images) the row does not apply, and the
    # dry run says why.
    assert main(["train", "--optimizer", "sgd", "--epochs", "250", "--dry-run",
                 "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "tuned default" not in next(line for line in out.splitlines()
                                       if line.startswith("lr "))
    assert f"note: skipped tuned row {row.id} (measured, measured at " in out
    assert "width 1.0 here vs 0.0625" in out and "epochs 250 here vs" in out


def test_export_alias_file_round_trip_and_train_from_the_registry(
        finished: tuple[dict[str, Any], str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    spec, sqlite_url = finished
    assert main(["export", spec["name"], "--name", "tiny-best", "--alias", "production",
                 "--storage", sqlite_url]) == 0
    assert "as tiny-best@1 (aliases production)" in capsys.readouterr().out
    version = registry.resolve(open_storage(sqlite_url).engine, "tiny-best@production")
    study = optuna.load_study(study_name=spec["name"], storage=sqlite_url)
    assert version.trial_number == study.best_trial.number
    assert version.config == study.best_trial.user_attrs["config"]
    out_dir = tmp_path / "exports"
    for fmt in ("yaml", "json"):
        assert main(["registry", "export", "tiny-best@production", "--format", fmt, "--out",
                     str(out_dir), "--storage", sqlite_url]) == 0
        capsys.readouterr()
        trainer, cfg, doc = load_config_file(out_dir / f"tiny-best-v1.{fmt}")
        assert cfg == get_trainer(trainer).build_config(version.config)  # identical config
        assert doc["source"] == {"study": spec["name"], "trial": version.trial_number}
    assert main(["train", "--config", "registry:tiny-best@production", "--dry-run",
                 "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "registry tiny-best@1" in out
    # a file edited by hand into an invalid config is refused, naming the file and the value
    bad = json.loads((out_dir / "tiny-best-v1.json").read_text())
    bad["config"]["optimizer"] = "adamw2"
    (out_dir / "bad.json").write_text(json.dumps(bad))
    assert main(["train", "--config", str(out_dir / "bad.json"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "unknown optimizer 'adamw2'" in err


def test_registry_bad_input(finished: tuple[dict[str, Any], str],
                            capsys: pytest.CaptureFixture[str]) -> None:
    _, sqlite_url = finished
    optuna.create_study(study_name="empty", storage=sqlite_url)
    assert main(["export", "empty", "--name", "x", "--storage", sqlite_url]) == 2
    assert "has no completed trial yet" in capsys.readouterr().err
    assert main(["registry", "show", "nope@production", "--storage", sqlite_url]) == 2
    assert "no registry entry named 'nope'" in capsys.readouterr().err
    assert main(["export", "tuning", "--name", "../escape",
                 "--storage", sqlite_url]) == 2
    assert "no slashes" in capsys.readouterr().err


def test_a_new_study_queues_the_tuned_default_and_can_import_an_earlier_round(
        finished: tuple[dict[str, Any], str]) -> None:
    old_spec, sqlite_url = finished
    new = dict(old_spec, name=old_spec["name"] + "-round2")
    spec = parse_spec(new)
    study, created = create_or_join(spec, open_storage(sqlite_url),
                                    warm_start=old_spec["name"])
    assert created
    row = _row(sqlite_url)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    labels = [t.user_attrs["hps_baseline"] for t in waiting]
    assert labels == ["slow", "fast", f"tuned-default:row {row.id}"]
    assert waiting[2].system_attrs["fixed_params"]["lr"] == pytest.approx(row.params["lr"])
    imported = [t for t in study.get_trials() if "hps_imported_from" in t.user_attrs]
    old = optuna.load_study(study_name=old_spec["name"], storage=sqlite_url)
    assert len(imported) == len(old.trials)
    assert {t.value for t in imported} == {t.value for t in old.trials}
    from search.run.budget import budget_left

    assert budget_left(study, 3)  # imported history does not use the new budget


def test_resolution_layers_without_a_database() -> None:
    entry = get_trainer("cifar")
    res = resolve_config(entry, explicit={"optimizer": "adam", "batch_size": 64},
                         tuned={"lr": 0.004, "batch_size": 128, "weight_decay": 0.1,
                                "dataset": "elsewhere"}, tuned_row_id=7, scaling_rule="none")
    assert res.config.lr == 0.004 and res.config.weight_decay == 0.1
    assert res.config.dataset == "synthetic"  # a tuned row never moves the data
    assert res.sources["lr"] == "tuned default (row 7)" and res.sources["batch_size"] == "explicit"
    assert res.sources["eps"] == "code default (optimizer-settings document)"
    assert res.notes == ()


def test_pinned_registry_versions_are_queued_and_unknown_pins_fail(
        finished: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]) -> None:
    old_spec, sqlite_url = finished
    assert main(["export", old_spec["name"], "--name", "pinned", "--alias", "production",
                 "--storage", sqlite_url]) == 0
    capsys.readouterr()
    spec = parse_spec(dict(old_spec, name="with-pins", pins=["pinned@production"]))
    study, _ = create_or_join(spec, open_storage(sqlite_url))
    labels = [t.user_attrs["hps_baseline"] for t in study.get_trials()]
    # the pin equals the promoted tuned default (same trial), so it is queued once
    assert labels[:2] == ["slow", "fast"] and len(labels) == 3
    assert labels[2].startswith("tuned-default:row")
    bad = parse_spec(dict(old_spec, name="bad-pins", pins=["pinned@staging"]))
    from storage import StorageError

    with pytest.raises(StorageError, match="has no alias 'staging'"):
        create_or_join(bad, open_storage(sqlite_url))
    assert "bad-pins" not in optuna.get_all_study_names(sqlite_url)  # nothing half-made
