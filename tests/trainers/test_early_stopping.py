from __future__ import annotations

import pytest

from trainers.early_stopping import EarlyStopping


def test_stops_after_patience_epochs_without_improvement() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.0)
    assert not stopper.update(1, 0.5)
    assert not stopper.update(2, 0.6)
    assert not stopper.update(3, 0.6)  # equal is not better
    assert stopper.update(4, 0.55)
    assert stopper.best == 0.6 and stopper.best_epoch == 2


def test_improvements_below_min_delta_count_toward_patience() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    stopper.update(1, 0.500)
    assert not stopper.update(2, 0.505)
    assert stopper.update(3, 0.509)
    assert stopper.best_epoch == 1


def test_a_real_improvement_resets_patience() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    stopper.update(1, 0.5)
    stopper.update(2, 0.5)
    assert not stopper.update(3, 0.52)
    assert not stopper.update(4, 0.52)
    assert stopper.update(5, 0.52)


@pytest.mark.parametrize(("patience", "min_delta"), [(0, 0.0), (3, -0.1)])
def test_rejects_bad_settings(patience: int, min_delta: float) -> None:
    with pytest.raises(ValueError, match=r"patience|min_delta"):
        EarlyStopping(patience=patience, min_delta=min_delta)
