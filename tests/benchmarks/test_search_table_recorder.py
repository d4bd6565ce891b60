"""The search-table recorder: complete lines, resume after SIGKILL without duplicates, shards
that split the grid exactly, and pack + load round-trips. Tiny generated images, no ../shared."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.search_table.grid import DEFAULT_LRS, GridSpec
from benchmarks.search_table.pack import pack
from benchmarks.search_table.shard_files import (
    cut_partial_line,
    read_runs,
    write_or_check_manifest,
)
from benchmarks.search_table.table import ConfigValues, load_table

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("circle", "square", "stripe")


def _image_folder(root: Path, per_class: int = 20) -> Path:
    from PIL import Image

    for c, name in enumerate(CLASSES):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            colour = (60 + 80 * c, (37 * i) % 256, 200 - 60 * c)
            Image.new("RGB", (32, 32), colour).save(folder / f"{i:04d}.png")
    return root


def _command(source: Path, work: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.search_table.record", "--source", str(source),
            "--work-dir", str(work), "--out", str(out), "--pool-size", "30", "--val-size", "9",
            "--holdout-size", "15", "--lrs", "0.05,0.2", "--weight-decays", "1e-4",
            "--batch-sizes", "8", "--gammas", "0.1", "--epochs", "2",
            "--extra-seed-configs", "1", "--extra-seeds", "1", "--threads", "1", *extra]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True) if path.exists() else []


def test_killed_recorder_resumes_without_duplicates_and_packs(tmp_path: Path) -> None:
    source = _image_folder(tmp_path / "src")
    work, out = tmp_path / "work", tmp_path / "out"
    shard_file = out / "runs-0.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Slow epochs (a sleep after each report) so the kill lands inside the second run.
    proc = subprocess.Popen(_command(source, work, out, "--pause-after-epoch", "1.5"), cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not _lines(shard_file) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert _lines(shard_file), "the recorder wrote no run within 240 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    first = _lines(shard_file)
    assert 1 <= len(first) < 3
    assert all(line.endswith("\n") and json.loads(line)["epochs"] for line in first)

    done = subprocess.run(_command(source, work, out), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(first)} already recorded" in done.stderr
    lines = _lines(shard_file)
    assert lines[: len(first)] == first  # finished runs are kept as they were, not redone
    keys = [json.loads(line)["key"] for line in lines]
    grid = GridSpec(lrs=(0.05, 0.2), weight_decays=(1e-4,), batch_sizes=(8,), gammas=(0.1,),
                    epochs=2, extra_seeds=(1,), extra_seed_configs=1)
    assert sorted(keys) == sorted(r.key for r in grid.runs())  # all three, once each

    table_path = tmp_path / "table.json.gz"
    summary = pack(out, table_path)
    assert summary["complete"] and summary["runs"] == 3
    table = load_table(table_path)
    assert table.header.grid.epochs == 2 and table.header.sizes["train"] == 21
    assert table.header.data["pool_size"] == 30 and table.header.data["holdout_size"] == 15
    assert len(table.configs) == 2
    extra = table.header.extra_seed_configs[0]
    assert table.seeds(extra) == (0, 1)
    run = table.lookup({"lr": 0.2, "weight_decay": 0.0001, "batch_size": 8, "gamma": 0.1}, 0)
    assert run.milestones == (1, 2) and run.stop_reason in ("completed", "diverged")
    if not run.diverged:
        assert [e.epoch for e in run.epochs] == [1, 2]
        assert all(c > 0 for c in run.cpu_seconds) and all(w > 0 for w in run.wall_seconds)
        assert run.holdout_acc is not None and 0 <= run.holdout_acc <= 1
        assert math.isclose(run.best_val_acc, max(run.val_acc))
    with pytest.raises(KeyError, match="seeds"):
        table.lookup(run.config, 7)
    with pytest.raises(KeyError, match="not in the table"):
        table.lookup(ConfigValues(lr=0.3, weight_decay=1e-4, batch_size=8, gamma=0.1), 0)


def test_shards_split_the_default_grid_exactly() -> None:
    grid = GridSpec()
    runs = grid.runs()
    assert len(grid.configs()) == 162 and len(runs) == 162 + 24 * 2
    assert len({r.key for r in runs}) == len(runs)
    halves = [grid.shard_runs(i, 2) for i in range(2)]
    assert {r.key for r in halves[0]}.isdisjoint({r.key for r in halves[1]})
    assert len(halves[0]) + len(halves[1]) == len(runs)
    subset = grid.extra_seed_subset()
    assert len(set(subset)) == 24 and {c.lr for c in subset} == set(DEFAULT_LRS)
    assert grid.milestones == (5, 8)
    assert GridSpec.from_dicts(grid.as_dict(), grid.seeds_dict()) == grid


def test_partial_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    path = tmp_path / "runs-0.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b", "epo')
    assert [r["key"] for r in read_runs(tmp_path)] == ["a"]
    cut_partial_line(path)
    assert path.read_text() == '{"key": "a"}\n'


def test_a_recording_directory_refuses_other_settings(tmp_path: Path) -> None:
    write_or_check_manifest(tmp_path, {"identity": {"grid": {"epochs": 10}}, "machine": {}})
    write_or_check_manifest(tmp_path, {"identity": {"grid": {"epochs": 10}}, "machine": {"x": 1}})
    with pytest.raises(ValueError, match=r"other \['grid'\]; give another --out"):
        write_or_check_manifest(tmp_path, {"identity": {"grid": {"epochs": 2}}, "machine": {}})
