"""A database that cannot write (a read-only directory or mount, a full disk) is one line, not
a traceback, and a disk that fills mid-study leaves the study intact: free space, launch again,
and it finishes.

Real where this machine allows it: as root, a tmpfs is mounted (read-only by remounting it,
full by filling it); without root, a directory is made read-only with chmod. Where neither
works (root in a container without mount rights) the read-only case is simulated by making
``os.access`` answer "not writable" and the full-disk case by SQLite's own page limit
(``PRAGMA max_page_count``: SQLite then reports SQLITE_FULL, "database or disk is full", as it
does on a full disk); each test says which it ran in its parameters or skip reason.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.run.launch import create_or_join
from search.run.worker import run_worker
from search.study.study_spec import parse_spec
from storage import StorageError, open_storage
from storage.resilient import ResilientStorage, is_connection_error, write_problem

_ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str, trials: int, *, epoch_s: float = 0.02) -> dict[str, Any]:
    return {
        "name": name, "trainer": "tests.search.hanging_trainer",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": trials, "workers": 2},
        "config": {"epochs": 5, "epoch_s": epoch_s},
        "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "fault_tolerance": {"heartbeat_interval_s": 1, "grace_period_s": 3},
    }


def _write(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs at ``where``; None if done, else why not."""
    if os.geteuid() != 0:
        return "not root"
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")


def _unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


# ---------------------------------------------------------------- the classification


class _Refusing:
    """An inner storage whose every call fails as a database that cannot write does."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.calls = 0

    def get_all_studies(self) -> Any:
        self.calls += 1
        try:
            raise sqlalchemy.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError(
                self.message))
        except sqlalchemy.exc.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the "
                                                         "commit.") from exc


@pytest.mark.parametrize(("message", "kind"), [
    ("database or disk is full", "full"),
    ("attempt to write a readonly database", "read-only"),
    ('could not extend file "base/16384/2619": No space left on device', "full"),
])
def test_a_database_that_cannot_write_is_one_line_and_not_retried(message: str,
                                                                  kind: str) -> None:
    inner = _Refusing(message)
    slept: list[float] = []
    storage = ResilientStorage(inner, sleep=slept.append)  # type: ignore[arg-type, abstract]
    with pytest.raises(StorageError) as caught:
        storage.get_all_studies()
    line = str(caught.value)
    assert f"is {kind} ({message[:40]}" in line and "\n" not in line
    assert inner.calls == 1 and slept == []  # not taken for a lost connection
    assert write_problem(caught.value) == kind and not is_connection_error(caught.value)


# ---------------------------------------------------------------- read-only


@pytest.fixture
def read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A directory holding a study's database, then made read-only; and how (real or not)."""
    where = tmp_path / "ro"
    why_not = _mount_tmpfs(where, "8m")
    if why_not is None:
        how = "read-only tmpfs mount"
    else:
        where.mkdir(exist_ok=True)
        how = "chmod" if os.geteuid() != 0 else f"simulated: os.access (no mount: {why_not})"
    url = f"sqlite:///{where / 'study.db'}"
    try:
        handle = open_storage(url)
        create_or_join(parse_spec(_spec("frozen", 2)), handle)
        handle.close()  # nothing open for writing: a mount can turn read-only
        if how == "read-only tmpfs mount":
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        elif how == "chmod":
            where.chmod(0o555)
        else:
            real_access = os.access

            def access(path: Any, mode: int, **kwargs: Any) -> bool:
                if mode & os.W_OK and Path(path).resolve().is_relative_to(where.resolve()):
                    return False
                return real_access(path, mode, **kwargs)

            monkeypatch.setattr(os, "access", access)
        yield where, how
    finally:
        if how == "chmod":
            where.chmod(0o755)
        elif how == "read-only tmpfs mount":
            _unmount(where)


