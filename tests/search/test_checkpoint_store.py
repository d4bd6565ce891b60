"""Per-trial checkpoints in an Optuna artifact store: uploaded when they change, the newest one
handed to a retry of the trial, all removed when it finishes; a worker killed mid-trial is
resumed from the store by a worker that has no shared directory with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.errors import SpecError
from search.trial.checkpoints import TrialCheckpoints, open_artifact_store
from storage.attrs import ARTIFACT_ATTR
from tests.conftest import running_trial_past_epoch
from trainers.checkpoint import save_checkpoint

BIN = Path(sys.executable).parent


def _retry_of(study: optuna.Study, trial: optuna.Trial) -> optuna.Trial:
    """Fail ``trial`` as the heartbeat would and take its re-queued copy."""
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    retry(study, study._storage.get_trial(trial._trial_id))
    return study.ask()


def test_uploads_on_change_restores_the_newest_to_a_retry_and_cleans_up(
        tmp_path: Path, sqlite_url: str) -> None:
    store_dir = tmp_path / "store"
    store = open_artifact_store(f"file://{store_dir}")
    study = optuna.create_study(storage=sqlite_url, study_name="ckpt")
    first = study.ask()
    first.suggest_float("lr", 0.01, 0.1)
    a = TrialCheckpoints(first, study_name="ckpt", checkpoint_dir=None, artifact_store=store)
    assert not a.is_retry and a.restore() is None
    a.after_epoch(1)  # nothing written yet: nothing uploaded
    assert list(store_dir.iterdir()) == []
    save_checkpoint(a.directory, {"epoch": 1})
    a.after_epoch(1)
    a.after_epoch(1)  # unchanged: not uploaded again
    assert len(list(store_dir.iterdir())) == 1
    time.sleep(0.01)
    save_checkpoint(a.directory, {"epoch": 2, "more": "a longer file"})
    two = (a.directory / "last.pt").read_bytes()
    a.after_epoch(2)
    assert [p.read_bytes() for p in store_dir.iterdir()] == [two]  # old one removed
    uploaded = study.trials[first.number].user_attrs[ARTIFACT_ATTR]
    assert uploaded["epoch"] == 2

    second = _retry_of(study, first)
    b = TrialCheckpoints(second, study_name="ckpt", checkpoint_dir=None, artifact_store=store)
    assert b.is_retry and b.first == first.number and b.directory != a.directory
    assert b.restore() == 2
    assert (b.directory / "last.pt").read_bytes() == two
    b.finished()
    assert list(store_dir.iterdir()) == [] and not b.directory.exists()


def test_bad_artifact_stores_are_one_line_naming_the_value(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"'s3://bucket/prefix' is not a directory, file:// "
                                        r"URL, s3://BUCKET or gs://BUCKET"):
        open_artifact_store("s3://bucket/prefix")
    with pytest.raises(SpecError, match=r"'ftp://host/x' is not a directory"):
        open_artifact_store("ftp://host/x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SpecError, match="cannot create directory"):
        open_artifact_store(str(blocker / "store"))
    try:
        import boto3  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="needs the boto3 package on every worker: "
                                            "pip install boto3"):
            open_artifact_store("s3://bucket")


def test_launch_refuses_a_bad_artifact_store_before_writing(
        tiny_spec: dict[str, Any], tmp_path: Path, sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    code = main(["launch", str(path), "--storage", sqlite_url, "--artifact-store",
                 "ftp://host/x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fault_tolerance.artifact_store" in err[0]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


@pytest.mark.slow
def test_a_killed_worker_s_trial_resumes_from_the_artifact_store(
        tiny_spec: dict[str, Any], tmp_path: Path, sqlite_url: str) -> None:
    spec = {k: v for k, v in tiny_spec.items() if k != "baselines"}
    spec.update(pruner={"name": "none"}, success={}, budget={"trials": 2, "workers": 1},
                config={**tiny_spec["config"], "synthetic_size": 1500, "epochs": 6,
                        "patience": 6},
                fault_tolerance={"artifact_store": str(tmp_path / "store")})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    launcher = subprocess.Popen([str(BIN / "hpsearch"), "launch", str(path), "--storage",
                                 sqlite_url, "--no-promote"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        victim = running_trial_past_epoch(sqlite_url, spec["name"], epoch=2, timeout_s=120,
                                          with_user_attr=ARTIFACT_ATTR)
        local = Path(tempfile.gettempdir()).glob(f"hpsearch-{spec['name']}-trial-"
                                                 f"{victim.number}-*")
        assert list(local), "the attempt checkpoints into a temporary directory"
        os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        out, _ = launcher.communicate(timeout=240)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, out[-3000:]
    trials = optuna.load_study(study_name=spec["name"], storage=sqlite_url).get_trials()
    assert trials[victim.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["resumed_from_epoch"] >= 2  # from the store, not scratch
    assert retries[0].user_attrs["retry_of"] == victim.number
    assert list((tmp_path / "store").iterdir()) == []  # finished: uploads removed
    # ...and the killed attempt's temporary directory on this machine, by the retry
    assert not list(Path(tempfile.gettempdir()).glob(f"hpsearch-{spec['name']}-trial-*"))
