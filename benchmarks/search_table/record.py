"""Record the search table: train every run of the grid on real CIFAR-10 images, resumably.

    python -m benchmarks.search_table.record --shard 0 --shards 2 --threads 1

Each finished run is appended as one JSON line to ``<out>/runs-<shard>.jsonl``; runs already in
any shard file of ``<out>`` are skipped, so a killed recorder started again continues where it
stopped (a run it was in the middle of is trained again from the start). ``--shard I --shards N``
splits the runs between N processes. ``--limit-configs K --epochs E`` make a smoke run (give it
its own ``--out``: a recording directory holds one grid). ``python -m benchmarks.search_table.pack``
turns the shard files into the table. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.search_table.grid import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_GAMMAS,
    DEFAULT_LRS,
    DEFAULT_WEIGHT_DECAYS,
    GridSpec,
)
from benchmarks.search_table.selection import DataSelection, select_data
from benchmarks.search_table.shard_files import (
    append_run,
    cut_partial_line,
    read_runs,
    shard_path,
    write_or_check_manifest,
)

log = logging.getLogger("benchmarks.search_table.record")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "cifar10-jpeg" / "train.tar.gz"
DEFAULT_OUT = HERE / "data"
DEFAULT_WORK_DIR = Path("~/.cache/hpsearch/search_table")
# CifarConfig fields the grid or the data selection sets per recording or per run; every other
# field is recorded in the manifest as a fixed trainer setting.
_VARYING = ("lr", "weight_decay", "batch_size", "gamma", "milestones", "seed")
_PATHS = ("dataset", "test_dataset", "cache_dir", "data_dir", "checkpoint_dir")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search_table.record",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shard", type=int, default=0, help="this process's shard (default 0)")
    p.add_argument("--shards", type=int, default=1, help="how many processes split the runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--limit-configs", type=int, default=None, metavar="K",
                   help="only the first K configurations of the seeded order (smoke runs)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                   help="image folder or .tar/.tar.gz of one (default: %(default)s)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                   help="where the pool/holdout folders and tensor caches live")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="shard files and manifest")
    p.add_argument("--pool-size", type=int, default=5000,
                   help="images the trainer gets (it splits --val-size off for validation)")
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--holdout-size", type=int, default=2000)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the pool/holdout draw")
    p.add_argument("--lrs", type=_floats, default=DEFAULT_LRS, help="comma-separated")
    p.add_argument("--weight-decays", type=_floats, default=DEFAULT_WEIGHT_DECAYS)
    p.add_argument("--batch-sizes", type=_ints, default=DEFAULT_BATCH_SIZES)
    p.add_argument("--gammas", type=_floats, default=DEFAULT_GAMMAS)
    p.add_argument("--extra-seed-configs", type=int, default=24,
                   help="configurations also recorded with --extra-seeds")
    p.add_argument("--extra-seeds", type=_ints, default=(1, 2))
    p.add_argument("--order-seed", type=int, default=0,
                   help="seed of the run order and of the extra-seed subset")
    p.add_argument("--device", default="cpu")
    p.add_argument("--pause-after-epoch", type=float, default=0.0, metavar="SECONDS",
                   help="testing aid: sleep after each epoch so a kill lands mid-run")
    return p


def base_config(args: argparse.Namespace, grid: GridSpec, data: DataSelection) -> Any:
    from trainers.cifar import CifarConfig

    return CifarConfig(
        dataset=str(data.pool_dir), test_dataset=str(data.holdout_dir),
        cache_dir=str(args.work_dir.expanduser().resolve() / "tensors"),
        num_classes=len(data.classes), val_size=args.val_size, width=grid.width,
        optimizer="sgd", epochs=grid.epochs, schedule="multistep",
        milestones=grid.milestones, patience=grid.epochs,  # early stopping off
        amp="off", device=args.device, seed=grid.base_seed)


def warm_tensor_caches(data: DataSelection, cache_dir: Path) -> None:
    """Decode both folders into the trainer's tensor cache now, so no run's first epoch carries
    the one-off JPEG decoding in its CPU seconds."""
    from trainers.data import load_image_folder

    for folder in (data.pool_dir, data.holdout_dir):
        load_image_folder(folder, cache_dir=cache_dir)


def manifest_for(args: argparse.Namespace, grid: GridSpec, data: DataSelection,
                 base: Any) -> dict[str, Any]:
    from benchmarks.search_table.machine import machine_info

    settings = {k: v for k, v in base.resolved().to_dict().items()
                if k not in _VARYING and k not in _PATHS}
    return {
        "identity": {
            "grid": grid.as_dict(),
            "seeds": grid.seeds_dict(),
            "sizes": {"pool": args.pool_size, "val": args.val_size,
                      "train": args.pool_size - args.val_size, "holdout": args.holdout_size},
            "trainer": "cifar",
            "trainer_settings": settings,
            "data": dict(data.info),
        },
        "machine": {**machine_info(), "threads_per_process": args.threads},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before torch is imported (trainers import it)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    try:
        grid = GridSpec(lrs=args.lrs, weight_decays=args.weight_decays,
                        batch_sizes=args.batch_sizes, gammas=args.gammas, epochs=args.epochs,
                        width=args.width, extra_seeds=args.extra_seeds,
                        extra_seed_configs=args.extra_seed_configs, order_seed=args.order_seed)
        mine = grid.shard_runs(args.shard, args.shards, limit_configs=args.limit_configs)
        data = select_data(args.source, pool_size=args.pool_size,
                           holdout_size=args.holdout_size, seed=args.data_seed,
                           work_dir=args.work_dir)
        base = base_config(args, grid, data)
        warm_tensor_caches(data, Path(base.cache_dir))
        out = args.out.expanduser().resolve()
        write_or_check_manifest(out, manifest_for(args, grid, data, base))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return record(args, grid, mine, base, out)


def record(args: argparse.Namespace, grid: GridSpec, mine: Sequence[Any], base: Any,
           out: Path) -> int:
    from benchmarks.search_table.runner import run_one

    path = shard_path(out, args.shard)
    cut_partial_line(path)
    done = {r["key"] for r in read_runs(out)}
    todo = [r for r in mine if r.key not in done]
    log.info("shard %d/%d: %d runs, %d already recorded, %d to go; writing %s", args.shard,
             args.shards, len(mine), len(mine) - len(todo), len(todo), path)
    started = time.perf_counter()
    for i, spec in enumerate(todo, start=1):
        rec = run_one(spec, base, milestones=grid.milestones, pause_s=args.pause_after_epoch)
        rec.update(shard=args.shard, shards=args.shards, threads=args.threads)
        append_run(path, rec)
        elapsed = time.perf_counter() - started
        left = elapsed / i * (len(todo) - i)
        holdout = rec["holdout_acc"]
        log.info("shard %d: %d/%d %s seed %d: %s, best_val_acc %.4f (epoch %d), holdout %s, "
                 "%.1f s (cpu %.1f s); about %.0f min left", args.shard, i, len(todo),
                 spec.config.label(), spec.seed, rec["stop_reason"], rec["best_val_acc"],
                 rec["best_epoch"], "-" if holdout is None else f"{holdout:.4f}",
                 rec["run_wall_seconds"], rec["run_cpu_seconds"], left / 60)
    log.info("shard %d/%d: done (%d runs in %.0f s)", args.shard, args.shards, len(todo),
             time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
