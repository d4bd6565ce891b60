"""Workers through Optuna's gRPC storage proxy (``hpsearch proxy``): real gRPC servers on this
machine, real clients, the study asserted from the database behind them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from search.cli.main import main
from storage.attrs import BUDGET_ATTR, RECOVERY_ATTR, SPEC_ATTR
from storage.grpc_client import is_budget_spent, open_grpc_storage
from storage.grpc_proxy import BudgetSpentError, open_proxy_storage, serve
from storage.resilient import is_connection_error
from tests.conftest import PG_ADMIN_URL, free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]  # the stub trainer lives in benchmarks/


@pytest.fixture
def proxy_in_thread(sqlite_url: str) -> Iterator[str]:
    """``serve`` on a free port in this process (reaping every 0.2 s); its grpc:// URL."""
    port, stop, ready = free_port(), threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(sqlite_url,), daemon=True, kwargs={
        "host": "127.0.0.1", "port": port, "threads": 4, "reap_every_s": 0.2,
        "on_ready": ready.set, "stop": stop})
    thread.start()
    assert ready.wait(30), "the proxy did not start"
    yield f"grpc://127.0.0.1:{port}"
    stop.set()
    thread.join(30)


def test_the_proxy_creates_no_trial_past_the_budget(sqlite_url: str,
                                                   proxy_in_thread: str) -> None:
    client = open_grpc_storage(proxy_in_thread, heartbeat_interval_s=1)
    study = optuna.create_study(study_name="budget", storage=client)
    client.set_study_system_attr(study._study_id, BUDGET_ATTR, 2)
    study.enqueue_trial({"x": 0.5})  # a queued trial holds a slot...
    study.ask()  # ...and is what this takes
    study.ask()  # a new trial: the second slot
    with pytest.raises(Exception) as refused:
        study.ask()
    assert is_budget_spent(refused.value), refused.value
    # The queue still works past the budget: a retry re-queued by the proxy must run.
    client.create_new_trial(study._study_id, template_trial=optuna.trial.create_trial(
        state=TrialState.WAITING, params={}, distributions={}))
    assert study.ask().number == 2  # the refused call created nothing
    stored = optuna.load_study(study_name="budget", storage=sqlite_url).get_trials()
    assert [t.state for t in stored] == [TrialState.RUNNING] * 3


def test_a_silent_trial_is_failed_and_requeued_by_the_proxy(sqlite_url: str,
                                                           proxy_in_thread: str) -> None:
    client = open_grpc_storage(proxy_in_thread, heartbeat_interval_s=1)
    study = optuna.create_study(study_name="silent", storage=client)
    study.set_user_attr(RECOVERY_ATTR, {"grace_period_s": 1, "max_retries": 2})
    trial = study.ask({"lr": FloatDistribution(1e-3, 1.0, log=True)})
    lr = trial.params["lr"]
    client.record_heartbeat(trial._trial_id)  # one beat through gRPC, then the worker "dies"
    db = optuna.load_study(study_name="silent", storage=sqlite_url)
    deadline = time.monotonic() + 20
    while db.get_trials()[0].state == TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    trials = db.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert len(trials) == 2 and trials[1].state == TrialState.WAITING
    assert trials[1].params == {"lr": lr} and trials[1].system_attrs["failed_trial"] == 0
    assert "hps_heartbeat" not in trials[0].system_attrs  # recorded as Optuna's heartbeat


def test_a_trial_is_reaped_only_once_it_stops_beating(sqlite_url: str) -> None:
    storage = open_proxy_storage(sqlite_url, threads=2)
    study = optuna.create_study(study_name="alive", storage=storage)
    study.set_user_attr(RECOVERY_ATTR, {"grace_period_s": 1})
    trial = study.ask()
    storage.set_trial_system_attr(trial._trial_id, "hps_heartbeat", time.time())
    time.sleep(2.2)
    storage.set_trial_system_attr(trial._trial_id, "hps_heartbeat", time.time())
    assert storage.reap_stale_trials() == 0  # the second beat kept it alive...
    assert study.get_trials()[0].state == TrialState.RUNNING
    time.sleep(2.2)
    assert storage.reap_stale_trials() == 1  # ...and without it, the trial goes
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]
    storage.set_study_system_attr(study._study_id, BUDGET_ATTR, 1)
    assert study.ask().number == 1  # the re-queued retry is taken: the one slot
    with pytest.raises(BudgetSpentError, match="1 of 1 trials"):
        study.ask()
    # A study deleted behind the proxy's back is dropped from what it watches, quietly.
    optuna.delete_study(study_name="alive", storage=sqlite_url)
    assert storage.reap_stale_trials() == 0 and storage.served_studies() == []


