"""The multi-task trainer inside studies: a weighted-score study that prunes, a two-objective
study (accuracy and mIoU, no pruning), and the documented per-model learning rates as tuned
defaults."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli.main import main
from search.errors import SpecError
from search.study.study_spec import load_spec, parse_spec
from trainers.dataset_keys import multitask_dataset_key

_TINY_CONFIG = {"model": "resnet18", "num_classes": 10, "cls_image_size": 32,
                "seg_image_size": 32, "epochs": 2, "steps_per_epoch": 2, "val_limit": 16,
                "eval_batch_size": 16, "coco_min_area": 500, "device": "cpu"}


def _spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    raw = yaml.safe_load(Path("examples/multitask.yaml").read_text())
    raw["config"].update(_TINY_CONFIG, cache_dir=str(tmp_path / "cache"))
    raw["budget"] = {"trials": 3, "workers": 1}
    raw["pruner"] = {"name": "hyperband", "min_resource": 1, "max_resource": 2}
    raw.update(changes)
    return raw


def _launch(raw: dict[str, Any], url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            *extra: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["launch", str(path), "--storage", url, *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_example_spec_is_valid_and_searches_every_optimizer() -> None:
    spec = load_spec("examples/multitask.yaml")
    assert spec.trainer == "multitask"
    assert (spec.metric, spec.report_metric) == ("best_score", "score")
    optimizer = next(p for p in spec.space if p.name == "optimizer")
    assert set(optimizer.choices) == {"sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad",
                                      "adadelta", "mtadamv2"}
    assert {p.name for p in spec.space} == {"optimizer", "lr_scale", "weight_decay",
                                            "seg_weight"}


def test_weighted_score_study_reports_every_epoch(sqlite_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    raw = _spec(tmp_path)
    out = _launch(raw, sqlite_url, tmp_path, capsys, "--no-promote")
    trials = optuna.load_study(study_name="multitask", storage=sqlite_url).get_trials()
    assert len(trials) == 3 and {t.state for t in trials} <= {TrialState.COMPLETE,
                                                              TrialState.PRUNED}
    first = min(trials, key=lambda t: t.number)
    assert first.user_attrs["hps_baseline"] == "document-adamw"
    assert first.value == first.user_attrs["best_score"]
    assert sorted(first.intermediate_values) == [1, 2]
    assert first.user_attrs["config"]["lr"] == pytest.approx(0.005)  # ResNet-18 AdamW table
    assert 0 <= first.user_attrs["best_val_miou"] <= 1
    assert "best trial" in out


def test_two_objective_study_has_a_pareto_front(sqlite_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    raw = _spec(tmp_path, objective={"metrics": ["best_val_acc", "best_val_miou"],
                                     "directions": ["maximize", "maximize"]},
                pruner={"name": "none"})
    out = _launch(raw, sqlite_url, tmp_path, capsys)
    study = optuna.load_study(study_name="multitask", storage=sqlite_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert t.values == [t.user_attrs["best_val_acc"], t.user_attrs["best_val_miou"]]
        assert len(t.user_attrs["curve"]) == 2  # per-epoch scores kept without trial.report
    assert "Pareto front (" in out
    assert "not promoting: a multi-objective study" in out
    # promotion needs a trial picked from the front; it is compared on the single score
    assert main(["defaults", "promote", "multitask", "--storage", sqlite_url,
                 "--extra-seeds", "0"]) != 0
    assert "pick one of its Pareto front" in capsys.readouterr().err
    pick = study.best_trials[0]
    # One seed cannot show a gain beyond seed noise: forced (the rule has its own tests).
    assert main(["defaults", "promote", "multitask", "--trial", str(pick.number),
                 "--storage", sqlite_url, "--extra-seeds", "0", "--force"]) == 0
    out = capsys.readouterr().out
    assert f"\npromoted: trial {pick.number}" in f"\n{out}" and "forced;" in out
    from storage import open_storage
    from storage.defaults import DefaultsKey, current_rows

    key = DefaultsKey("multitask", "resnet18", pick.params["optimizer"],
                      "synthetic+synthetic-coco")
    [row] = current_rows(open_storage(sqlite_url).engine, key)
    assert row.metric == "best_score"
    assert row.metric_value == pytest.approx(pick.user_attrs["best_score"])
    # joining it with a single-objective spec is refused before anything is written
    single = _spec(tmp_path)
    path = tmp_path / "single.yaml"
    path.write_text(yaml.safe_dump(single))
    assert main(["launch", str(path), "--storage", sqlite_url]) != 0
    assert "exists with direction maximize, maximize, but the spec says maximize" in \
        capsys.readouterr().err
    assert len(study.get_trials()) == 3


@pytest.mark.parametrize(("objective", "pruner", "message"), [
    ({"metrics": ["best_val_acc", "best_val_miou"]}, {"name": "hyperband"},
     "Optuna cannot prune a multi-objective study"),
    ({"metrics": ["best_val_acc", "best_val_miou"], "metric": "best_score"}, {"name": "none"},
     "give either metric/direction/report"),
    ({"metrics": ["best_val_acc", "best_val_miou"], "directions": ["maximize"]},
     {"name": "none"}, "1 directions for 2 metrics"),
    ({"metrics": ["best_val_acc"]}, {"name": "none"}, "expected two or more distinct metrics"),
])
def test_bad_multi_objective_specs_are_named(tmp_path: Path, objective: dict[str, Any],
                                             pruner: dict[str, Any], message: str) -> None:
    raw = _spec(tmp_path, objective=objective, pruner=pruner)
    with pytest.raises(SpecError, match=message):
        parse_spec(copy.deepcopy(raw), source="spec.yaml")


def test_documented_lr_table_is_the_tuned_default_for_real_data(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert multitask_dataset_key("/data/imagenet/", "/data/coco2017") == "imagenet1k+coco-voc21"
    assert multitask_dataset_key("synthetic", "synthetic-voc") == "synthetic+synthetic-voc"
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    capsys.readouterr()
    for model, lr in (("resnet18", "0.005"), ("mobilenet_v3_large", "0.001")):
        assert main(["train", "--trainer", "multitask", "--model", model, "--optimizer", "adam",
                     "--set", "cls_dataset=/data/imagenet", "--set", "seg_dataset=/data/coco",
                     "--dry-run", "--storage", sqlite_url]) == 0
        out = capsys.readouterr().out
        lr_line = next(line for line in out.splitlines() if line.startswith("lr "))
        assert lr in lr_line and "tuned default (row" in lr_line
    # synthetic data has no tuned row: the model's table in code applies
    assert main(["train", "--trainer", "multitask", "--model", "resnet18", "--optimizer",
                 "adagrad", "--dry-run", "--storage", sqlite_url]) == 0
    lr_line = next(line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("lr "))
    assert "0.02" in lr_line and "code default" in lr_line
