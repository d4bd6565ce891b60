"""Merge a recording's shard files into one compressed table file (the one the repo ships).

    python -m benchmarks.search_table.pack [--runs benchmarks/search_table/data]
        [--out benchmarks/search_table/cifar10_w0125_e10.json.gz] [--allow-incomplete]

The table is gzip-compressed JSON with the manifest's identity (grid, seeds, sizes, trainer
settings, data selection), the machine, a summary of the recording (runs, dates, wall and CPU
totals) and the runs sorted by configuration and seed; the bytes depend only on the runs.
Load it with ``benchmarks.search_table.table.load_table``. Format: README.md beside this file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.search_table.grid import GridSpec
from benchmarks.search_table.shard_files import read_manifest, read_runs, to_json_value
from benchmarks.search_table.table import FORMAT

__all__ = ["pack"]

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "cifar10_w0125_e10.json.gz"
# Per-run fields that only the recording process needs (the key repeats config and seed).
_DROPPED = ("key", "started_unix", "finished_unix", "shard", "shards", "threads")


def pack(runs_dir: Path, out: Path, *, allow_incomplete: bool = False) -> dict[str, Any]:
    """Write the table for ``runs_dir`` to ``out``; return its ``recording`` summary."""
    manifest = read_manifest(runs_dir)
    ident = manifest["identity"]
    grid = GridSpec.from_dicts(ident["grid"], ident["seeds"])
    expected = {r.key for r in grid.runs()}
    by_key: dict[str, dict[str, Any]] = {}
    for run in read_runs(runs_dir):
        if run["key"] not in expected:
            raise ValueError(f"run {run['key']!r} in {str(runs_dir)!r} is not in the grid of "
                             "its manifest; the directory mixes recordings")
        by_key.setdefault(run["key"], run)  # a run recorded twice keeps its first record
    missing = sorted(expected - set(by_key))
    if missing and not allow_incomplete:
        raise ValueError(f"{len(missing)} of {len(expected)} runs are not recorded yet (first: "
                         f"{missing[0]}); let the recorder finish, or pass --allow-incomplete")
    runs = sorted(by_key.values(), key=_sort_key)
    recording = _summary(runs, expected=len(expected))
    blob = {
        "format": FORMAT,
        "header": {"identity": ident, "machine": manifest["machine"], "recording": recording},
        "runs": [{k: v for k, v in r.items() if k not in _DROPPED} for r in runs],
    }
    text = json.dumps(to_json_value(blob), sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    return recording


def _sort_key(run: Mapping[str, Any]) -> tuple[float, float, int, float, int]:
    c = run["config"]
    return (c["lr"], c["weight_decay"], c["batch_size"], c["gamma"], run["seed"])


def _summary(runs: Sequence[Mapping[str, Any]], *, expected: int) -> dict[str, Any]:
    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat(timespec="seconds")

    summary: dict[str, Any] = {"runs": len(runs), "expected_runs": expected,
                               "complete": len(runs) == expected}
    if runs:
        first = min(r["started_unix"] for r in runs)
        last = max(r["finished_unix"] for r in runs)
        summary.update(
            started=iso(first), finished=iso(last), span_wall_seconds=round(last - first, 1),
            run_wall_seconds_sum=round(sum(r["run_wall_seconds"] for r in runs), 1),
            run_cpu_seconds_sum=round(sum(r["run_cpu_seconds"] for r in runs), 1),
            epoch_cpu_seconds_sum=round(sum(e["cpu_seconds"] for r in runs
                                            for e in r["epochs"]), 1),
            shards=sorted({int(r["shards"]) for r in runs}),
            diverged_runs=sum(r["stop_reason"] == "diverged" for r in runs))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search_table.pack",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=HERE / "data",
                   help="the recorder's --out directory (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="table file to write")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="pack the runs recorded so far even if the grid is not finished")
    args = p.parse_args(argv)
    try:
        summary = pack(args.runs, args.out, allow_incomplete=args.allow_incomplete)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size_kb = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({size_kb:.0f} KiB): {summary['runs']}/{summary['expected_runs']} "
          f"runs; recording span {summary.get('span_wall_seconds', 0) / 3600:.2f} h wall, "
          f"{summary.get('run_cpu_seconds_sum', 0) / 3600:.2f} h CPU in runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
