"""Optuna's private API is reached through storage/optuna_internals.py only, and what that
module names exists in the installed Optuna."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from storage import optuna_internals

ROOT = Path(__file__).resolve().parents[2]
# ``import optuna._x``, ``from optuna.storages._rdb import ...``, ``optuna.storages._grpc.y``
_PRIVATE = re.compile(r"\boptuna(?:\.\w+)*\._(?!_)\w+")  # not optuna.__version__
_ALLOWED = {ROOT / "storage" / "optuna_internals.py", Path(__file__).resolve()}


def test_no_other_module_imports_optuna_s_private_modules() -> None:
    offenders = []
    for package in ("search", "storage", "trainers", "benchmarks", "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.resolve() in _ALLOWED:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _PRIVATE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, ("Optuna's private API outside storage/optuna_internals.py (move it "
                           "there):\n" + "\n".join(offenders))


def test_the_scan_sees_private_imports() -> None:
    for line in ("from optuna.storages._rdb import models",
                 "import optuna.storages._heartbeat",
                 "    from optuna._experimental import experimental_func"):
        assert _PRIVATE.search(line), line
    for line in ("from optuna.storages import RDBStorage", "import optuna",
                 "optuna.exceptions.ExperimentalWarning", "optuna.__version__"):
        assert not _PRIVATE.search(line), line


def test_internals_resolve_on_the_installed_optuna(tmp_path: Path) -> None:
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    storage = optuna_internals.cached(rdb)
    assert optuna_internals.behind_cache(storage) is rdb
    assert optuna_internals.behind_cache(rdb) is rdb
    assert isinstance(storage, optuna_internals.BaseHeartbeat)

    tables = optuna_internals.trial_tables()
    assert [t.name for t in tables] == ["trials", "trial_user_attributes", "trial_heartbeats"]
    assert {"trial_id", "study_id", "state"} <= set(tables.trials.c.keys())
    assert {"trial_id", "key", "value_json"} <= set(tables.user_attrs.c.keys())
    assert {"trial_id", "heartbeat"} <= set(tables.heartbeats.c.keys())
    assert all(isinstance(t, sqlalchemy.Table) for t in tables)

    study = optuna.create_study(storage=storage)
    trial = study.ask()
    optuna_internals.write_trial_user_attrs(rdb, trial._trial_id, {"a": 1, "b": [1, 2]})
    optuna_internals.write_trial_user_attrs(rdb, trial._trial_id, {"a": 2})
    assert rdb.get_trial_user_attrs(trial._trial_id) == {"a": 2, "b": [1, 2]}
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # finished: not written
        optuna_internals.write_trial_user_attrs(rdb, trial._trial_id, {"a": 3})


def test_grpc_internals_resolve_on_the_installed_optuna() -> None:
    pytest.importorskip("grpc")
    base = optuna_internals.proxy_servicer_base()
    assert callable(getattr(base, "CreateNewTrial", None))
    server = optuna_internals.optuna_proxy_server(optuna.storages.InMemoryStorage(),
                                                  "127.0.0.1", 0)  # built, never started
    server.stop(grace=None)
