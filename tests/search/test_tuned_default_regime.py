"""A default measured in a tiny regime sets the LR there and nowhere else (issue 13's check)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.cli import main
from storage import open_storage
from storage.defaults import DefaultsKey, current_rows


def _values(out: str) -> list[str]:
    """The value lines of a dry run (notes aside)."""
    return [line for line in out.splitlines() if line and not line.startswith("note:")]


@pytest.mark.slow
def test_a_tiny_regime_s_default_leaves_a_full_run_alone(
        tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {
        "name": "tiny-regime", "trainer": "cifar",
        "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
        "budget": {"trials": 2, "workers": 1},
        "config": {"dataset": "synthetic", "synthetic_size": 200, "val_size": 50,
                   "width": 0.125, "epochs": 3, "batch_size": 32, "eval_batch_size": 256},
        "space": {"lr": {"type": "float", "low": 0.05, "high": 0.5, "log": True}},
        "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    full = ["train", "--optimizer", "sgd", "--epochs", "250", "--dry-run",
            "--storage", sqlite_url]
    assert main(["db", "upgrade", "--storage", sqlite_url]) == 0
    capsys.readouterr()
    assert main(full) == 0
    before = capsys.readouterr().out
    assert main(["launch", str(path), "--storage", sqlite_url, "--no-promote"]) == 0
    assert main(["defaults", "promote", "tiny-regime", "--storage", sqlite_url,
                 "--force"]) == 0
    assert "\npromoted: trial" in "\n" + capsys.readouterr().out  # not "not promoted: ..."
    [row] = current_rows(open_storage(sqlite_url).engine,
                         DefaultsKey("cifar", "resnet18", "sgd", "synthetic"))
    assert (row.regime or {})["width"] == 0.125 and (row.regime or {})["epochs"] == 3
    # In its regime the row sets the learning rate ...
    assert main(["train", "--optimizer", "sgd", "--set", "width=0.125", "--set",
                 "synthetic_size=200", "--set", "val_size=50", "--set", "batch_size=32",
                 "--epochs", "3", "--dry-run", "--storage", sqlite_url]) == 0
    lr_line = next(line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("lr "))
    assert f"tuned default (row {row.id})" in lr_line
    # ... and a full-width 250-epoch run is exactly as before, saying why.
    assert main(full) == 0
    after = capsys.readouterr().out
    assert _values(after) == _values(before)
    assert f"note: skipped tuned row {row.id} (measured, measured at " in after
    assert "epochs 250 here vs 3 (more than 2x apart)" in after
    assert "width 1.0 here vs 0.125" in after


def test_a_row_without_a_regime_is_named_and_skipped_and_the_fitting_row_applies() -> None:
    from search.study.trainers import get_trainer
    from search.tuning.resolve import TunedSnapshot, resolve_tuned

    entry = get_trainer("cifar")
    explicit = {"optimizer": "sgd", "dataset": "synthetic"}
    regime = entry.info.regime_of(entry.build_config(explicit))
    key = list(entry.defaults_key(entry.build_config(explicit)))
    old = {"key": key, "id": 1, "params": {"lr": 0.3}, "regime": None, "source": "measured"}
    fitting = {"key": key, "id": 2, "params": {"lr": 0.2}, "regime": regime,
               "source": "measured"}
    resolution = resolve_tuned(entry, explicit, TunedSnapshot([old, fitting]))
    assert resolution.tuned_row_id == 2 and resolution.config.lr == 0.2
    assert resolution.sources["lr"] == "tuned default (row 2)"
    assert resolution.notes[0].startswith("skipped tuned row 1: it was measured before hpsearch "
                                          "recorded regimes")
    only_old = resolve_tuned(entry, explicit, TunedSnapshot([old]))
    assert only_old.tuned_row_id is None and only_old.config.lr != 0.3
    assert only_old.notes[-1] == ("no tuned default was measured in this regime: code defaults "
                                  "apply")
