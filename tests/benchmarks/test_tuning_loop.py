"""The tuning-loop benchmark end to end on tiny generated images: the round-2 study (3 trials of
5 epochs, the fewest round2.yaml's three milestones and its round-1 baseline allow), its
promotion on 3 seeds, then the four rows on the same seeds, printed and written as JSON and
Markdown. No ../shared data. Two workers, so every run has one torch thread: re-measurement gives
a lone worker all the cores, and two spinning threads on a busy 2-core machine cost ten times
the CPU of one."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.tuning_loop.__main__ import main
from benchmarks.tuning_loop.study import resolve_baseline

REPO = Path(__file__).resolve().parents[2]
ROWS = ("(a) study winner (trial ", "(b) ", "(c) round2 baseline (trial ",
        "(d) reference: OneCycle SGD-Nesterov")


def _image_folder(root: Path, per_class: int = 190) -> Path:
    """Two classes of the same noise, so no trial reaches round2.yaml's target and stops the
    study early. 380 images: the pool leaves 260 training images (round2.yaml's batch sizes go
    up to 256)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root


def test_tuning_loop_end_to_end(tmp_path: Path) -> None:
    source = _image_folder(tmp_path / "src")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks.tuning_loop", "--trials", "3", "--epochs", "5",
               "--seeds", "3", "--workers", "2", "--source", str(source), "--work-dir",
               str(tmp_path / "work"), "--out", str(out), "--pool-size", "300",
               "--val-size", "40", "--holdout-size", "60"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    table = text[text.index("tuning loop on real data"):]
    for row in ROWS:
        assert f"\n{row}" in table, table
    assert "\npromotion: promoted: " in table or "\npromotion: not promoted: " in table
    assert "\nbudget: study 3 trials x up to 5 epochs on 2 workers" in table
    assert "260 training + 40 validation images (pool 300), holdout 60" in table
    assert "\nmachine: " in table and "torch " in table
    assert "spec rescaled to 5 epochs" in table
    assert table.count("winner vs (") == 3

    report = json.loads((out / "tuning_loop.json").read_text())
    assert [r["key"] for r in report["rows"]] == ["a", "b", "c", "d"]
    for row in report["rows"]:
        assert row["seeds"] == [0, 1, 2] and len(row["holdout_acc"]) == 3
        assert all(0 <= v <= 1 for v in row["holdout_acc"] if not math.isnan(v))
        assert row["config"]["test_dataset"].endswith("holdout")
        assert row["config"]["dataset"].endswith("pool")
        # (the winner may be the round-1 baseline, whose 200 of 250 epochs are 4 of 5)
        assert row["config"]["epochs"] == 5 or (row["key"] == "a" and row["config"]["epochs"] < 5)
    assert report["rows"][3]["config"]["optimizer"] == "nesterov"
    assert report["rows"][3]["config"]["schedule"] == "onecycle"
    assert report["rows"][2]["config"]["lr"] == 0.05  # the round-2 baseline as the study ran it
    assert report["promotion"]["seeds"] == [0, 1, 2]
    assert report["study"]["metric"] == "best_val_acc"  # selection never sees the holdout
    assert report["budget"]["cpu_seconds"] > 0 and report["machine"]["cpu_model"]
    markdown = (out / "tuning_loop.md").read_text()
    assert "| (a) study winner" in markdown and "promotion: " in markdown

    # Row (c) as the study ran it is what the fallback (for a study a stop rule ended before
    # its baselines ran) resolves from the stored spec.
    from search import load_study_result
    from search.study.stored import read_spec

    url = f"sqlite:///{out / 'tuning_loop.db'}"
    study = load_study_result(report["study"]["name"], storage=url).study
    again = resolve_baseline(read_spec(study), "round2", url)
    assert json.loads(json.dumps(again)) == report["rows"][2]["config"]

    # The study needs a fresh storage: the same --out again is refused before anything runs.
    assert main([*command[3:], "--out", str(out)]) == 2