def test_an_unreachable_proxy_is_a_retried_connection_error_and_one_line_for_users(
        tmp_path: Path, tiny_spec: dict[str, Any], sqlite_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from optuna.storages import GrpcStorageProxy

    port = free_port()  # nothing listens there
    with pytest.raises(Exception) as lost:
        GrpcStorageProxy(host="127.0.0.1", port=port).get_all_studies()
    assert is_connection_error(lost.value) and not is_budget_spent(lost.value)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    assert main(["launch", str(path), "--storage", sqlite_url, "--worker-storage",
                 f"grpc://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"hpsearch: error: no gRPC storage proxy answers at grpc://127.0.0.1:{port} "
                   "within 5 s; start one next to the database with hpsearch proxy --storage "
                   f"DATABASE_URL --port {port}")
    assert not (tmp_path / "study.db").exists()  # checked before anything was written
    assert main(["launch", str(path), "--worker-storage", "grpc://127.0.0.1"]) == 2
    assert "is not grpc://HOST:PORT" in capsys.readouterr().err
    assert main(["status", "x", "--storage", f"grpc://127.0.0.1:{port}"]) == 2
    assert "serves workers only" in capsys.readouterr().err


def test_workers_refuse_optuna_s_own_proxy_server(sqlite_url: str) -> None:
    """Optuna's server would store heartbeats and batched attributes as plain attributes and
    enforce no budget: a worker must not run behind it, and says so."""
    from storage import StorageError
    from storage.optuna_internals import optuna_proxy_server

    port = free_port()
    server = optuna_proxy_server(optuna.storages.RDBStorage(sqlite_url), "127.0.0.1", port)
    server.start()
    try:
        with pytest.raises(StorageError, match=r"not hpsearch's .* hpsearch proxy --storage"):
            open_grpc_storage(f"grpc://127.0.0.1:{port}", heartbeat_interval_s=1)
    finally:
        server.stop(grace=None)


STUB_SPEC: dict[str, Any] = {
    "trainer": "benchmarks.stub_trainer",
    "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
              "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}},
    "sampler": {"name": "tpe", "seed": 0}, "pruner": {"name": "median"},
}


def test_launch_and_a_plain_worker_through_the_proxy(
        tmp_path: Path, sqlite_url: str, proxy_in_thread: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**STUB_SPEC, "name": "stubby",
                                    "budget": {"trials": 2, "workers": 1}}))
    assert main(["launch", str(path), "--storage", sqlite_url, "--worker-storage",
                 proxy_in_thread, "--no-promote"]) == 0
    assert "2 trials run by this launcher" in capsys.readouterr().out
    db = optuna.load_study(study_name="stubby", storage=sqlite_url)
    attrs = db._storage.get_study_system_attrs(db._study_id)
    assert attrs[BUDGET_ATTR] == 2
    assert isinstance(attrs["hps_tuned_defaults"], list)  # the workers' snapshot
    db._storage.set_study_system_attr(db._study_id, BUDGET_ATTR, 3)  # one more slot
    assert main(["worker", "stubby", "--storage", proxy_in_thread]) == 0
    assert "worker 0 ran 1 trials (complete 1)" in capsys.readouterr().out
    # A study no launcher prepared for proxied workers: one line saying what to do.
    plain = optuna.create_study(study_name="bare", storage=sqlite_url)
    plain.set_user_attr(SPEC_ATTR, {**STUB_SPEC, "name": "bare"})
    assert main(["worker", "bare", "--storage", proxy_in_thread]) == 2
    assert "no tuned-defaults snapshot" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_through_the_proxy_run_the_budget_without_database_connections(
        pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proxy = subprocess.Popen([str(BIN / "hpsearch"), "proxy", "--storage", pg_url, "--port",
                              str(port), "--threads", "4"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env)
    database = sqlalchemy.make_url(pg_url).database
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:  # who holds connections to the study's database
        admin = sqlalchemy.create_engine(PG_ADMIN_URL, poolclass=sqlalchemy.pool.NullPool)
        with admin.connect() as conn:
            while not done.is_set():
                rows = conn.execute(sqlalchemy.text(
                    "SELECT application_name FROM pg_stat_activity WHERE datname = :d"),
                    {"d": database})
                seen.update(r[0] for r in rows)
                conn.rollback()
                time.sleep(0.05)
        admin.dispose()

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        assert proxy.stdout is not None
        assert "serving" in proxy.stdout.readline()
        spec = {
            "name": "proxied", "trainer": "benchmarks.stub_trainer",
            "objective": {"metric": "best_val_acc", "direction": "maximize",
                          "report": "val_acc"},
            "budget": {"trials": 20, "workers": 4},
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
                      "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2,
                                       "log": True}},
            "sampler": {"name": "tpe", "seed": 0}, "pruner": {"name": "median"},
        }
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        sampler.start()
        run = subprocess.run([str(BIN / "hpsearch"), "launch", str(path), "--storage", pg_url,
                              "--worker-storage", f"grpc://127.0.0.1:{port}", "--no-promote",
                              "--threads-per-worker", "1"], capture_output=True, text=True,
                             env=env, timeout=240)
    finally:
        done.set()
        proxy.send_signal(signal.SIGTERM)
        out, _ = proxy.communicate(timeout=30)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "(4 workers through the gRPC proxy hold none)" in run.stdout
    assert "proxy stopped" in out
    trials = optuna.load_study(study_name="proxied", storage=pg_url).get_trials()
    assert len(trials) == 20  # four workers racing for the last slots, none over
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2
    # The record arrived as user attributes, written in one call each time.
    assert all("config" in t.user_attrs and "code_version" in t.user_attrs for t in trials)
    assert not any({"hps_user_attrs", "hps_heartbeat"} & set(t.system_attrs) for t in trials)
    # Every trial beat through the proxy into Optuna's heartbeat table.
    engine = sqlalchemy.create_engine(pg_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        beats = conn.execute(sqlalchemy.text("SELECT count(*) FROM trial_heartbeats"))
        assert beats.scalar_one() == 20
    engine.dispose()
    # Only the proxy and the launcher held connections; no worker did.
    worker_pids = {w.rsplit(":", 1)[1] for w in workers}
    holders = {name.rsplit(":", 1)[1] for name in seen if name.startswith("hpsearch:")}
    assert holders and not holders & worker_pids
    assert proxy.pid and str(proxy.pid) in holders