def test_a_read_only_database_is_one_line(read_only_dir: tuple[Path, str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    where, how = read_only_dir
    url = f"sqlite:///{where / 'study.db'}"
    spec = _write(tmp_path / "spec.yaml", _spec("frozen", 4))
    capsys.readouterr()
    for argv in (["status", "frozen", "--storage", url],
                 ["launch", str(spec), "--storage", url, "--no-promote"],
                 ["studies", "--storage", f"sqlite:///{where / 'new.db'}"]):
        assert main(argv) == 2, (how, argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and " is read-only (" in err[0], (how, err)
        assert "Traceback" not in err[0]
    assert not (where / "new.db").exists()


# ---------------------------------------------------------------- full


@pytest.mark.slow
def test_a_disk_that_fills_mid_study_is_one_line_and_the_study_goes_on_after(
        tmp_path: Path) -> None:
    where = tmp_path / "small"
    why_not = _mount_tmpfs(where, "16m")
    if why_not is not None:
        pytest.skip(f"no tmpfs to fill ({why_not}); the simulated full-disk test covers it")
    try:
        url = f"sqlite:///{where / 'study.db'}"
        spec = _write(tmp_path / "spec.yaml", _spec("fills", 40, epoch_s=0.05))
        launcher = subprocess.Popen(
            [sys.executable, "-m", "search", "launch", str(spec), "--storage", url,
             "--no-promote", "--threads-per-worker", "1"], cwd=_ROOT,
            env={**os.environ, "PYTHONPATH": str(_ROOT)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = _finished(url, "fills")
                if done >= 4:
                    break
                time.sleep(0.2)
            assert done >= 4, "the study did not start"
            with open(where / "ballast", "wb") as ballast:  # fill what is left of the disk
                try:
                    while True:
                        ballast.write(b"\0" * 65536)
                        ballast.flush()
                except OSError:
                    pass
            _, err = launcher.communicate(timeout=120)
        finally:
            if launcher.poll() is None:
                os.killpg(launcher.pid, 9)
                launcher.communicate(timeout=10)
        last = err.strip().splitlines()[-1]
        assert launcher.returncode == 2, err[-3000:]
        assert last.startswith("hpsearch: error: storage ") and " is full (" in last, last
        stopped_at = _finished(url, "fills")
        assert stopped_at < 40
        (where / "ballast").unlink()
        with sqlite3.connect(where / "study.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # free space, the same launch again: it finishes the budget
        assert main(["launch", str(spec), "--storage", url, "--no-promote",
                     "--threads-per-worker", "1"]) == 0
        assert _finished(url, "fills") == 40
    finally:
        _unmount(where)


def _finished(url: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def test_a_full_database_mid_study_is_one_line_and_leaves_the_study_intact(
        tmp_path: Path, sqlite_url: str) -> None:
    """Simulated: SQLite's page limit gives the same SQLITE_FULL as a full disk, on any
    machine."""
    spec = parse_spec(_spec("limited", 200, epoch_s=0.0))
    handle = open_storage(sqlite_url)
    create_or_join(spec, handle)
    handle.close()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    worker_handle = open_storage(sqlite_url)
    worker_handle.optuna()

    @sqlalchemy.event.listens_for(worker_handle.engine, "connect")
    def limit(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 8}")

    worker_handle.engine.dispose()  # reconnect with the limit
    with pytest.raises(StorageError) as caught:
        run_worker(spec, worker_handle)
    line = str(caught.value)
    assert " is full (database or disk is full)" in line and "\n" not in line
    worker_handle.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    done = _finished(sqlite_url, "limited")
    assert 0 < done < 200
    # the limit lifted (space freed), the study goes on: a worker finishes another trial
    spec_more = parse_spec({**_spec("limited", done + 1, epoch_s=0.0)})
    summary = run_worker(spec_more, open_storage(sqlite_url))
    assert summary.trials_run >= 1 and _finished(sqlite_url, "limited") >= done + 1


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_reclaimed(
        tmp_path: Path) -> None:
    """A worker killed (or a disk that filled) between creating a trial and recording its
    first heartbeat leaves a RUNNING trial that never beat. Optuna never counts such a trial
    stale, so with the budget spent the next launch's workers waited on it forever. Now it is
    failed after twice the grace period and its retry runs."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = _write(tmp_path / "spec.yaml", _spec("silent", 2))
    assert main(["launch", str(spec), "--storage", url, "--no-promote", "--trials", "1",
                 "--threads-per-worker", "1"]) == 0
    study = optuna.load_study(study_name="silent", storage=url)
    orphan = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True)})
    launcher = subprocess.Popen(
        [sys.executable, "-m", "search", "launch", str(spec), "--storage", url, "--no-promote",
         "--threads-per-worker", "1"], cwd=_ROOT, env={**os.environ, "PYTHONPATH": str(_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = launcher.communicate(timeout=90)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, 9)
            launcher.communicate(timeout=10)
    assert launcher.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="silent", storage=url).get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == orphan.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
