"""The pruning self-check: does the value at the pruner's first rung predict the final one?"""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.cli import main
from search.report.pruning_check import MIN_TRIALS, check_pruning, decision_epoch, spearman
from search.study.model import ComponentSpec
from search.study.samplers import with_first_decision
from storage.attrs import PRUNER_FLOOR_ATTR


def test_spearman_ranks_with_ties_and_refuses_constant_sides() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9487, abs=1e-4)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [1, 2]) is None


def test_where_each_pruner_first_decides() -> None:
    assert decision_epoch("hyperband", {"min_resource": 4}) == 4
    assert decision_epoch("successive_halving", {}) == 1
    assert decision_epoch("median", {"n_warmup_steps": 2}) == 3
    assert decision_epoch("patient", {"wrapped": {"name": "median", "n_warmup_steps": 1}}) == 2
    assert decision_epoch("none", {}) is None
    moved = with_first_decision(ComponentSpec("hyperband", {"min_resource": 1,
                                                           "max_resource": 2}), 3)
    assert moved.options == {"min_resource": 3, "max_resource": 3}
    assert with_first_decision(ComponentSpec("median", {}), 3).options == {"n_warmup_steps": 2}


def _trials(n: int) -> list[optuna.trial.FrozenTrial]:
    """Epoch 1 is noise; from epoch 3 on every trial sits at its final rank."""
    rng = random.Random(0)
    out = []
    for i in range(n):
        final = i / n
        curve = {1: rng.random(), 2: rng.random(), 3: final * 0.9, 4: final}
        out.append(create_trial(state=TrialState.COMPLETE, value=final, params={"x": final},
                                distributions={"x": FloatDistribution(0, 1)},
                                intermediate_values=curve))
    return out


def test_an_uninformative_first_rung_is_named_with_the_first_epoch_that_predicts() -> None:
    too_few = check_pruning(_trials(MIN_TRIALS - 1), decision=1)
    assert too_few.informative is None and "7 of the 8 completed trials" in too_few.describe()
    check = check_pruning(_trials(12), decision=1)
    assert check.informative is False and check.first_informative_epoch == 3
    assert check.describe().startswith("pruning check: values at epoch 1, where the pruner "
                                       "first decides, rank the final ones with Spearman")
    assert check.describe().endswith("pruning there decides on noise; epoch 3 is the first "
                                     "that predicts (>= 0.5)")
    assert check_pruning(_trials(12), decision=3).informative is True


@pytest.mark.slow
def test_a_study_that_opts_in_moves_its_workers_first_decision(
        tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {
        "name": "noisy-rungs", "trainer": "benchmarks.stub_trainer",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": 11, "workers": 1},
        "config": {"epochs": 6, "early_noise": 4.0},
        "space": {"lr": {"type": "float", "low": 0.001, "high": 1.0, "log": True}},
        "sampler": {"name": "random", "seed": 1},
        # Never prunes before 9 trials completed: the check sees complete curves first.
        "pruner": {"name": "median", "n_startup_trials": 9, "n_warmup_steps": 0},
        "pruning_check": {"raise_min_resource": True},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["launch", str(path), "--storage", sqlite_url, "--no-promote"]) == 0
    out = capsys.readouterr().out
    assert "where the pruner first decides, rank the final ones" in out
    assert "pruning there decides on noise" in out
    study = optuna.load_study(study_name="noisy-rungs", storage=sqlite_url)
    floor = study.user_attrs[PRUNER_FLOOR_ATTR]
    assert floor > 1 and f"the pruner now first decides at epoch {floor}" in out
    # A worker picks the move up before its next trial.
    from search.run.worker import _follow_pruner_floor, _Joined
    from search.study.study_spec import parse_spec

    joined = _Joined(study, lock=None, tuned=None, rdb=None)  # type: ignore[arg-type]
    _follow_pruner_floor(joined, parse_spec(spec))
    assert joined.pruner_floor == floor
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    assert study.pruner._n_warmup_steps == floor - 1
