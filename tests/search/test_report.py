"""The round analysis against studies built with known trial values (the round-2 figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution

from search.cli.main import main
from search.report.analysis import next_round, optimization_notes, overfitting_notes
from search.study.study_spec import parse_spec
from storage.attrs import SPEC_ATTR

SPEC: dict[str, Any] = {
    "name": "round2", "trainer": "cifar",
    "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
    "success": {"target": 0.88, "max_train_val_gap": 0.08},
    "budget": {"trials": 10, "workers": 1},
    "config": {"epochs": 250},
    "space": {
        "lr": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
        "gamma": {"type": "float", "low": 0.1, "high": 0.5},
        "batch_size": {"type": "categorical", "choices": [64, 96, 128, 256]},
        "milestones": {"type": "milestones", "count": 3, "low": 0.1, "high": 0.95},
    },
}
DISTS = {"lr": FloatDistribution(0.005, 0.2, log=True), "gamma": FloatDistribution(0.1, 0.5),
         "batch_size": CategoricalDistribution([64, 96, 128, 256]),
         **{f"milestones_{i}": FloatDistribution(0.1, 0.95) for i in (1, 2, 3)}}


def _trial(value: float, *, lr: float, gamma: float = 0.2, bs: int = 96,
           ms: tuple[float, float, float] = (0.24, 0.48, 0.64), **attrs: Any
           ) -> optuna.trial.FrozenTrial:
    params = {"lr": lr, "gamma": gamma, "batch_size": bs,
              **{f"milestones_{i}": m for i, m in enumerate(ms, 1)}}
    return optuna.trial.create_trial(value=value, params=params, distributions=DISTS,
                                     user_attrs=attrs, intermediate_values={1: value / 2})


# Round 1 and round 2 as the analysis reports them.
ROUND1 = {"test_acc": 0.5321, "best_train_acc": 0.5754, "best_val_acc": 0.1836,
          "best_train_loss": 1.210, "best_val_loss": 4.311, "epochs_run": 39}
ROUND2 = {"test_acc": 0.8329, "best_train_acc": 1.0, "best_val_acc": 0.8424,
          "best_train_loss": 0.0, "best_val_loss": 0.789, "epochs_run": 123,
          "best_train_val_gap": 1.0 - 0.8424, "best_epoch": 88,
          "config": {"milestones": [60, 120, 160], "schedule": "multistep"},
          # lr 0.01 for 60 epochs, then 0.001 to epoch 120, then 0.0001
          "lr_schedule": [0.01] * 60 + [0.001] * 60 + [0.0001] * 3}


def _studies(url: str) -> tuple[optuna.Study, optuna.Study]:
    prev = optuna.create_study(study_name="round1", storage=url, direction="maximize")
    prev.add_trial(_trial(0.1836, lr=0.01, **ROUND1))
    cur = optuna.create_study(study_name="round2", storage=url, direction="maximize")
    cur.set_user_attr(SPEC_ATTR, SPEC)
    cur.add_trial(_trial(0.8424, lr=0.05, gamma=0.2, bs=96, **ROUND2))
    cur.add_trial(_trial(0.80, lr=0.03, gamma=0.3, bs=128, ms=(0.3, 0.5, 0.7)))
    cur.add_trial(_trial(0.60, lr=0.006, gamma=0.45, bs=256, ms=(0.2, 0.4, 0.6)))
    cur.add_trial(_trial(0.82, lr=0.2, gamma=0.25, bs=96, ms=(0.25, 0.5, 0.8)))
    return prev, cur


def test_report_compares_with_the_previous_round_like_the_analysis(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _studies(sqlite_url)
    out = tmp_path / "report"
    assert main(["report", "round2", "--previous", "round1", "--out", str(out),
                 "--storage", sqlite_url]) == 0
    printed = capsys.readouterr().out
    for line in ("Test Accuracy: 53.21% -> 83.29% (+30.08%)",
                 "Training Accuracy: 57.54% -> 100.00% (+42.46%)",
                 "Validation Accuracy: 18.36% -> 84.24% (+65.88%)",
                 "Training Loss: 1.210 -> 0.000 (-1.210)",
                 "Validation Loss: 4.311 -> 0.789 (-3.522)",
                 "Early Stopping: 39 -> 123 epochs (+84 epochs)"):
        assert line in printed
        assert line in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "Train-validation gap: 15.76 points, over the limit of 8 points" in page
    assert page.count("data:image/png;base64,") >= 5  # plots inlined: self-contained
    assert (out / "history.png").stat().st_size > 1000
    next_spec = parse_spec(yaml.safe_load((out / "next_round.yaml").read_text()))
    assert next_spec.name == "round2-next" and next_spec.baselines[0].name == "round2-best"


def test_overfitting_and_optimization_notes_read_the_trial() -> None:
    best = _trial(0.8424, lr=0.05, **ROUND2)
    over = overfitting_notes(best, 0.08)
    assert "Training accuracy 100.00% is near 100%: the model memorises the training set" in over
    assert "Training loss 0.000 is near 0" in over
    opt = optimization_notes(best)
    assert ("The LR first decayed at epoch 61, before validation accuracy peaked at epoch 88: "
            "decay helped it keep improving") in opt
    assert ("Training stopped at epoch 123, before milestones [160]: those decays never "
            "happened") in opt
    # 0.001 is 10% of the start, not tiny; the 3 epochs at 0.0001 (1%) are
    assert ("3 epochs ran at or below 1% of the starting LR (0.01 -> 0.0001); 3 of them after "
            "the best epoch, without improvement") in opt


def test_next_round_narrows_around_the_top_trials_and_extends_at_edges() -> None:
    trials = [_trial(0.8424, lr=0.05, **ROUND2),
              _trial(0.82, lr=0.2, gamma=0.25, ms=(0.25, 0.5, 0.8)),
              _trial(0.80, lr=0.03, gamma=0.3, bs=128, ms=(0.3, 0.5, 0.7)),
              _trial(0.60, lr=0.006, gamma=0.45, bs=256, ms=(0.2, 0.4, 0.6))]
    spec, reasons = next_round(SPEC, trials, top_k=3)
    lr = spec["space"]["lr"]
    assert lr["low"] == 0.02  # 0.03 / 1.5; the 0.006 trial is not in the top 3
    assert lr["high"] == pytest.approx(0.3)  # best trials at the upper edge: extended
    assert any("lr:" in r and "upper edge" in r for r in reasons)
    assert spec["space"]["batch_size"]["choices"] == [96, 128]
    gamma = spec["space"]["gamma"]
    assert gamma["low"] == pytest.approx(0.175) and gamma["high"] == pytest.approx(0.325)
    ms = spec["space"]["milestones"]
    assert ms["low"] <= 0.24 and ms["high"] >= 0.8 and ms["high"] == round(ms["high"], 3)
    assert spec["baselines"][0]["params"]["lr"] == 0.05
    parse_spec(spec)  # a spec hpsearch launch accepts
