"""The recording on disk: ``manifest.json`` and one ``runs-<shard>.jsonl`` per shard.

Each finished run is one JSON line, written whole, flushed and fsynced, so a recorder killed at
any moment leaves complete lines and at most one partial last line, which readers ignore and the
recorder cuts off before it appends again. The manifest holds what every run of the recording
shares (grid, seeds, data selection, fixed trainer settings); a recorder started with other
settings on the same directory refuses to mix them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "append_run", "cut_partial_line", "read_manifest", "read_runs",
           "shard_path", "to_json_value", "write_or_check_manifest"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def shard_path(out: Path, shard: int) -> Path:
    return out / f"runs-{shard}.jsonl"


def to_json_value(value: Any) -> Any:
    """Plain JSON: non-finite floats become null (the loader reads them back as NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value


def append_run(path: Path, record: Mapping[str, Any]) -> None:
    line = json.dumps(to_json_value(record), sort_keys=True, allow_nan=False) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def cut_partial_line(path: Path) -> None:
    """Drop a last line that a killed writer left without its newline."""
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    log.warning("%s ends in a partial line (%d bytes, a killed run); cutting it off", path,
                len(data) - keep)
    with path.open("r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def read_runs(out: Path) -> list[dict[str, Any]]:
    """Every complete run line of every shard file in ``out``, in file and line order."""
    runs: list[dict[str, Any]] = []
    for path in sorted(out.glob("runs-*.jsonl")):
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        complete = lines[:-1]  # the last piece is "" or a partial line
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number} is not a JSON run line ({exc}); remove that "
                                 "line and record the run again") from None
    return runs


def read_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist; point --runs at a directory "
                                "written by python -m benchmarks.search_table.record")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def write_or_check_manifest(out: Path, manifest: Mapping[str, Any]) -> None:
    """Write the manifest, or check an existing one records the same ``identity``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    if path.exists():
        existing = json.loads(path.read_text())
        mine = json.loads(json.dumps(to_json_value(manifest["identity"])))
        if existing.get("identity") != mine:
            differing = sorted(k for k in set(mine) | set(existing.get("identity", {}))
                               if mine.get(k) != existing.get("identity", {}).get(k))
            raise ValueError(f"{str(out)!r} holds a recording with other {differing}; give "
                             "another --out (or the settings it was recorded with)")
        return
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(to_json_value(manifest), indent=1, sort_keys=True) + "\n")
    try:
        os.link(tmp, path)  # fails when another shard wrote it first: then check theirs
    except FileExistsError:
        tmp.unlink()
        write_or_check_manifest(out, manifest)
        return
    tmp.unlink()
