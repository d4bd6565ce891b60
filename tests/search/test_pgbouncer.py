"""Through PgBouncer in transaction pooling (the route the launcher points to when workers would
exceed the server's connections): a real PgBouncer with a server pool of 2 in front of the
PostgreSQL server, three workers, and the study still ends with exactly its budget. With a
blocking lock wait this deadlocked: a waiting worker pinned one of the two server connections
while the lock holder needed both."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from tests.conftest import PG_ADMIN_URL, _postgres_required, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]  # the stub trainer lives in benchmarks/
SERVER_POOL = 2


@pytest.fixture
def pgbouncer_url(pg_url: str) -> Iterator[str]:
    """PgBouncer (pool_mode transaction, SERVER_POOL server connections) in front of the test's
    database; its URL."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        message = "pgbouncer is not installed (apt-get install pgbouncer)"
        if _postgres_required():
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    database = sqlalchemy.make_url(pg_url).database
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hpsearch-pgbouncer-"))
    workdir.chmod(0o777)  # PgBouncer refuses to run as root: it runs as postgres below
    (workdir / "users.txt").write_text('"postgres" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{database} = host=127.0.0.1 port=5432 dbname={database}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {workdir / 'users.txt'}\npool_mode = transaction\n"
        f"default_pool_size = {SERVER_POOL}\nmax_client_conn = 200\nunix_socket_dir =\n"
        f"logfile = {workdir / 'pgbouncer.log'}\n"
        # A client waiting for a server connection waits for good (PgBouncer's default gives
        # up after 120 s): a deadlock shows as a hang, not as a slow run.
        "query_wait_timeout = 0\nignore_startup_parameters = extra_float_digits\n")
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pgbouncer did not start: "
                                         f"{proc.stderr.read() if proc.stderr else ''!r}") from None
                time.sleep(0.1)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)


def test_three_workers_through_a_two_connection_pool_run_exactly_the_budget(
        pgbouncer_url: str, tmp_path: Path) -> None:
    spec = {
        "name": "bouncer", "trainer": "benchmarks.stub_trainer",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": 12, "workers": 3},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
                  "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}},
        "sampler": {"name": "tpe", "seed": 0}, "pruner": {"name": "median"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    database = sqlalchemy.make_url(pgbouncer_url).database
    most = [0]
    done = threading.Event()

    def sample() -> None:  # server-side connections to the study's database
        admin = sqlalchemy.create_engine(PG_ADMIN_URL, poolclass=sqlalchemy.pool.NullPool)
        with admin.connect() as conn:
            while not done.is_set():
                n = conn.execute(sqlalchemy.text("SELECT count(*) FROM pg_stat_activity "
                                                 "WHERE datname = :d"), {"d": database})
                most[0] = max(most[0], int(n.scalar_one()))
                conn.rollback()
                time.sleep(0.05)
        admin.dispose()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    launcher = subprocess.Popen([str(BIN / "hpsearch"), "launch", str(path), "--storage",
                                 pgbouncer_url, "--no-promote", "--threads-per-worker", "1"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        out, err = launcher.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and its worker processes
        raise
    finally:
        done.set()
        sampler.join()
    assert launcher.returncode == 0, out[-2000:] + err[-2000:]
    assert "3 workers will hold up to 8 database connections" in out
    trials = optuna.load_study(study_name="bouncer", storage=pgbouncer_url).get_trials()
    assert len(trials) == 12
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert 1 <= most[0] <= SERVER_POOL  # eight client connections, two server connections
