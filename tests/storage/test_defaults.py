from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from storage import StorageError, open_storage, upgrade
from storage.defaults import (
    DefaultsKey,
    current_default,
    current_rows,
    default_history,
    list_current,
    promote,
)
from storage.tables import tuned_defaults

KEY = DefaultsKey("cifar", "resnet18", "sgd", "cifar10")
# The regime migration 0003 gives the documented round-2 row.
DOCUMENTED_REGIME = {"model": "resnet18", "width": 1.0, "num_classes": 10, "augment": True,
                     "epochs": 250, "batch_size": 96, "val_size": 5000, "train_limit": None}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, sqlite_url: str) -> Any:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(open_storage(url))
    eng = open_storage(url).engine
    yield eng
    eng.dispose()


def _promote(engine: Any, value: float, **kw: Any) -> Any:
    kw.setdefault("regime", DOCUMENTED_REGIME)
    return promote(engine, KEY, params={"lr": value}, metric="best_val_acc", value=value,
                   n_seeds=3, study_name="s", trial_number=1, code_version="test",
                   library_versions={}, **kw)


def test_documented_rows_are_seeded_and_marked(engine: Any) -> None:
    [row] = current_rows(engine, KEY)
    assert row.source == "documented" and row.metric_value is None
    # The regime the round-2 proposal was written for: full width, 250 epochs, the whole set.
    assert row.regime == DOCUMENTED_REGIME
    assert current_default(engine, KEY, row.regime) == row
    assert row.params["lr"] == 0.05 and row.params["milestones"] == [60, 120, 160]
    assert row.params["gamma"] == 0.2 and row.params["batch_size"] == 96
    multitask = list_current(engine, trainer="multitask")
    assert len(multitask) == 16
    lrs = {(r.key.model, r.key.optimizer): r.params["lr"] for r in multitask}
    assert lrs[("mobilenet_v3_large", "adam")] == 0.001 and lrs[("resnet18", "adam")] == 0.005
    assert lrs[("resnet18", "adagrad")] == 0.02 and lrs[("resnet18", "adadelta")] == 1.0
    mt = next(r for r in multitask if r.key.optimizer == "mtadamv2")
    assert mt.params["task_weights"] == [0.5, 0.5]


def test_promotion_appends_and_only_a_better_value_becomes_current(engine: Any) -> None:
    first = _promote(engine, 0.80)
    assert first.promoted and first.previous is not None and first.previous.source == "documented"
    worse = _promote(engine, 0.70)
    assert not worse.promoted and "does not beat the current 0.8000" in worse.reason
    better = _promote(engine, 0.85)
    assert better.promoted and "beats 0.8000" in better.reason
    forced = _promote(engine, 0.60, force=True)
    assert forced.promoted
    history = default_history(engine, KEY)
    assert [r.metric_value for r in history] == [None, 0.80, 0.85, 0.60]  # the loser left no row
    assert [r.is_current for r in history] == [False, False, False, True]
    assert history[1].params == {"lr": 0.80}  # old rows are never edited


def test_one_current_row_per_regime_and_a_named_beaten_row_is_replaced(engine: Any) -> None:
    small = {**DOCUMENTED_REGIME, "width": 0.125, "epochs": 3, "train_limit": 200}
    first = _promote(engine, 0.30, regime=small)
    assert first.promoted and first.previous is None  # the documented row is another regime
    assert {r.regime["width"] for r in current_rows(engine, KEY)} == {1.0, 0.125}
    # The caller's paired comparison beat row `first` on the same seeds: it is replaced even
    # though its stored mean (0.30) is higher than the newcomer's mean (0.29).
    second = _promote(engine, 0.29, regime=small, beats=first.row.id)
    assert second.promoted and f"beats row {first.row.id}" in second.reason
    assert current_default(engine, KEY, small) == second.row
    # Naming a row that is no longer current falls back to comparing the values.
    stale = _promote(engine, 0.10, regime=small, beats=first.row.id)
    assert not stale.promoted and "does not beat the current 0.2900" in stale.reason
    [documented] = [r for r in current_rows(engine, KEY) if r.regime == DOCUMENTED_REGIME]
    assert documented.source == "documented"  # untouched by the small regime's promotions


def test_missing_tables_say_to_upgrade(sqlite_url: str) -> None:
    with pytest.raises(StorageError, match="hpsearch db upgrade"):
        current_default(open_storage(sqlite_url).engine, KEY)


@pytest.mark.postgres
def test_racing_promotions_on_postgresql_leave_exactly_one_current_row(pg_url: str) -> None:
    upgrade(open_storage(pg_url))
    values = [0.61, 0.74, 0.69, 0.83, 0.77, 0.66, 0.80, 0.72]
    start = threading.Barrier(len(values))
    errors: list[BaseException] = []

    def run(value: float) -> None:
        eng = open_storage(pg_url).engine
        try:
            start.wait()
            _promote(eng, value)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=run, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    eng = open_storage(pg_url).engine
    with eng.connect() as conn:
        current = conn.execute(sa.select(tuned_defaults.c.metric_value).where(
            tuned_defaults.c.trainer == KEY.trainer, tuned_defaults.c.optimizer == KEY.optimizer,
            tuned_defaults.c.dataset == KEY.dataset, tuned_defaults.c.is_current)).all()
    eng.dispose()
    assert current == [(max(values),)]
