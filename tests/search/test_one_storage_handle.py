"""One storage handle per process: a whole ``hpsearch launch`` (migration, Optuna's storage,
connection count, tuned lookup, the study, progress, promotion) builds one SQLAlchemy engine
and checks reachability once in the launcher; workers open their own from the URL; the spec
crosses to them as a StudySpec; a study without a spec is named in one line."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy.engine.base
import yaml

import storage.handle
import storage.optuna_storage
from search.cli.main import main
from search.errors import StudyError
from search.study.stored import read_spec
from storage import StorageHandle, open_storage

STUB_SPEC: dict[str, Any] = {
    "trainer": "benchmarks.stub_trainer",
    "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
    "budget": {"trials": 3, "workers": 2},
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
              "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}},
    "sampler": {"name": "tpe", "seed": 0}, "pruner": {"name": "median"},
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count engines however they are built (every engine runs Engine.__init__) and
    reachability checks wherever they are called from."""
    counts = {"engines": 0, "checks": 0}
    engine_init = sqlalchemy.engine.base.Engine.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        counts["engines"] += 1
        engine_init(self, *args, **kwargs)

    monkeypatch.setattr(sqlalchemy.engine.base.Engine, "__init__", counting_init)
    for module in (storage.handle, storage.optuna_storage):
        check = module.check_reachable

        def counting_check(url: str, *args: Any, _check: Any = check, **kwargs: Any) -> None:
            counts["checks"] += 1
            _check(url, *args, **kwargs)

        monkeypatch.setattr(module, "check_reachable", counting_check)
    return counts


def test_a_launch_builds_one_engine_and_checks_the_storage_once(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**STUB_SPEC, "name": "one-engine"}))
    counts = _count_calls(monkeypatch)
    # Promotion on: the winner is re-measured and written to the tuned-defaults table.
    assert main(["launch", str(path), "--storage", url, "--extra-seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 trials run by this launcher" in out and "promoted" in out
    assert counts == {"engines": 1, "checks": 1}


def test_a_handle_stays_in_its_process_and_names_a_proxy(sqlite_url: str) -> None:
    handle = open_storage(sqlite_url)
    assert handle.kind == "sqlite" and not handle.is_proxy
    with pytest.raises(TypeError, match="send its url"):
        pickle.dumps(handle)
    proxy = open_storage("grpc://127.0.0.1:1", allow_grpc=True)
    assert proxy.is_proxy
    with pytest.raises(Exception, match="gRPC storage proxy, which serves workers only"):
        _ = proxy.engine
    secret = StorageHandle("postgresql+psycopg2://bob:s3cret@db:5432/x", "postgresql")
    assert "s3cret" not in secret.redacted and "s3cret" not in repr(secret)


def test_a_study_without_a_spec_is_named_in_one_line(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    optuna.create_study(study_name="plain", storage=open_storage(sqlite_url).optuna())
    study = optuna.load_study(study_name="plain", storage=sqlite_url)
    with pytest.raises(StudyError, match=r"'plain' in sqlite.* was not created by hpsearch "
                                         r"launch \(it has no spec\); launch it first"):
        read_spec(study, where=sqlite_url)
    assert main(["worker", "plain", "--storage", sqlite_url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no spec" in err
