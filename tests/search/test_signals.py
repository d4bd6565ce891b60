"""A launcher stopped by SIGTERM or SIGHUP stops like Ctrl-C; one killed outright takes its local
workers with it; ``hpsearch status`` points at trials whose worker is gone.

Real processes: ``hpsearch launch`` runs as a subprocess in a session of its own (so its
workers share its process group), and every test kills that whole group when it ends, passed or
not, so no worker outlives a test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import psutil
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from search.cli import main

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and prctl")

_ROOT = Path(__file__).resolve().parents[2]


def _slow_spec(tmp_path: Path, name: str) -> Path:
    """One worker, trials of 40 epochs of 0.25 s: a trial is surely running when we signal."""
    spec = {
        "name": name, "trainer": "tests.search.hanging_trainer",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": 2, "workers": 1},
        "config": {"epochs": 40, "epoch_s": 0.25},
        "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "fault_tolerance": {"max_retries": 3},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class Launcher:
    """``hpsearch launch`` in a subprocess, in its own session and process group."""

    def __init__(self, spec: Path, url: str, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "search", "launch", str(spec), "--storage", url,
             "--no-promote", "--threads-per-worker", "1", *extra],
            cwd=_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.pgid = self.proc.pid

    def workers(self) -> list[psutil.Process]:
        """The launcher's worker processes (multiprocessing's resource tracker aside)."""
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [c for c in children if "resource_tracker" not in " ".join(_cmdline(c))]

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            self.proc.communicate(timeout=10)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


@pytest.fixture
def launchers() -> Iterator[list[Launcher]]:
    started: list[Launcher] = []
    yield started
    for launcher in started:
        launcher.kill_group()
        for p in _group_members(launcher.pgid):  # anything that left the group's leader
            p.kill()


def _group_members(pgid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                found.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return []
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def _running_with_epochs(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in _trials(url, name)
            if t.state == TrialState.RUNNING and len(t.intermediate_values) >= 2]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def _assert_failed_and_requeued(url: str, name: str, number: int, reason_part: str) -> None:
    trials = _trials(url, name)
    stopped = trials[number]
    assert stopped.state == TrialState.FAIL, [(t.number, t.state) for t in trials]
    assert reason_part in stopped.user_attrs.get("fail_reason", ""), stopped.user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING, \
        [(t.number, t.state, t.system_attrs) for t in trials]
    assert retries[0].params == stopped.params


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_to_the_launcher_stops_it_as_ctrl_c_does(
        tmp_path: Path, sqlite_url: str, launchers: list[Launcher], signum: int) -> None:
    name = f"signalled-{signum}"
    launcher = Launcher(_slow_spec(tmp_path, name), sqlite_url)
    launchers.append(launcher)
    running = _wait_for("a running trial", lambda: _running_with_epochs(sqlite_url, name))
    workers = [p.pid for p in launcher.workers()]
    assert workers
    launcher.proc.send_signal(signum)
    out, err = launcher.proc.communicate(timeout=60)
    assert launcher.proc.returncode == 128 + signum, (out, err)
    name_of = signal.Signals(signum).name
    assert f"hpsearch: stopped by {name_of}; the workers were stopped" in err, err
    assert "Traceback" not in err, err
    assert _alive(workers) == []
    _assert_failed_and_requeued(sqlite_url, name, running[0].number, "exited with code")


@pytest.mark.slow
def test_local_workers_die_with_a_killed_launcher_and_requeue_their_trial(
        tmp_path: Path, sqlite_url: str, launchers: list[Launcher]) -> None:
    name = "orphaned"
    launcher = Launcher(_slow_spec(tmp_path, name), sqlite_url)
    launchers.append(launcher)
    running = _wait_for("a running trial", lambda: _running_with_epochs(sqlite_url, name))
    workers = [p.pid for p in launcher.workers()]
    assert workers
    launcher.proc.kill()  # SIGKILL: no clean-up in the launcher at all
    _, err = launcher.proc.communicate(timeout=40)  # the workers hold its pipes until they exit
    _wait_for("the workers to exit", lambda: _alive(workers) == [], timeout_s=30)
    assert "lost its launcher" in err, err
    _assert_failed_and_requeued(sqlite_url, name, running[0].number, "lost its launcher")


@pytest.mark.slow
def test_workers_told_to_outlive_the_launcher_do(
        tmp_path: Path, sqlite_url: str, launchers: list[Launcher]) -> None:
    name = "outliving"
    launcher = Launcher(_slow_spec(tmp_path, name), sqlite_url, "--workers-outlive-launcher")
    launchers.append(launcher)
    _wait_for("a running trial", lambda: _running_with_epochs(sqlite_url, name))
    workers = [p.pid for p in launcher.workers()]
    assert workers
    launcher.proc.kill()
    launcher.proc.wait(timeout=10)  # not communicate: the worker holds its pipes open
    time.sleep(3)  # the lifeline polls every second; a tied worker would be gone by now
    assert _alive(workers) == workers
    # still training: its trial goes on reporting epochs
    before = len(_running_with_epochs(sqlite_url, name)[0].intermediate_values)
    _wait_for("another epoch", lambda: len(_running_with_epochs(sqlite_url, name)[0]
                                           .intermediate_values) > before, timeout_s=20)


def test_status_marks_running_trials_whose_heartbeat_is_stale(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from storage.optuna_internals import trial_tables

    storage = optuna.storages.RDBStorage(sqlite_url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="gone", storage=storage)
    alive, gone = study.ask(), study.ask()
    for trial in (alive, gone):
        storage.record_heartbeat(trial._trial_id)
    _, _, beats = trial_tables()
    with storage.engine.begin() as conn:
        conn.execute(sqlalchemy.update(beats).where(beats.c.trial_id == gone._trial_id)
                     .values(heartbeat=dt.datetime(2000, 1, 1)))
    storage.engine.dispose()
    assert main(["status", "gone", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    stale = [line for line in out.splitlines() if "stale heartbeat" in line]
    assert len(stale) == 1, out
    assert stale[0].strip().startswith(f"trial {gone.number} is RUNNING with a stale heartbeat")
    assert "grace 120 s" in stale[0]  # a study without an hpsearch spec: the default grace


def test_stop_on_signals_raises_once_and_restores_the_handlers() -> None:
    from search.run.signals import LauncherStopped, stop_on_signals

    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.getsignal(s) for s in stopping}
    with pytest.raises(LauncherStopped) as caught, stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        finally:
            os.kill(os.getpid(), signal.SIGHUP)  # while stopping: logged and ignored
            time.sleep(0.1)
    assert caught.value.signal_name == "SIGTERM" and caught.value.exit_code == 143
    assert isinstance(caught.value, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in stopping} == before  # all three given back
