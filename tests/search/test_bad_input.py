"""Issue 15's bad inputs: each refused before anything is written (no study created or joined,
no budget rewritten, no trial added), with one line naming the value and the fix, exit 2.

Every case runs against a database that already holds the spec's study (two trials, a user
attribute, hpsearch's tables), and checks every row of every table is as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from search.cli.common import machine_cores
from search.cli.main import main

Rows = dict[str, list[tuple[Any, ...]]]


def snapshot(db: Path) -> Rows | None:
    """Every row of every table of the SQLite file ``db``; None when there is no file."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in sorted(tables)}
    finally:
        conn.close()


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    """``argv`` exits 2 with one line on stderr holding every fragment, and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    assert err.startswith("hpsearch: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def existing(tmp_path: Path, tiny_spec: dict[str, Any]) -> tuple[str, Path]:
    """An SQLite database holding the tiny spec's study; its URL and file."""
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    assert main(["db", "upgrade", "--storage", url]) == 0
    study = optuna.create_study(study_name=tiny_spec["name"], storage=url,
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 0.001, 1.0, log=True), n_trials=2)
    study.set_user_attr("mine", 1)
    return url, db


def _spec(tmp_path: Path, spec: dict[str, Any], name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _with(spec: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


SPEC_CASES = [
    (["sampler", "n_startup_trials"], "x", "sampler.n_startup_trials: 'x' is not a whole number"),
    (["sampler", "seed"], "x", "sampler.seed: 'x' is not a whole number"),
    (["pruner"], {"name": "hyperband", "reduction_factor": -2},
     "pruner.reduction_factor: -2 is not a whole number >= 2"),
    (["pruner", "n_warmup_steps"], -1, "pruner.n_warmup_steps: -1"),
    # An exponent this size never finished computing: every worker hung at the first report.
    (["pruner"], {"name": "successive_halving", "min_early_stopping_rate": 10**21},
     "pruner.min_early_stopping_rate: 1000000000000000000000 is not a whole number 0 to 64"),
    (["pruner", "n_startup_trials"], 1.5, "pruner.n_startup_trials: 1.5"),
    (["pruner"], {"name": "percentile", "percentile": 200}, "Percentile must be between"),
    (["objective", "metric"], "best_val_accuracy",
     "objective.metric: trainer 'cifar' never returns 'best_val_accuracy'"),
    (["objective", "report"], "val_accuracy", "never reports 'val_accuracy'"),
    (["space", "milestones", "count"], 5,
     "space.milestones.count: 5 distinct milestones do not fit a 4-epoch budget"),
    (["space", "batch_size", "choices"], [32, "big", None],
     "space.batch_size.choices: 'big' is not a whole number (int)"),
    (["space", "batch_size", "choices"], [32, 0], "space.batch_size.choices: 0: "),
    (["space", "batch_size"], {"type": "float", "low": 16, "high": 64},
     "space.batch_size.type: batch_size takes a whole number (int); search it as type: int"),
    (["config", "width"], "wide", "config.width: 'wide' is not a number (float)"),
    (["config", "amp"], False, "config.amp: False is not text (str)"),
    (["budget", "trials"], 10**21, "budget.trials: 1000000000000000000000 is above the maximum"),
    (["fault_tolerance"], {"checkpoint_dir": "__FILE__"}, "is a file, not a directory"),
]


@pytest.mark.parametrize(("path", "value", "message"), SPEC_CASES,
                         ids=[".".join(map(str, c[0])) + f"={c[1]!r}"[:30] for c in SPEC_CASES])
def test_a_bad_spec_changes_nothing(
        tmp_path: Path, tiny_spec: dict[str, Any], existing: tuple[str, Path],
        capsys: pytest.CaptureFixture[str], path: list[Any], value: Any, message: str) -> None:
    url, db = existing
    if value == {"checkpoint_dir": "__FILE__"}:
        (tmp_path / "a-file").write_text("not a directory")
        value = {"checkpoint_dir": str(tmp_path / "a-file")}
    before = snapshot(db)
    refused(capsys, ["launch", _spec(tmp_path, _with(tiny_spec, path, value)), "--storage",
                     url], message)
    assert snapshot(db) == before


def test_bad_flags_change_nothing(tmp_path: Path, tiny_spec: dict[str, Any],
                                  existing: tuple[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, db = existing
    spec = _spec(tmp_path, tiny_spec)
    (tmp_path / "a-file").write_text("x")
    before = snapshot(db)
    cores = machine_cores()
    cases: list[tuple[list[str], str | tuple[str, ...]]] = [
        (["--extra-seeds", "-1"], "--extra-seeds -1 is out of range; give 0"),
        (["--trials", str(10**21)], f"--trials {10**21} is out of range; give a whole number "
                                    "from 1 to 1_000_000_000"),
        (["--trials", "0"], "--trials 0 is out of range"),
        (["--epochs", "0"], "--epochs 0 is out of range"),
        (["--epochs", "2"], "--epochs 2: space.milestones: 2 distinct milestones do not fit"),
        (["--workers", str(4 * cores + 1)], f"--workers {4 * cores + 1}: this machine has "
                                            f"{cores} cores; use --workers {cores}"),
        (["--workers", str(4 * cores + 1), "--threads-per-worker", "1"],
         f"room for {4 * cores} such workers"),
        (["--checkpoint-dir", str(tmp_path / "a-file")],
         ("fault_tolerance.checkpoint_dir: ", "is a file, not a directory")),
        (["--set", "width=wide"], "--set width=wide: width takes a number (float); e.g. "
                                  "--set width=1.0"),
        (["--set", "augment=maybe"], "augment takes true or false (bool)"),
        (["--set", "amp=turbo"], "unknown amp 'turbo'"),
        (["--storage", "postgresql+psycopg2://user:secret@localhost:abc/db"],
         ("has a port that is not a number", "user:***@")),
        (["--storage", "postgresql+psycopg2://user@localhost:99999/db"], "has port 99999"),
    ]
    for flags, message in cases:
        argv = ["launch", spec, *(["--storage", url] if "--storage" not in flags else []),
                *flags]
        fragments = (message,) if isinstance(message, str) else message
        err = refused(capsys, argv, *fragments)
        assert "secret" not in err
        assert snapshot(db) == before, flags


def test_workers_from_the_spec_beyond_the_cores_are_named_as_such(
        tmp_path: Path, tiny_spec: dict[str, Any], existing: tuple[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    url, db = existing
    before = snapshot(db)
    workers = machine_cores() + 1
    tiny_spec["budget"]["workers"] = workers
    refused(capsys, ["launch", _spec(tmp_path, tiny_spec), "--storage", url],
            f"budget.workers {workers} (in ", "--threads-per-worker 1")
    assert snapshot(db) == before


def test_a_schema_from_a_newer_hpsearch_is_refused(
        tmp_path: Path, tiny_spec: dict[str, Any], existing: tuple[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    from storage import head_revision

    url, db = existing
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE hps_alembic_version SET version_num = '9999_future'")
    before = snapshot(db)
    message = (f"the database's hpsearch schema is at revision 9999_future, newer than this "
               f"hpsearch (head {head_revision()}); upgrade hpsearch")
    refused(capsys, ["db", "upgrade", "--storage", url], message)
    refused(capsys, ["launch", _spec(tmp_path, tiny_spec), "--storage", url,
                     "--no-promote"], message)
    assert snapshot(db) == before


def test_output_places_that_cannot_be_written(
        tmp_path: Path, tiny_spec: dict[str, Any], existing: tuple[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    url, db = existing
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    before = snapshot(db)
    refused(capsys, ["registry", "export", "cfg@1", "--out", str(a_file), "--storage", url],
            f"--out {a_file}: that is a file, not a directory")
    refused(capsys, ["registry", "export", "cfg@1", "--out", str(a_file / "sub"),
                     "--storage", url], f"{a_file} is a file, so no directory can be made")
    refused(capsys, ["report", tiny_spec["name"], "--out", str(a_file), "--storage", url],
            "that is a file, not a directory")
    assert a_file.read_text() == "keep me"
    assert snapshot(db) == before


def test_serving_and_watching_flags(existing: tuple[str, Path], tiny_spec: dict[str, Any],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    url, db = existing
    before = snapshot(db)
    refused(capsys, ["dashboard", "--port", "99999", "--storage", url],
            "--port 99999 is not a TCP port; give one from 1 to 65535")
    refused(capsys, ["status", tiny_spec["name"], "--watch", "-1", "--storage", url],
            "--watch -1.0 is not a positive number of seconds")
    refused(capsys, ["status", tiny_spec["name"], "--watch", "nan", "--storage", url],
            "--watch nan")
    refused(capsys, ["defaults", "promote", tiny_spec["name"], "--extra-seeds", "-1",
                     "--storage", url], "--extra-seeds -1 is out of range")
    refused(capsys, ["status", tiny_spec["name"], "--storage",
                     "postgresql://u@localhost:abc/db"], "has a port that is not a number")
    assert snapshot(db) == before


def test_nothing_is_created_when_the_database_did_not_exist(
        tmp_path: Path, tiny_spec: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    refused(capsys, ["launch", _spec(tmp_path, tiny_spec, "ok.yaml"), "--storage", url,
                     "--trials", str(10**21)], "--trials")
    tiny_spec["objective"]["metric"] = "best_val_accuracy"
    refused(capsys, ["launch", _spec(tmp_path, tiny_spec), "--storage", url],
            "never returns 'best_val_accuracy'")
    assert not (tmp_path / "fresh.db").exists()


@pytest.mark.slow
def test_a_ray_cluster_without_the_gpus_a_trial_asks_for_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The executor is checked before the study exists: a local Ray instance has no GPU."""
    from tests.conftest import TINY_SPEC

    db = tmp_path / "ray.db"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**TINY_SPEC, "name": "ray-gpu"}))
    code = main(["launch", str(path), "--storage", f"sqlite:///{db}", "--executor", "ray",
                 "--gpus-per-trial", "1", "--workers", "1"])
    # Ray's own start-up may log a warning line of its own; ours is one line, the last.
    ours = [line for line in capsys.readouterr().err.strip().splitlines()
            if line.startswith("hpsearch:")]
    assert code == 2 and len(ours) == 1
    assert "each trial asks for 1 GPU but the Ray cluster has 0" in ours[0]
    assert not db.exists() or "ray-gpu" not in optuna.get_all_study_names(f"sqlite:///{db}")
