"""python -m benchmarks.tuning_loop: see the package docstring (``--help``)."""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import benchmarks.tuning_loop as package
from benchmarks.search_table.record import DEFAULT_SOURCE, DEFAULT_WORK_DIR
from search.tuning.remeasure import threads_per_job

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = REPO / "examples" / "round2.yaml"
DEFAULT_OUT_ROOT = Path("~/.cache/hpsearch/tuning_loop")
DB_NAME = "tuning_loop.db"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tuning_loop",
                                description=package.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10, help="the study's rescaled epoch budget")
    p.add_argument("--trials", type=int, default=16, help="the study's trial budget")
    p.add_argument("--workers", type=int, default=2,
                   help="study workers and parallel runs, 1 torch thread each (default 2)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds 0..N-1 for every row and the promotion (at least 3)")
    p.add_argument("--storage", default=None,
                   help=f"study storage URL (default: a fresh sqlite:///OUT/{DB_NAME})")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where the database, tuning_loop.md and tuning_loop.json go (default: "
                        f"{DEFAULT_OUT_ROOT}/<UTC time>)")
    p.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    p.add_argument("--baseline", default="round2", help="the spec's baseline shown as row (c)")
    p.add_argument("--reference-lr", type=float, default=0.1,
                   help="the reference recipe's OneCycle peak learning rate")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                   help="image folder or .tar/.tar.gz of one (default: %(default)s)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                   help="the pool/holdout folders and tensor caches, shared with the search "
                        "table's recorder")
    p.add_argument("--pool-size", type=int, default=5000,
                   help="images the trainer gets; it splits --val-size off for validation")
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--holdout-size", type=int, default=2000)
    p.add_argument("--data-seed", type=int, default=0)
    return p


def _cpu_seconds() -> float:
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from search.tuning.promote import MIN_SEEDS

    if args.seeds < MIN_SEEDS:
        print(f"error: --seeds {args.seeds}: the paired rule needs at least {MIN_SEEDS}; use "
              f"--seeds {MIN_SEEDS}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or DEFAULT_OUT_ROOT / stamp).expanduser().resolve()
    if args.storage is None and (out / DB_NAME).exists():
        print(f"error: {out / DB_NAME} exists; the study needs a fresh storage: give another "
              "--out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{out / DB_NAME}"
    return run(args, out=out, storage=storage, study_name=f"tuning-loop-e{args.epochs}-{stamp}")


def run(args: argparse.Namespace, *, out: Path, storage: str, study_name: str) -> int:
    from benchmarks.search_table.machine import machine_info
    from benchmarks.search_table.selection import select_data
    from benchmarks.tuning_loop.report import Budget, Results, render_text, write_outputs
    from benchmarks.tuning_loop.rows import build_rows, compare, measure_rows
    from benchmarks.tuning_loop.study import DataSettings, run_study

    started, cpu_started = time.perf_counter(), _cpu_seconds()

    def emit(line: str) -> None:
        print(f"  {line}", flush=True)

    try:
        selection = select_data(args.source, pool_size=args.pool_size,
                                holdout_size=args.holdout_size, seed=args.data_seed,
                                work_dir=args.work_dir)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = DataSettings(
        pool_dir=selection.pool_dir, holdout_dir=selection.holdout_dir,
        num_classes=len(selection.classes), pool_size=int(selection.info["pool_size"]),
        holdout_size=int(selection.info["holdout_size"]), val_size=args.val_size,
        width=args.width, epochs=args.epochs,
        cache_dir=args.work_dir.expanduser().resolve() / "tensors")
    seeds = tuple(range(args.seeds))
    print(f"study {study_name}: {args.spec.name} at {args.epochs} epochs, {args.trials} trials, "
          f"{args.workers} workers, in {storage}", flush=True)
    outcome = run_study(args.spec, data, storage=storage, study_name=study_name,
                        trials=args.trials, workers=args.workers, extra_seeds=args.seeds - 1,
                        baseline=args.baseline, emit=emit)
    print(f"measuring 4 configurations on seeds {list(seeds)} (holdout accuracy)", flush=True)
    measure_started = time.perf_counter()
    rows = build_rows(outcome, data, storage=storage, reference_lr=args.reference_lr)
    results = measure_rows(rows, trainer=outcome.trainer, seeds=seeds, workers=args.workers,
                           emit=emit)
    measure_seconds = time.perf_counter() - measure_started
    winner = results[0]
    runs = sum(1 for r in results if r.same_as is None) * len(seeds)
    budget = Budget(trials=args.trials, workers=args.workers, seeds=seeds, runs_measured=runs,
                    table_threads=threads_per_job(args.workers, runs),
                    study_seconds=outcome.seconds, measure_seconds=measure_seconds,
                    wall_seconds=time.perf_counter() - started,
                    cpu_seconds=_cpu_seconds() - cpu_started)
    machine = {k: v for k, v in machine_info().items() if k != "torch_threads"}
    report = Results(outcome=outcome, data=data, rows=tuple(results),
                     comparisons=tuple(compare(winner, r) for r in results[1:]),
                     budget=budget, machine=machine)
    print()
    print(render_text(report))
    for path in write_outputs(report, out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
