"""Shared fixtures: tiny study specs, an SQLite file per test, a fresh PostgreSQL database.

PostgreSQL: ``HPSEARCH_TEST_POSTGRES`` names an admin URL (default: the local server's ``test``
database as user postgres). Each test creates its own database there and drops it at the end.
When the server is unreachable the PostgreSQL tests skip with the reason, except when ``CI`` or
``HPSEARCH_REQUIRE_POSTGRES`` is set: then they fail, so CI never skips them silently.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy

PG_ADMIN_URL = os.environ.get("HPSEARCH_TEST_POSTGRES",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "trainer": "cifar",
    "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
    "success": {"target": 0.9, "max_train_val_gap": 0.5},
    "budget": {"trials": 6, "workers": 2},
    "config": {"dataset": "synthetic", "synthetic_size": 600, "val_size": 100, "width": 0.0625,
               "synthetic_noise": 1.0, "optimizer": "sgd", "epochs": 4, "patience": 3,
               "eval_batch_size": 256},
    "space": {
        "lr": {"type": "float", "low": 0.001, "high": 1.0, "log": True},
        "gamma": {"type": "float", "low": 0.1, "high": 0.5},
        "weight_decay": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64]},
        "milestones": {"type": "milestones", "count": 2, "low": 0.2, "high": 0.9},
    },
    "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 2},
    "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    "baselines": [
        {"name": "slow", "params": {"lr": 0.001, "gamma": 0.1, "weight_decay": 1.0e-4,
                                    "batch_size": 32, "milestones": [2, 3]},
         "config": {"epochs": 5, "patience": 4, "min_delta": 0.001}},
        {"name": "fast", "params": {"lr": 0.5, "gamma": 0.2, "weight_decay": 5.0e-4,
                                    "batch_size": 32, "milestones": [2, 3]}},
    ],
}


@pytest.fixture
def tiny_spec() -> dict[str, Any]:
    spec = copy.deepcopy(TINY_SPEC)
    spec["name"] = f"tiny-{uuid.uuid4().hex[:8]}"
    return spec


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _postgres_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("HPSEARCH_REQUIRE_POSTGRES"))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards; its URL."""
    # Unpooled: a test may restart the server, and teardown needs a live connection then.
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.pool.NullPool,
                                     connect_args={"connect_timeout": 5})
    name = f"hpsearch_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL at {PG_ADMIN_URL} unreachable: {str(exc.orig).strip()}"
        if _postgres_required():
            pytest.fail(message + " (CI requires it; .ci/run starts the server)")
        pytest.skip(message)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name})
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def running_trial_past_epoch(url: str, study: str, *, epoch: int, timeout_s: float,
                             with_user_attr: str | None = None) -> Any:
    """Poll the study until a RUNNING trial has reported ``epoch`` (and, if given, carries the
    user attribute ``with_user_attr``); that trial, for a test to kill its worker."""
    import time

    import optuna

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=study, storage=url).get_trials()
        except KeyError:
            trials = []  # not created yet
        for t in trials:
            if t.state == optuna.trial.TrialState.RUNNING \
                    and max(t.intermediate_values, default=0) >= epoch \
                    and (with_user_attr is None or with_user_attr in t.user_attrs):
                return t
        time.sleep(0.2)
    raise AssertionError(f"no trial of {study!r} reached epoch {epoch} in {timeout_s} s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
