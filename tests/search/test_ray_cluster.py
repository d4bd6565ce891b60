"""Distributed studies for real: a two-node Ray cluster on this machine (``ray start --head``
and a second ``ray start --address``), the PostgreSQL server, a worker killed with SIGKILL in
the middle of a trial, and a PostgreSQL restart in the middle of a study."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import TINY_SPEC, _postgres_required, free_port, running_trial_past_epoch

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head node and a second node, one CPU each, torn down after the module."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([str(BIN / "ray"), "start", "--head", "--port", str(port),
                    "--include-dashboard", "false", *common], check=True, env=env,
                   capture_output=True, timeout=120)
    try:
        subprocess.run([str(BIN / "ray"), "start", "--address", address, *common], check=True,
                       env=env, capture_output=True, timeout=120)
        _wait_for_nodes(address, 2)
        yield address
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True,
                       timeout=120)


def _wait_for_nodes(address: str, count: int) -> None:
    probe = (f"import ray, time\nray.init(address={address!r}, logging_level='ERROR')\n"
             "for _ in range(60):\n"
             f"    if len([n for n in ray.nodes() if n['Alive']]) >= {count}: break\n"
             "    time.sleep(0.5)\n"
             "else: raise SystemExit('nodes did not join')\n")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)


def _spec(tmp_path: Path, name: str, **changes: Any) -> Path:
    raw = {k: v for k, v in TINY_SPEC.items() if k != "baselines"}
    raw = yaml.safe_load(yaml.safe_dump(raw))
    raw["name"] = name
    raw["pruner"] = {"name": "none"}
    raw["success"] = {}
    raw.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finished(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_two_node_cluster_runs_exactly_the_budget(ray_address: str, pg_url: str,
                                                  tmp_path: Path) -> None:
    spec = _spec(tmp_path, "ray-budget", budget={"trials": 6, "workers": 2})
    run = subprocess.run([str(BIN / "hpsearch"), "launch", str(spec), "--storage", pg_url,
                          "--executor", "ray", "--address", ray_address, "--no-promote"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 Ray workers on Ray cluster at" in run.stdout
    assert "2 workers will hold up to 6 database connections" in run.stdout
    trials = optuna.load_study(study_name="ray-budget", storage=pg_url).get_trials()
    assert len(_finished(trials)) == 6 == len(trials)
    assert len({t.user_attrs["node"] for t in trials}) == 2  # both nodes ran trials
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in trials)


def test_worker_killed_mid_trial_is_retried_from_its_checkpoint(
        ray_address: str, pg_url: str, tmp_path: Path) -> None:
    config = {**TINY_SPEC["config"], "synthetic_size": 1500, "epochs": 6, "patience": 6}
    spec = _spec(tmp_path, "ray-kill", budget={"trials": 3, "workers": 2}, config=config,
                 fault_tolerance={"checkpoint_dir": str(tmp_path / "ckpt"),
                                  "heartbeat_interval_s": 1, "grace_period_s": 4})
    launcher = subprocess.Popen([str(BIN / "hpsearch"), "launch", str(spec), "--storage",
                                 pg_url, "--executor", "ray", "--address", ray_address,
                                 "--no-promote"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        victim = running_trial_past_epoch(pg_url, "ray-kill", epoch=2, timeout_s=120)
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        out, _ = launcher.communicate(timeout=240)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, out[-3000:]
    trials = optuna.load_study(study_name="ray-kill", storage=pg_url).get_trials()
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert retries[0].user_attrs["resumed_from_epoch"] >= 2  # not from scratch
    assert min(retries[0].intermediate_values) > 2
    assert len(_finished(trials)) == 3
    assert not (tmp_path / "ckpt" / "ray-kill" / f"trial-{victim.number}").exists()


def _pg_restart_command() -> list[str] | None:
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") is None or not clusters.is_dir():
        return None
    version = sorted(p.name for p in clusters.iterdir())[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]


def test_study_survives_a_postgresql_restart(pg_url: str, tmp_path: Path) -> None:
    command = _pg_restart_command()
    if command is None:
        message = "pg_ctlcluster is not available to restart the server"
        if _postgres_required():
            pytest.fail(message)
        pytest.skip(message)
    config = {**TINY_SPEC["config"], "synthetic_size": 1000, "epochs": 4}
    spec = _spec(tmp_path, "pg-restart", budget={"trials": 6, "workers": 2}, config=config)
    launcher = subprocess.Popen([str(BIN / "hpsearch"), "launch", str(spec), "--storage",
                                 pg_url, "--no-promote"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        running_trial_past_epoch(pg_url, "pg-restart", epoch=1, timeout_s=120)
        restarted_at = datetime.datetime.now()  # Optuna stores naive local times
        restart = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr
        out, _ = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, out[-3000:]
    trials = optuna.load_study(study_name="pg-restart", storage=pg_url).get_trials()
    assert len(_finished(trials)) == 6
    assert not [t for t in trials if t.state == TrialState.FAIL], out[-3000:]
    # the restart really happened mid-study: a trial ran across it
    assert any(t.datetime_start and t.datetime_complete
               and t.datetime_start < restarted_at < t.datetime_complete for t in trials)
