"""What ``hpsearch launch`` checks in its flags before anything is written: the spec with its
overrides (``--set`` typed by the trainer's config fields, ``--epochs`` rescaling and the line
saying what it rescaled), ``--extra-seeds``, and local workers the machine cannot run."""

from __future__ import annotations

import argparse

from search.cli.common import machine_cores, parse_overrides
from search.errors import SpecError
from search.study.model import StudySpec

__all__ = ["MAX_EXTRA_SEEDS", "WORKERS_PER_CORE", "check_local_workers", "launch_spec"]

MAX_EXTRA_SEEDS = 1000
# Local workers beyond the machine's cores are refused, unless --threads-per-worker says how
# they share them (trainers that mostly wait on a GPU or I/O): then up to this many per core.
WORKERS_PER_CORE = 4


def launch_spec(args: argparse.Namespace) -> tuple[StudySpec, str | None]:
    """The spec ``hpsearch launch`` runs, with every flag applied and checked, and the line
    saying what ``--epochs`` rescaled (None without it)."""
    from search.study.study_spec import apply_overrides, load_spec
    from search.study.trainers import get_trainer

    if not 0 <= args.extra_seeds <= MAX_EXTRA_SEEDS:
        raise SpecError(f"--extra-seeds {args.extra_seeds} is out of range; give 0 (no "
                        f"re-measurement) to {MAX_EXTRA_SEEDS}, e.g. --extra-seeds 2")
    loaded = load_spec(args.spec)
    overridden = apply_overrides(
        loaded, name=args.study_name, trials=args.trials, workers=args.workers,
        epochs=args.epochs,
        config=parse_overrides(args.overrides, get_trainer(loaded.trainer).config_cls),
        checkpoint_dir=args.checkpoint_dir, artifact_store=args.artifact_store)
    return overridden.spec, overridden.rescaled


def check_local_workers(args: argparse.Namespace, workers: int) -> None:
    """Local workers are processes on this machine: no more than its cores, or, with
    ``--threads-per-worker N``, than WORKERS_PER_CORE x cores / N."""
    cores = machine_cores()
    threads = None if args.threads_per_worker is None else max(1, args.threads_per_worker)
    most = cores if threads is None else max(cores, WORKERS_PER_CORE * cores // threads)
    if workers <= most:
        return
    named = (f"--workers {workers}" if args.workers is not None
             else f"budget.workers {workers} (in {args.spec})")
    if threads is None:
        raise SpecError(f"{named}: this machine has {cores} cores; use --workers {cores}, or "
                        f"--threads-per-worker 1 with at most {WORKERS_PER_CORE * cores} "
                        "workers that mostly wait (on a GPU or I/O)")
    raise SpecError(f"{named} with --threads-per-worker {threads}: this machine has {cores} "
                    f"cores, room for {most} such workers; use --workers {most} or fewer, or "
                    "--executor ray across machines")
