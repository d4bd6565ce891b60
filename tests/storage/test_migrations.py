from __future__ import annotations

from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from storage import current_revision, head_revision, open_optuna_storage, open_storage, upgrade

OUR_TABLES = {"hps_alembic_version", "hps_tuned_defaults", "hps_registry_versions",
              "hps_registry_aliases"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


def _snapshot_optuna(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        tables = sorted(t for t in sa.inspect(engine).get_table_names()
                        if not t.startswith("hps_"))
        with engine.connect() as conn:
            rows = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                    for t in tables}
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        return {"tables": tables, "rows": rows, "alembic_version": version}
    finally:
        engine.dispose()


def test_upgrade_creates_our_tables_and_leaves_optunas_alone(url: str) -> None:
    study_name = f"mig-{id(url)}"
    study = optuna.create_study(study_name=study_name, storage=open_optuna_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    before = _snapshot_optuna(url)
    assert "trials" in before["tables"] and before["alembic_version"]

    assert upgrade(open_storage(url)) == (None, head_revision())
    assert upgrade(open_storage(url)) == (head_revision(), head_revision())  # idempotent
    assert current_revision(open_storage(url)) == head_revision()

    engine = sa.create_engine(url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables >= OUR_TABLES
    assert _snapshot_optuna(url) == before
    assert len(optuna.load_study(study_name=study_name, storage=url).trials) == 2


def test_one_current_tuned_default_per_key_is_enforced(url: str) -> None:
    from datetime import datetime, timezone

    from storage.tables import tuned_defaults

    upgrade(open_storage(url))
    engine = sa.create_engine(url)
    row = {"trainer": "cifar", "model": "resnet18", "optimizer": f"sgd-{id(url)}",
           "dataset": "cifar10", "params": {"lr": 0.05}, "source": "documented",
           "is_current": True, "created_at": datetime.now(timezone.utc)}
    try:
        with engine.begin() as conn:
            conn.execute(tuned_defaults.insert().values(**row))
            conn.execute(tuned_defaults.insert().values(**{**row, "is_current": False}))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(tuned_defaults.insert().values(**row))
    finally:
        engine.dispose()


def _columns(url: str) -> dict[str, list[tuple[str, str, bool]]]:
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        # Compare generic types (JSON, Integer, ...): dialect spellings differ by design.
        return {t: [(c["name"], c["type"]._type_affinity.__name__, bool(c["nullable"]))
                    for c in insp.get_columns(t)]
                for t in sorted(OUR_TABLES - {"hps_alembic_version"})}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_schema_is_identical_on_sqlite_and_postgresql(sqlite_url: str, pg_url: str) -> None:
    upgrade(open_storage(sqlite_url))
    upgrade(open_storage(pg_url))
    assert _columns(sqlite_url) == _columns(pg_url)
