"""``hpsearch launch``, ``worker``, ``proxy``, ``status`` and ``studies``: running studies and
looking at them."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from search.cli.common import (
    line_printers,
    print_pareto,
    storage_parent,
)
from search.cli.launch_checks import check_local_workers, launch_spec
from search.errors import SpecError

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    storage = storage_parent()
    _add_launch(sub, storage)

    p = sub.add_parser("worker", parents=[storage_parent(grpc=True)],
                       help="join a study from this machine as one worker (no Ray): for "
                            "clusters managed by something else")
    p.add_argument("study", help="study name (created by hpsearch launch)")
    p.add_argument("--index", type=int, default=0,
                   help="worker index: seeds the sampler differently per worker (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("proxy", parents=[storage],
                       help="serve the study database to workers over Optuna's gRPC storage "
                            "proxy, so they hold no database connection")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=13000, help="port to listen on (default 13000)")
    p.add_argument("--threads", type=int, default=16,
                   help="calls served at once; each may hold one database connection "
                        "(default 16)")
    p.set_defaults(func=_cmd_proxy)

    p = sub.add_parser("status", parents=[storage],
                       help="trial counts, best trial and progress of a study")
    p.add_argument("study", help="study name")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="keep printing progress every SECONDS until the budget is done")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("studies", parents=[storage], help="list the studies in a storage")
    p.set_defaults(func=_cmd_studies)


def _add_launch(sub: Any, storage: argparse.ArgumentParser) -> None:
    p = sub.add_parser("launch", parents=[storage], help="create or join a study and run "
                                                         "workers until its budget is spent")
    p.add_argument("spec", help="study spec YAML, e.g. examples/quickstart.yaml")
    p.add_argument("--study-name", help="override the spec's study name")
    p.add_argument("--trials", type=int, help="override the trial budget")
    p.add_argument("--workers", type=int, help="override the number of local workers")
    p.add_argument("--epochs", type=int, help="rescale the study to this epoch budget "
                   "(patience, baselines and pruner resources scale with it, within floors: "
                   "patience >= 3 epochs and a pruner's first decision >= max(2, 10%% of the "
                   "epochs), unless the spec asked for less; the launch prints what it used)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fixed trainer setting, e.g. --set dataset=train.tar.gz")
    p.set_defaults(func=_cmd_launch)

    p.add_argument("--warm-start", metavar="STUDY",
                   help="import the finished trials of an earlier round into the new study")
    p.add_argument("--no-promote", action="store_true",
                   help="do not promote the winner into the tuned defaults at the end")
    p.add_argument("--extra-seeds", type=int, default=2,
                   help="seeds the winner is re-measured on before promotion (default 2)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local worker processes (default) or Ray tasks anywhere in a cluster")
    p.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT from a cluster "
                                     "node, ray://HOST:10001 from anywhere else (default: "
                                     "start a local Ray instance)")
    p.add_argument("--checkpoint-dir", help="per-trial checkpoints under this directory, which "
                                            "every worker must see; a retried trial resumes "
                                            "there (overrides fault_tolerance.checkpoint_dir)")
    p.add_argument("--artifact-store", help="upload per-trial checkpoints to this Optuna "
                                            "artifact store (directory, file://, s3://BUCKET, "
                                            "gs://BUCKET) for workers without a shared "
                                            "filesystem (overrides fault_tolerance."
                                            "artifact_store)")
    p.add_argument("--worker-storage", metavar="URL",
                   help="where the workers reach the study, if not at --storage: "
                        "grpc://HOST:PORT for a gRPC proxy started by hpsearch proxy (the "
                        "workers then hold no database connection)")
    p.add_argument("--threads-per-worker", type=int, metavar="N",
                   help="torch CPU threads of each local worker (default: this machine's cores "
                        "divided by --workers; lower it when other launchers or jobs share the "
                        "machine, since oversubscribed cores slow training many times over)")
    p.add_argument("--workers-outlive-launcher", action="store_true",
                   help="local workers keep running if the launcher process dies (by default "
                        "they fail and re-queue their running trials and exit with it)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs each Ray worker reserves; fractional packs trials on one GPU")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs each Ray worker reserves (default 1)")


def _executor(args: argparse.Namespace, workers: int) -> Any:
    """The executor the flags ask for; None: the default local one."""
    if args.executor == "ray":
        from search.run.ray_executor import RayExecutor

        if args.threads_per_worker is not None:
            raise SpecError("--threads-per-worker is for local workers; a Ray worker uses "
                            "--cpus-per-trial threads")
        if args.workers_outlive_launcher:
            raise SpecError("--workers-outlive-launcher is for local workers; Ray tasks "
                            "live and die with the Ray cluster")
        return RayExecutor(workers, address=args.address, gpus_per_trial=args.gpus_per_trial,
                           cpus_per_trial=args.cpus_per_trial)
    if args.address or args.gpus_per_trial:
        raise SpecError("--address and --gpus-per-trial need --executor ray")
    if args.threads_per_worker is not None and args.threads_per_worker < 1:
        raise SpecError(f"--threads-per-worker {args.threads_per_worker} must be at "
                        "least 1, e.g. --threads-per-worker 1")
    check_local_workers(args, workers)
    if args.threads_per_worker is None and not args.workers_outlive_launcher:
        return None
    from search.run.local_executor import LocalExecutor

    return LocalExecutor(workers, threads_per_worker=args.threads_per_worker,
                         outlive_launcher=args.workers_outlive_launcher)


def _cmd_launch(args: argparse.Namespace) -> int:
    from search.run.launch import launch
    from search.run.signals import LauncherStopped, stop_on_signals
    from storage import open_storage

    spec, rescaled = launch_spec(args)  # every flag checked; nothing written yet
    executor = _executor(args, spec.workers)
    storage = open_storage(args.storage)
    emit, progress = line_printers()
    if rescaled is not None:
        emit(rescaled)  # "rescaled to 8 epochs: patience 35 -> 3 (floor 3); ..."
    try:
        with stop_on_signals():  # SIGTERM and SIGHUP stop the study as Ctrl-C does
            result = launch(spec, storage, emit=emit, progress=progress, progress_every_s=1.0
                            if sys.stdout.isatty() else 15.0, warm_start=args.warm_start,
                            promote=not args.no_promote, extra_seeds=args.extra_seeds,
                            executor=executor, worker_storage_url=args.worker_storage)
    except LauncherStopped as stopped:
        print(f"hpsearch: stopped by {stopped.signal_name}; the workers were stopped and their "
              f"running trials marked FAIL and re-queued; run the same launch again to go on",
              file=sys.stderr)
        return stopped.exit_code
    emit("")
    _print_result(result, spec)
    print(f"study {spec.name!r} is stored in {storage.redacted}")
    print(f"see it again with: hpsearch status {spec.name}"
          + (f" --storage {storage.redacted}" if args.storage else ""))
    return 0


def _print_result(result: Any, spec: Any) -> None:
    from search.report.progress import format_config

    print(f"finished in {result.seconds:.1f}s: {result.execution.trials_run} trials run by this "
          "launcher")
    for line in result.execution.errors:
        print(f"warning: {line}")
    best = result.best
    if spec.multi_objective:
        print_pareto(result.study, spec.metrics)
    elif best is None:
        print("no feasible completed trial yet: nothing to report as best")
    else:
        target = ""
        if spec.target is not None and best.value is not None:
            verdict = "reached" if _reached(spec, best.value) else "not reached"
            target = f" (target {spec.target}: {verdict})"
        print(f"best trial {best.number}: {spec.metric} = {best.value:.4f}{target}")
        if "best_train_val_gap" in best.user_attrs:
            print(f"train-validation gap {best.user_attrs['best_train_val_gap']:.4f}"
                  + (f" (limit {spec.max_train_val_gap})" if spec.max_train_val_gap else ""))
        print("best configuration:")
        for line in format_config(best.user_attrs.get("config", best.params)):
            print(line)
    if result.promotion is not None:
        from search.cli.tuning_commands import print_promotion

        print_promotion(result.promotion)


def _reached(spec: Any, value: float) -> bool:
    return value >= spec.target if spec.direction == "maximize" else value <= spec.target


def _cmd_worker(args: argparse.Namespace) -> int:
    from search.run.worker import run_worker
    from search.study.stored import load_study, read_spec
    from storage import open_storage

    storage = open_storage(args.storage, allow_grpc=True)
    study = load_study(storage, args.study)
    # With the budget of the latest launch (a later launch may have raised it with --trials).
    spec = read_spec(study, where=storage.redacted)
    print(f"joined study {args.study!r} in {storage.redacted} as worker {args.index}",
          flush=True)
    summary = run_worker(spec, storage, worker_index=args.index, threads=args.threads)
    states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.states.items()))
    print(f"worker {args.index} ran {summary.trials_run} trials ({states or 'none'})"
          + (f"; stopped: {summary.stop_reason}" if summary.stop_reason else ""))
    return 0


def _cmd_proxy(args: argparse.Namespace) -> int:
    import signal
    import threading

    from storage import redact, resolve_storage_url
    from storage.grpc_proxy import serve

    if args.threads < 1 or not 0 < args.port < 65536:
        raise SpecError(f"--threads {args.threads} / --port {args.port}: threads must be at "
                        "least 1 and the port 1-65535, e.g. --threads 16 --port 13000")
    # The proxy serves many threads from a pool of its own size (storage/grpc_proxy.py).
    url = resolve_storage_url(args.storage)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def ready() -> None:
        print(f"serving {redact(url)} at grpc://{args.host}:{args.port} (give workers "
              f"--storage or --worker-storage grpc://HOST:{args.port}); Ctrl-C stops",
              flush=True)

    try:
        serve(url, host=args.host, port=args.port, threads=args.threads, on_ready=ready,
              stop=stop)
    except KeyboardInterrupt:
        stop.set()
    print("proxy stopped")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from search.report.progress import (
        describe_trial,
        format_config,
        format_progress,
        metric_names,
        read_progress,
    )
    from search.study.stored import load_study, read_spec_or_none
    from storage import open_storage

    if args.watch is not None and not (math.isfinite(args.watch) and args.watch > 0):
        raise SpecError(f"--watch {args.watch} is not a positive number of seconds; e.g. "
                        "--watch 10")
    storage = open_storage(args.storage)
    study = load_study(storage, args.study)
    spec = read_spec_or_none(study)  # a study not launched by hpsearch has none
    budget = spec.n_trials if spec is not None else None
    workers = spec.workers if spec is not None else 1
    names = metric_names(study)  # stored by launch; a study made elsewhere may have them too
    metric = spec.metric_label() if spec is not None else ",".join(names or ["value"])
    p = read_progress(study, budget=budget, workers=workers, metric=metric)
    print(f"study {study.study_name!r} ({p.direction} {metric}) in {storage.redacted}")
    print(format_progress(p), flush=True)
    for line in _stale_lines(storage, study, spec):
        print(line, flush=True)
    while args.watch and (budget is None or p.done < budget):
        time.sleep(args.watch)
        p = read_progress(study, budget=budget, workers=workers, metric=metric)
        print(format_progress(p), flush=True)
    for t in p.finished[-10:]:
        print("  " + describe_trial(t, metric))
    if p.best is not None:
        print(f"best trial {p.best.number}: {metric} = {p.best.value:.4f}")
        for line in format_config(p.best.user_attrs.get("config", p.best.params)):
            print(line)
    if p.pareto:
        print_pareto(study, metric.split(","))
    return 0


def _stale_lines(storage: Any, study: Any, spec: Any) -> list[str]:
    """A line per RUNNING trial whose heartbeat is older than the study's grace period: its
    worker is gone, and the trial waits for the next worker or launcher to reclaim it."""
    from optuna.trial import TrialState

    from storage.handle import OptunaSettings
    from storage.stale_trials import heartbeat_ages

    grace = (spec.fault_tolerance.grace_period_s if spec is not None
             else OptunaSettings().grace_period_s)
    running = {t._trial_id: t.number
               for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    ages = heartbeat_ages(storage.rdb(), study._study_id)
    return [f"  trial {running[trial_id]} is RUNNING with a stale heartbeat (none for "
            f"{age:.0f} s, grace {grace} s): its worker is gone; the next worker or launcher "
            f"of this study fails and re-queues it (hpsearch worker {study.study_name})"
            for trial_id, age in sorted(ages.items(), key=lambda kv: running.get(kv[0], -1))
            if trial_id in running and age > grace]


def _cmd_studies(args: argparse.Namespace) -> int:
    import optuna

    from storage import open_storage

    storage = open_storage(args.storage).optuna()
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        best = f"best {s.best_trial.value:.4f}" if s.best_trial and s.best_trial.value is not None \
            else "no completed trial"
        print(f"{s.study_name}\t{s.n_trials} trials\t{best}")
    return 0
